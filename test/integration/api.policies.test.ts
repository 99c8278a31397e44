/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- response bodies are probed loosely */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Maintenance } from '../../services/maintenance/maintenance.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { testLogger, waitFor } from '../support/harness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const json = (
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) =>
  fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  }).then(async (r) => ({
    status: r.status,
    headers: r.headers,
    body: r.status === 204 ? null : ((await r.json()) as Record<string, any>),
  }));

const oneRegionTest = regionsTest(() =>
  startTestRegions(['us'], {
    COLLECTION_POLICIES: 'carts=fields,likes=counter',
    HEARTBEAT_INTERVAL_MS: '0',
  }),
);

describe('merge policies, history and sessions in one region', () => {
  let t: TestRegions;
  let us: string;

  oneRegionTest.beforeAll(({ regions }) => {
    t = regions;
    us = t.regions.us!.url;
  }, REGIONS_START_MS);

  it('when an lww item is patched, then RFC 7396 applies to the whole value', async () => {
    expect(
      (await json(us, 'PUT', '/v1/items/docs/d1', { title: 'a', tags: ['x'], meta: { n: 1, keep: true } }))
        .status,
    ).toBe(201);
    const patched = await json(us, 'PATCH', '/v1/items/docs/d1', { title: 'b', tags: null, meta: { n: 2 } });
    expect(patched.status).toBe(200);
    expect(patched.body!.value).toEqual({ title: 'b', meta: { n: 2, keep: true } });
    expect((await json(us, 'PATCH', '/v1/items/docs/d1', '[1,2]')).body!.error.code).toBe('invalid_value');
    expect((await json(us, 'PATCH', '/v1/items/docs/new', { created: true })).status).toBe(201);
  });

  it('when a fields item is written, then PUT needs an object and PATCH sets and removes single fields', async () => {
    const notObject = await json(us, 'PUT', '/v1/items/carts/c1', '"text"');
    expect(notObject.status).toBe(400);
    expect(notObject.body!.error.code).toBe('invalid_value');
    expect((await json(us, 'PUT', '/v1/items/carts/c1', { apples: 1, pears: 2 })).status).toBe(201);
    const r = await json(us, 'PATCH', '/v1/items/carts/c1', {
      apples: 3,
      pears: null,
      plums: { ripe: true },
    });
    expect(r.body!.value).toEqual({ apples: 3, plums: { ripe: true } });
    expect(r.body!.policy).toBe('fields');
    expect((await json(us, 'GET', '/v1/items/carts/c1')).body!.value).toEqual({
      apples: 3,
      plums: { ripe: true },
    });
  });

  it('when a counter is incremented, then the total adds up; other writes get 409 and bad bodies 400', async () => {
    for (const by of [5, 7, -2])
      expect([200, 201]).toContain(
        (await json(us, 'POST', '/v1/items/likes/l1/increment', { field: 'n', by })).status,
      );
    expect((await json(us, 'GET', '/v1/items/likes/l1')).body!.value).toEqual({ n: 10 });
    const put = await json(us, 'PUT', '/v1/items/likes/l1', { n: 0 });
    expect(put.status).toBe(409);
    expect(put.body!.error.code).toBe('policy_conflict');
    expect((await json(us, 'DELETE', '/v1/items/likes/l1')).status).toBe(409);
    expect((await json(us, 'POST', '/v1/items/docs/d1/increment', { field: 'n', by: 1 })).status).toBe(409);
    for (const bad of [
      { field: 'n' },
      { field: '', by: 1 },
      { field: 'n', by: 1.5 },
      { field: 'n', by: 1, extra: 1 },
      '[]',
    ]) {
      const r = await json(us, 'POST', '/v1/items/likes/l1/increment', bad);
      expect(r.status).toBe(400);
      expect(r.body!.error.code).toBe('invalid_increment');
    }
    expect((await json(us, 'GET', '/v1/items/likes/l1')).body!.value).toEqual({ n: 10 });
  });

  it('when increments would take a counter past 2^53 − 1, then 422 counter_overflow and the total stays exact', async () => {
    const step = 1_000_000_000_000; // the largest increment the API takes
    const max = Number.MAX_SAFE_INTEGER;
    expect((await json(us, 'POST', '/v1/items/likes/big/increment', { field: 'n', by: 1 })).status).toBe(201);
    // 9,007 increments of the largest size would get there; the region's entry is set half a step short.
    const near = max - step / 2;
    const pool = new pg.Pool({ connectionString: t.databaseUrls.us!, max: 1 });
    try {
      const { rowCount } = await pool.query(
        `UPDATE item SET crdt = jsonb_build_object('counters', jsonb_build_object('n', jsonb_build_object('us', jsonb_build_object('p', $1::bigint, 'n', 0)))),
                         value = jsonb_build_object('n', $1::bigint)
          WHERE collection = 'likes' AND key = 'big'`,
        [near],
      );
      expect(rowCount).toBe(1);
    } finally {
      await pool.end();
    }
    expect((await json(us, 'GET', '/v1/items/likes/big')).body!.value).toEqual({ n: near });
    const over = await json(us, 'POST', '/v1/items/likes/big/increment', { field: 'n', by: step });
    expect(over.status).toBe(422);
    expect(over.body!.error.code).toBe('counter_overflow');
    expect(over.body!.error.message).toContain(String(max));
    expect((await json(us, 'GET', '/v1/items/likes/big')).body!.value).toEqual({ n: near });
    // What still fits goes in, exactly; one more does not; the way back down is open.
    expect(
      (await json(us, 'POST', '/v1/items/likes/big/increment', { field: 'n', by: max - near })).status,
    ).toBe(200);
    expect((await json(us, 'GET', '/v1/items/likes/big')).body!.value).toEqual({ n: max });
    expect((await json(us, 'POST', '/v1/items/likes/big/increment', { field: 'n', by: 1 })).status).toBe(422);
    expect((await json(us, 'POST', '/v1/items/likes/big/increment', { field: 'n', by: -step })).status).toBe(
      200,
    );
    expect((await json(us, 'GET', '/v1/items/likes/big')).body!.value).toEqual({ n: max - step });
  });

  it('when a patch would take the stored value past the limits on values, then 400 invalid_value and nothing changes', async () => {
    // 9,000 members stored; a patch of 2,000 more is fine on its own, but the result (11,000) is not.
    const base = Object.fromEntries(Array.from({ length: 9_000 }, (_, i) => [`m${i}`, i]));
    expect((await json(us, 'PUT', '/v1/items/docs/wide', base)).status).toBe(201);
    const before = await json(us, 'GET', '/v1/items/docs/wide');
    const more = Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`n${i}`, i]));
    const r = await json(us, 'PATCH', '/v1/items/docs/wide', more);
    expect(r.status).toBe(400);
    expect(r.body!.error.code).toBe('invalid_value');
    expect(r.body!.error.message).toMatch(/the patched value .*10000|the patched value .*10,000/);
    const after = await json(us, 'GET', '/v1/items/docs/wide');
    expect(after.headers.get('etag')).toBe(before.headers.get('etag'));
    expect(Object.keys(after.body!.value as object)).toHaveLength(9_000);
    // What stays within the limits goes in.
    const fits = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`n${i}`, i]));
    expect((await json(us, 'PATCH', '/v1/items/docs/wide', fits)).status).toBe(200);
  });

  it('when an item has been written several times, then its history lists the versions newest first', async () => {
    for (let i = 1; i <= 3; i++) await json(us, 'PUT', '/v1/items/hist/h1', { i });
    await json(us, 'DELETE', '/v1/items/hist/h1');
    const h = await json(us, 'GET', '/v1/items/hist/h1/history');
    expect(h.status).toBe(200);
    const versions = h.body!.versions as {
      outcome: string;
      deleted: boolean;
      value: unknown;
      version: string;
      origin: string;
    }[];
    expect(versions.map((v) => [v.outcome, v.deleted, v.value])).toEqual([
      ['written', true, null],
      ['written', false, { i: 3 }],
      ['written', false, { i: 2 }],
      ['written', false, { i: 1 }],
    ]);
    expect(versions.every((v) => v.origin === 'us')).toBe(true);
    expect((await json(us, 'GET', '/v1/items/hist/none/history')).status).toBe(404);
    expect((await json(us, 'GET', '/v1/items/hist/h1/history?limit=0')).status).toBe(400);
  });

  it('when a read carries a malformed session token, then 400; a token of this region is answered at once', async () => {
    const bad = await json(us, 'GET', '/v1/items/docs/d1', undefined, { 'hothot-session': 'not-a-token' });
    expect(bad.status).toBe(400);
    expect(bad.body!.error.code).toBe('invalid_session');
    const foreign = Buffer.from(JSON.stringify({ v: 1, o: { mars: 1 } })).toString('base64url');
    expect(
      (await json(us, 'GET', '/v1/items/docs/d1', undefined, { 'hothot-session': foreign })).status,
    ).toBe(400);
    const w = await json(us, 'PUT', '/v1/items/docs/s', { v: 1 });
    const token = w.headers.get('hothot-session')!;
    const r = await json(us, 'GET', '/v1/items/docs/s', undefined, { 'hothot-session': token });
    expect(r.status).toBe(200);
    expect(r.headers.get('hothot-session')).toBeTruthy();
  });

  it('when the conflict log exceeds its retention, then only the oldest rows beyond the limit go', async () => {
    const pool = t.regions.us!.pool;
    await pool.query(
      `INSERT INTO conflict (collection, key, winner, loser, winner_origin, loser_origin, rule, event_id)
       SELECT 'ret', 'k' || g, '{}', '{}', 'us', 'eu', 'lww-hlc', 'e' || g FROM generate_series(1, 10) g`,
    );
    const maintenance = new Maintenance({
      pool,
      region: 'us',
      peerRegions: () => [],
      intervalMs: 1000,
      tombstoneGraceMs: 3_600_000,
      peerSuspectAfterMs: 5000,
      conflictRetentionMs: 86_400_000,
      conflictLogMaxRows: 4,
      historyMaxVersions: 2,
      applyContext: { clock: t.regions.us!.clock, topicPrefix: t.prefix, region: 'us', policies: {} },
      log: testLogger(),
    });
    const historyRows = async (key: string) =>
      (
        await pool.query<{ version: string }>(
          `SELECT hlc_wall || '.' || hlc_logical AS version FROM item_history
            WHERE collection = 'hist' AND key = $1 ORDER BY hlc_wall DESC, hlc_logical DESC`,
          [key],
        )
      ).rows.map((r) => r.version);
    const before = await historyRows('h1');
    expect(before.length).toBe(4);
    const report = await maintenance.runOnce();
    expect(report.conflictsPruned).toBe(6);
    const { rows } = await pool.query<{ key: string }>(
      "SELECT key FROM conflict WHERE collection = 'ret' ORDER BY id",
    );
    expect(rows.map((r) => r.key)).toEqual(['k7', 'k8', 'k9', 'k10']);
    // History is bounded per item too: the newest two versions stay, in the table itself.
    expect(report.historyPruned).toBeGreaterThanOrEqual(2);
    expect(await historyRows('h1')).toEqual(before.slice(0, 2));
    // The next run looks only at rows written since: a new item's versions are pruned, h1 is left.
    for (let i = 1; i <= 4; i++) await json(us, 'PUT', '/v1/items/hist/h2', { i });
    const again = await maintenance.runOnce();
    expect(again.historyPruned).toBe(2);
    expect((await historyRows('h2')).length).toBe(2);
    expect((await historyRows('h1')).length).toBe(2);
  });
});

