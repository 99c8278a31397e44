/**
 * The front door's configuration: the native lab renders infra/haproxy/haproxy.cfg (the compose file)
 * with its own addresses, so balancing, health checks and retries are the same in both; HAProxy
 * itself accepts the result when it is installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HAPROXY_CONFIG_TEMPLATE,
  haproxyBinary,
  parseBalance,
  parseWeights,
  renderFrontDoorConfig,
  resolveBalancing,
} from '../../infra/lab/frontDoor.js';

const template = readFileSync(HAPROXY_CONFIG_TEMPLATE, 'utf8');
const rendered = renderFrontDoorConfig({
  bindPort: 18080,
  servers: [
    { name: 'us', host: '127.0.0.1', port: 18081, weight: 2 },
    { name: 'eu', host: '127.0.0.1', port: 18082 },
    { name: 'ap', host: '127.0.0.1', port: 18083, weight: 0 },
  ],
});

describe('front door configuration', () => {
  it('when rendered for the lab, then it binds loopback only and lists every region with its weight', () => {
    expect(rendered).toMatch(/^\s*bind 127\.0\.0\.1:18080$/m);
    expect(rendered).not.toMatch(/bind :8080/);
    expect(rendered.match(/^\s*server /gm)).toHaveLength(3);
    expect(rendered).toMatch(/^\s*server us 127\.0\.0\.1:18081 weight 2$/m);
    expect(rendered).toMatch(/^\s*server eu 127\.0\.0\.1:18082 weight 100$/m);
    expect(rendered).toMatch(/^\s*server ap 127\.0\.0\.1:18083 weight 0$/m);
  });

  it('when rendered, then balancing, health checks and retries are exactly the compose ones', () => {
    const settings = (text: string) =>
      text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('bind ') && !l.startsWith('server '));
    expect(settings(rendered)).toEqual(settings(template));
    expect(template).toMatch(/^\s*balance roundrobin$/m);
    expect(template).toMatch(/^\s*option httpchk GET \/readyz$/m);
    expect(template).toMatch(/inter 500ms .*fall 2 rise 2/);
  });

  it('when weights are given as text, then they parse, and bad ones are refused', () => {
    expect(parseWeights('us=2, eu=1')).toEqual({ us: 2, eu: 1 });
    expect(() => parseWeights('us=300')).toThrow(/0-256/);
    expect(() => parseWeights('us')).toThrow(/region/);
  });

  it('when a balance mode is asked for, then the balance line says it and nothing else changes', () => {
    const servers = [
      { name: 'us', host: '127.0.0.1', port: 18081, weight: 3 },
      { name: 'eu', host: '127.0.0.1', port: 18082, weight: 1 },
    ];
    const render = (balance?: 'roundrobin' | 'random' | 'weighted') =>
      renderFrontDoorConfig({ bindPort: 18080, servers, ...(balance !== undefined ? { balance } : {}) });
    expect(render()).toMatch(/^\s*balance roundrobin$/m);
    expect(render('roundrobin')).toBe(render());
    expect(render('weighted')).toBe(render());
    expect(render('random')).toMatch(/^\s*balance random\(1\)$/m);
    expect(render('random').match(/^\s*balance /gm)).toHaveLength(1);
    const withoutBalance = (text: string) =>
      text.replace(/^\s*balance .*$/m, '').replace(/ weight \d+$/gm, '');
    expect(withoutBalance(render('random'))).toBe(withoutBalance(render()));
    // random: weights scaled to HAProxy's top (a finer hash ring), their ratio kept.
    expect(render('random')).toMatch(/^\s*server us 127\.0\.0\.1:18081 weight 256$/m);
    expect(render('random')).toMatch(/^\s*server eu 127\.0\.0\.1:18082 weight 85$/m);
    expect(render('weighted')).toMatch(/^\s*server us 127\.0\.0\.1:18081 weight 3$/m);
  });

  it('when --balance and --weights are combined, then the mode follows the rules and bad combinations are refused', () => {
    expect(resolveBalancing(undefined, undefined)).toEqual({ balance: 'roundrobin', weights: {} });
    expect(resolveBalancing(undefined, { us: 2 })).toEqual({ balance: 'weighted', weights: { us: 2 } });
    expect(resolveBalancing('random', { us: 3, eu: 1 }).balance).toBe('random');
    expect(resolveBalancing('random', undefined).balance).toBe('random');
    expect(() => resolveBalancing('weighted', undefined)).toThrow(/needs --weights/);
    expect(() => resolveBalancing('roundrobin', { us: 2 })).toThrow(/drop --weights/);
    expect(parseBalance('Random')).toBe('random');
    expect(() => parseBalance('leastconn')).toThrow(/roundrobin, random, weighted/);
  });

  it.skipIf(!existsSync(haproxyBinary()))('when HAProxy checks the rendered file, then it accepts it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hothot-haproxy-'));
    try {
      const file = join(dir, 'haproxy.cfg');
      writeFileSync(file, rendered);
      execFileSync(haproxyBinary(), ['-c', '-q', '-f', file], { stdio: 'pipe' });
      writeFileSync(
        file,
        renderFrontDoorConfig({
          bindPort: 18080,
          servers: [{ name: 'us', host: '127.0.0.1', port: 18081 }],
          balance: 'random',
        }),
      );
      execFileSync(haproxyBinary(), ['-c', '-q', '-f', file], { stdio: 'pipe' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
