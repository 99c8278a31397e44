/**
 * A region started on a database marked snapshot_pending (a region being added: `hothot lab
 * add-region` starts it during the copy) serves no data, applies nothing and is not ready; the copy's
 * last transaction releases it, and it then serves the snapshot, applies its peers' events and writes
 * with stamps above every copied one.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { STARTING_WAIT_MS } from '../../services/api/app.js';
import { Region } from '../../services/region/region.js';
import { copySnapshot } from '../../services/bootstrap/snapshotCopy.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate, MIGRATION_LOCK_ID } from '../../shared/db/migrate.js';
import { Role } from '../../shared/config/loadConfig.js';
import { markSnapshotPending, pendingSnapshotSource } from '../../shared/db/queries/snapshot.js';
import { testLogger, waitFor } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { getItem, putItem } from '../support/twoRegions.js';
import { regionStatus } from '../support/workload.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

let t: TestRegions;
const pools: pg.Pool[] = [];
const pool = (url: string) => {
  const p = new pg.Pool({ connectionString: url, max: 2 });
  pools.push(p);
  return p;
};

const test = regionsTest(() =>
  startTestRegions(['us', 'eu'], {}, undefined, {
    beforeStart: async (region, url) => {
      if (region !== 'eu') return;
      const p = new pg.Pool({ connectionString: url, max: 1 });
      try {
        await migrate(p, testLogger(region));
        await markSnapshotPending(p, 'us');
      } finally {
        await p.end();
      }
    },
  }),
);

describe('a region that awaits its initial snapshot', () => {
  test.beforeAll(({ regions }) => {
    t = regions;
  }, REGIONS_START_MS);

  afterAll(async () => {
    await Promise.allSettled(pools.map((p) => p.end()));
  }, 60_000);

  it('when eu is started before its snapshot of us is loaded, then it serves nothing and applies nothing until the copy ends, and then everything', async () => {
    const { us, eu } = t.regions;
    const usDb = pool(t.databaseUrls.us!);
    const euDb = pool(t.databaseUrls.eu!);

    const ready = await fetch(`${eu!.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { error: { code: string } }).error.code).toBe('loading_snapshot');
    const refused = await putItem(eu!.url, 'snap', 'early', { from: 'eu' });
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: { code: 'loading_snapshot' } });
    expect((await getItem(eu!.url, 'snap', 'k0')).status).toBe(503);

    for (let i = 0; i < 20; i++)
      expect((await putItem(us!.url, 'snap', `k${i}`, { i })).status).toBeLessThan(300);
    // us has published them and eu's consumer is in its group: batches reach eu, which must hold them.
    await waitFor('us to publish its writes and eu to join its group', async () => {
      const { rows } = await usDb.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
      return rows[0]!.n === 0 && (await regionStatus(eu!.url)).applier?.consuming === true;
    });
    await waitFor(
      'eu’s applier to be offered batches and hold them back',
      async () =>
        (await regionStatus(eu!.url)).applier?.waitingFor?.includes('initial snapshot of us') === true,
    );
    const held = await euDb.query<{ n: number }>('SELECT count(*)::int AS n FROM item');
    expect(held.rows[0]!.n).toBe(0);
    expect(await pendingSnapshotSource(euDb)).toBe('us');

    const copied = await copySnapshot(usDb, euDb, { targetRegion: 'eu' });
    expect(copied.items).toBe(20);
    expect(await pendingSnapshotSource(euDb)).toBeUndefined();
    await waitFor('eu to be ready', async () => (await fetch(`${eu!.url}/readyz`)).status === 200, {
      timeoutMs: 10_000,
    });
    expect((await getItem(eu!.url, 'snap', 'k7')).body).toMatchObject({ value: { i: 7 } });

    // Its writes carry stamps above the copied ones (the clock saw them), so eu's newer write wins
    // everywhere; and what us writes now reaches eu through the applier.
    expect((await putItem(eu!.url, 'snap', 'k3', { from: 'eu' })).status).toBeLessThan(300);
    expect((await putItem(us!.url, 'snap', 'late', { from: 'us' })).status).toBeLessThan(300);
    for (const [r, key, value] of [
      [us!, 'k3', { from: 'eu' }],
      [eu!, 'late', { from: 'us' }],
    ] as const)
      await waitFor(`${r.config.region} to hold ${key}`, async () => {
        const got = await getItem(r.url, 'snap', key);
        return got.status === 200 && JSON.stringify(got.body?.value) === JSON.stringify(value);
      });
  });

  it('when a region cannot reach its PostgreSQL at start, then it answers /healthz, and everything else 503 starting after waiting for the start, and nothing is written', async () => {
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const config = t.regions.us!.config;
    const starting = new Region(
      { ...config, databaseUrl: `postgres://hothot@127.0.0.1:${closed}/nowhere` },
      testLogger('us-starting'),
    );
    const started = starting.start();
    try {
      await waitFor('the starting region to listen', () => {
        try {
          return starting.url;
        } catch {
          return undefined;
        }
      });
      expect((await fetch(`${starting.url}/healthz`)).status).toBe(200);
      // /readyz answers at once; the others wait up to STARTING_WAIT_MS for the start, then 503.
      const asked = Date.now();
      const answers = await Promise.all([
        fetch(`${starting.url}/readyz`),
        fetch(`${starting.url}/v1/status`),
        fetch(`${starting.url}/v1/items/snap/early`),
        fetch(`${starting.url}/v1/items/snap/early`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ from: 'starting' }),
        }),
      ]);
      expect(Date.now() - asked).toBeGreaterThanOrEqual(STARTING_WAIT_MS);
      for (const res of answers) {
        expect(res.status, res.url).toBe(503);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('starting');
      }
    } finally {
      await starting.stop();
      await started;
    }
    expect((await getItem(t.regions.us!.url, 'snap', 'early')).status).toBe(404);
  });

  it('when a request arrives while a region process is migrating, then it waits and is served once the start ends', async () => {
    // A second API process of us, held in its migrations by the migration lock taken here.
    const holder = new pg.Client({ connectionString: t.databaseUrls.us! });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const second = new Region({ ...t.regions.us!.config, roles: new Set([Role.Api]) }, testLogger('us-held'));
    const started = second.start();
    try {
      const url = await waitFor('the held process to listen', () => {
        try {
          return second.url;
        } catch {
          return undefined;
        }
      });
      let answered = false;
      const write = putItem(url, 'snap', 'held', { from: 'held' }).finally(() => (answered = true));
      await sleep(300);
      expect(answered).toBe(false);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
      expect((await write).status).toBe(201);
      expect((await getItem(t.regions.us!.url, 'snap', 'held')).body).toMatchObject({
        value: { from: 'held' },
      });
    } finally {
      await holder.end();
      await second.stop();
      await started;
    }
  });
});