const twoRegionsTest = regionsTest(() =>
  startTestRegions(['us', 'eu'], { HEARTBEAT_INTERVAL_MS: '200' }, (r): Record<string, string> =>
    r === 'us' ? { COLLECTION_POLICIES: 'carts=fields' } : {},
  ),
);

describe('regions that declare different policies', () => {
  let t: TestRegions;

  twoRegionsTest.beforeAll(({ regions }) => {
    t = regions;
  }, REGIONS_START_MS);

  it('when a peer writes a collection under another policy, then this region parks its events and says so in status', async () => {
    const us = t.regions.us!.url;
    const eu = t.regions.eu!.url;
    expect((await json(us, 'PUT', '/v1/items/carts/c1', { a: 1 })).status).toBe(201);
    expect((await json(us, 'PUT', '/v1/items/plain/p1', { a: 1 })).status).toBe(201);
    await waitFor(
      'eu to apply the lww write',
      async () => (await json(eu, 'GET', '/v1/items/plain/p1')).status === 200 || undefined,
    );
    const parked = await waitFor('eu to park the fields write', async () => {
      const { rows } = await t.regions.eu!.pool.query<{ code: string; reason: string }>(
        'SELECT code, reason FROM dead_letter',
      );
      return rows.length > 0 ? rows : undefined;
    });
    expect(parked).toEqual([
      {
        code: 'policy_mismatch',
        reason: expect.stringMatching(/carts is fields in us but lww here/) as string,
      },
    ]);
    expect((await json(eu, 'GET', '/v1/items/carts/c1')).status).toBe(404);
    const status = await waitFor('eu status to name the difference', async () => {
      const s = (await json(eu, 'GET', '/v1/status')).body!;
      return s.policies.peers.us.differingCollections?.length ? s : undefined;
    });
    expect(status.policies.peers.us.differingCollections).toEqual(['carts']);
  });
});
