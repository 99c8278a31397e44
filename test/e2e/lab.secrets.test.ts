/**
 * No secret of the lab leaks: after a lab run with traffic, a broker-link cut and a heal, none of the
 * lab's credentials (every Kafka SCRAM password, every PostgreSQL password, the CA's and the broker's
 * private keys) appears in a region's log, any other log of the lab, `/v1/status`, `hothot lab status`
 * (text and `--json`), lab.json, or the command line of any process the lab started.
 *
 * (API keys and session-token keys are the client-credentials part: see their own checks.)
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { labStatePath } from '../../infra/lab/labState.js';
import { REPO_ROOT } from '../../infra/lab/paths.js';
import type { FaultLab } from '../support/faultLab.js';
import { waitFor } from '../support/harness.js';
import { getItem, putItem } from '../support/twoRegions.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

const run = promisify(execFile);
let fl: FaultLab;

const test = faultLabTest();

test.beforeAll(({ lab }) => {
  fl = lab;
}, LAB_START_MS);

/** Which of `secrets` occur in `text` (by index, never the value: the test output must not leak either). */
function leaks(text: string, secrets: readonly string[]): number[] {
  return secrets.flatMap((s, i) => (text.includes(s) ? [i] : []));
}

describe('the lab keeps its credentials to itself', () => {
  it('when the lab has run, been cut and healed, then no secret is in a log, /v1/status, lab status, lab.json or a command line', async () => {
    const us = fl.regions.us!;
    const eu = fl.regions.eu!;
    // Traffic, and a cut with its errors (connection refused, retries) in the logs.
    expect((await putItem(us.url, 'secrets', 'a', { v: 1 })).status).toBe(201);
    await waitFor(
      'eu to apply us’s write',
      async () => (await getItem(eu.url, 'secrets', 'a')).status === 200,
    );
    await fl.links.partition('us');
    expect((await putItem(us.url, 'secrets', 'b', { v: 2 })).status).toBe(201);
    // Cut long enough for the failures to be logged: until us itself says its link is down.
    await waitFor('us to see its broker link down', async () => {
      const s = (await (await fetch(`${us.url}/v1/status`)).json()) as { brokerLink?: { state?: string } };
      return s.brokerLink?.state === 'down';
    });
    await fl.links.heal('us');
    await waitFor(
      'eu to apply the backlog',
      async () => (await getItem(eu.url, 'secrets', 'b')).status === 200,
      {
        timeoutMs: 60_000,
      },
    );

    const secrets = fl.lab.secrets.secretValues();
    // Every password (admin, us, eu; two per cluster) and both private keys.
    expect(secrets.length).toBeGreaterThanOrEqual(3 + 4 + 2);
    for (const s of secrets) expect(s.length).toBeGreaterThanOrEqual(32);

    const texts: Record<string, string> = {};
    const logsDir = join(fl.dir, 'lab', 'logs');
    for (const file of readdirSync(logsDir)) texts[`log ${file}`] = readFileSync(join(logsDir, file), 'utf8');
    texts['lab.json'] = readFileSync(labStatePath(fl.dir), 'utf8');
    const cli = join(REPO_ROOT, 'bin', 'hothot.js');
    for (const args of [
      ['lab', 'status'],
      ['lab', 'status', '--json'],
    ]) {
      const { stdout, stderr } = await run(process.execPath, [cli, ...args, '--dir', fl.dir]).catch(
        (e: { stdout: string; stderr: string }) => e,
      );
      texts[args.join(' ')] = `${stdout}\n${stderr}`;
    }
    for (const r of [us, eu]) {
      const res = await fetch(`${r.url}/v1/status`); // the run's admin key: test/support/authenticateLocalRequests.ts
      texts[`${r.name} /v1/status (${res.status})`] = await res.text();
    }
    const pids = [
      ...Object.values(fl.lab.state.regions).map((r) => r.pid),
      fl.lab.state.kafka!.pid,
      ...Object.values(fl.lab.state.postgres).map((p) => p.pid),
      fl.lab.state.toxiproxy!.pid,
    ];
    for (const pid of pids) {
      try {
        texts[`cmdline of ${pid}`] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        // not running (or no procfs): nothing to leak
      }
    }

    // The texts are the real ones: the region logs saw the cut, lab.json names the credentials' directory.
    expect(texts['lab.json']).toContain(fl.lab.state.secretsDir!);
    expect(texts['lab.json']).toContain('postgres://hothot:***@');
    expect(Object.keys(texts).filter((k) => k.startsWith('log region-'))).toHaveLength(2);
    expect(texts['log region-us.log']).toMatch(/broker link down/);

    const found = Object.entries(texts).flatMap(([where, text]) =>
      leaks(text, secrets).map((i) => `${where}: secret #${i}`),
    );
    expect(found).toEqual([]);
  });
});
