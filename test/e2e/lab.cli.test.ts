/**
 * The `hothot lab` CLI end to end, as a developer runs it: `lab up --detach` starts PostgreSQL per
 * region, Kafka and the region processes in a temporary lab directory; a write in one region shows up
 * in the other; `lab down` stops every process and removes lab.json.
 *
 * Starts its own PostgreSQL and Kafka (not the shared test infrastructure).
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabState } from '../../infra/lab/labState.js';
import { REPO_ROOT } from '../../infra/lab/paths.js';
import { isPidAlive, run, type RunResult } from '../../infra/lab/processes.js';
import { waitFor } from '../../infra/lab/waitFor.js';

const CLI = join(REPO_ROOT, 'bin', 'hothot.js');

function hothot(...args: string[]): Promise<RunResult> {
  return hothotWith({}, ...args);
}

function hothotWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    timeoutMs: 240_000,
    env: { ...process.env, ...env },
  });
}

describe('hothot lab CLI', () => {
  let dir: string;
  let noDoorDir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hothot-lab-e2e-'));
    noDoorDir = mkdtempSync(join(tmpdir(), 'hothot-lab-e2e-nodoor-'));
    // as root, PostgreSQL runs as "postgres" and must be able to enter them
    for (const d of [dir, noDoorDir]) chmodSync(d, 0o755);
  });

  afterAll(async () => {
    for (const d of [dir, noDoorDir]) {
      if (d === undefined) continue;
      if (existsSync(join(d, 'lab.json'))) await hothot('lab', 'down', '--dir', d).catch(() => undefined);
      rmSync(d, { recursive: true, force: true });
    }
  });

  it(
    'when brought up detached, then both regions are ready, a write in us reaches eu, and down stops everything',
    { timeout: 300_000 },
    async () => {
      // Secured whatever the default: clients need the admin key the lab makes (the run's, from
      // HOTHOT_LAB_ADMIN_KEY, which fetch sends: test/support/authenticateLocalRequests.ts).
      const up = await hothotWith({ SECURITY_MODE: 'on' }, 'lab', 'up', '--detach', '--dir', dir);
      expect(up.stdout).toContain('lab ready');

      const state = JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabState;
      expect(state.status).toBe('ready');
      expect(Object.keys(state.regions).sort()).toEqual(['eu', 'us']);
      const us = state.regions.us!;
      const eu = state.regions.eu!;
      for (const region of [us, eu]) {
        expect(region.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
        const ready = await fetch(`${region.url}/readyz`);
        expect(ready.status, `${region.region} /readyz`).toBe(200);
      }
      // Each region reaches Kafka through its own listener.
      expect(us.kafkaBrokers).not.toEqual(eu.kafkaBrokers);

      const put = await fetch(`${us.url}/v1/items/demo/k1`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ hello: 'world' }),
      });
      expect(put.status, await put.clone().text()).toBeLessThan(300);

      const replicated = await waitFor(
        async () => {
          const res = await fetch(`${eu.url}/v1/items/demo/k1`);
          return res.status === 200 ? ((await res.json()) as { value: unknown }) : undefined;
        },
        { description: 'demo/k1 to reach eu', timeoutMs: 30_000, intervalMs: 200 },
      );
      expect(replicated.value).toEqual({ hello: 'world' });

      const status = await hothot('lab', 'status', '--dir', dir);
      expect(status.stdout).not.toMatch(/DEAD|NOT ANSWERING/);

      // The admin key: printed once with the URLs, kept in a 0600 file, in every region's database;
      // lab.json and `lab status` name the file only.
      const adminKey = readFileSync(join(dir, 'admin-key'), 'utf8').trim();
      expect(adminKey).toBe(process.env.HOTHOT_LAB_ADMIN_KEY);
      expect(statSync(join(dir, 'admin-key')).mode & 0o777).toBe(0o600);
      expect(up.stdout.split(adminKey).length).toBe(2);
      expect(up.stdout).toMatch(/admin key\s+hh_\S+\s+\(also in /);
      expect(state.adminKeyFile).toBe(join(dir, 'admin-key'));
      const secret = adminKey.slice(20);
      expect(readFileSync(join(dir, 'lab.json'), 'utf8')).not.toContain(secret);
      expect(status.stdout).not.toContain(secret);
      expect((await hothot('lab', 'status', '--json', '--dir', dir)).stdout).not.toContain(secret);
      // More keys with `hothot keys`, in every region at once; a read key cannot write.
      const created = await hothot(
        'keys',
        'create',
        '--scopes',
        'read',
        '--all-regions',
        '--json',
        '--dir',
        dir,
      );
      const readKey = (JSON.parse(created.stdout) as { token: string; regions: string[] }).token;
      const listed = (await hothot('keys', 'list', '--all-regions', '--dir', dir)).stdout;
      expect(listed).toMatch(/^us: 2 key\(s\)$/m);
      expect(listed).toMatch(/^eu: 2 key\(s\)$/m);
      expect(listed).not.toContain(secret);
      for (const region of [us, eu]) {
        const read = await fetch(`${region.url}/v1/items/demo/k1`, {
          headers: { authorization: `Bearer ${readKey}` },
        });
        expect([200, 404]).toContain(read.status);
        const write = await fetch(`${region.url}/v1/items/demo/k2`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${readKey}`, 'content-type': 'application/json' },
          body: '{}',
        });
        expect(write.status).toBe(403);
      }

      // The front door routes to the regions; the broker links can be cut, slowed and healed.
      expect(up.stdout).toContain(`front door      ${state.frontDoor!.url}`);
      expect((await fetch(`${state.frontDoor!.url}/readyz`)).status).toBe(200);
      const links = async () =>
        (
          JSON.parse((await hothot('lab', 'status', '--json', '--dir', dir)).stdout) as {
            links: { region: string; state: string; latencyMs: number }[];
          }
        ).links;
      expect((await hothot('lab', 'partition', 'us', '--mode', 'blackhole', '--dir', dir)).stdout).toContain(
        'cut',
      );
      expect((await hothot('lab', 'latency', 'eu', '40', '--dir', dir)).stdout).toContain('+40 ms');
      expect(await links()).toEqual([
        expect.objectContaining({ region: 'eu', state: 'up', latencyMs: 40 }),
        expect.objectContaining({ region: 'us', state: 'blackhole' }),
      ]);
      await hothot('lab', 'heal', 'us', '--dir', dir);
      await hothot('lab', 'latency', 'eu', '0', '--dir', dir);
      expect(await links()).toEqual([
        expect.objectContaining({ region: 'eu', state: 'up', latencyMs: 0 }),
        expect.objectContaining({ region: 'us', state: 'up', latencyMs: 0 }),
      ]);
      await expect(hothot('lab', 'partition', 'mars', '--dir', dir)).rejects.toThrow(/no region mars/);

      const pids = [
        us.pid,
        eu.pid,
        state.kafka!.pid,
        state.toxiproxy!.pid,
        state.frontDoor!.pid,
        ...Object.values(state.postgres).map((pg) => pg.pid),
      ];
      expect(pids.every((pid) => pid > 0 && isPidAlive(pid))).toBe(true);

      const down = await hothot('lab', 'down', '--dir', dir);
      expect(down.stdout).toContain('is down');
      expect(existsSync(join(dir, 'lab.json'))).toBe(false);
      expect(pids.filter((pid) => isPidAlive(pid))).toEqual([]);

      const again = await hothot('lab', 'down', '--dir', dir);
      expect(again.stdout).toContain('no lab running');
    },
  );

  it(
    'when HAProxy is missing, then the lab starts the regions without the front door, warns with the fix, and status and lab.json say so',
    { timeout: 300_000 },
    async () => {
      // A missing haproxy, cheaply: the lab and infra/prerequisites.sh both look for HOTHOT_HAPROXY_BIN
      // first; pointed nowhere, nothing installs it.
      const env = { HOTHOT_HAPROXY_BIN: join(noDoorDir, 'no-such-haproxy'), HOTHOT_PREREQS_NO_INSTALL: '1' };
      const up = await hothotWith(env, 'lab', 'up', '--detach', '--regions', 'us', '--dir', noDoorDir);
      expect(up.stdout).toContain('lab ready');
      expect(up.stdout).toMatch(/WARNING\s+no front door: HOTHOT_HAPROXY_BIN=\S+ is not an executable/);
      expect(up.stdout).toContain('front door      none: HOTHOT_HAPROXY_BIN=');
      expect(up.stdout).toContain('running WITHOUT the front door');
      expect(up.stdout).not.toContain('starting front door');

      const state = JSON.parse(readFileSync(join(noDoorDir, 'lab.json'), 'utf8')) as LabState;
      expect(state.status).toBe('ready');
      expect(state.frontDoor).toBeUndefined();
      expect(state.noFrontDoor).toEqual({
        reason: expect.stringContaining('is not an executable') as unknown,
        fix: expect.stringContaining('HOTHOT_HAPROXY_BIN') as unknown,
      });
      expect((await fetch(`${state.regions.us!.url}/readyz`)).status).toBe(200);

      // No front door is not an unhealthy lab: status exits 0 and says there is none.
      const status = await hothot('lab', 'status', '--dir', noDoorDir);
      expect(status.stdout).toMatch(/front door\s+-\s+none\s+HOTHOT_HAPROXY_BIN=/);
      expect(status.stdout).not.toMatch(/DEAD|NOT ANSWERING/);
      const json = JSON.parse((await hothot('lab', 'status', '--json', '--dir', noDoorDir)).stdout) as {
        healthy: boolean;
        state: LabState;
      };
      expect(json.healthy).toBe(true);
      expect(json.state.noFrontDoor?.reason).toContain('is not an executable');

      const down = await hothot('lab', 'down', '--dir', noDoorDir);
      expect(down.stdout).toContain('is down');
      expect(existsSync(join(noDoorDir, 'lab.json'))).toBe(false);
    },
  );
});
