/**
 * Digest anti-entropy on real PostgreSQL and Kafka, two in-process regions (us, eu) with signed
 * events: rows damaged by hand in us's PostgreSQL — values changed without a new version, versions
 * put back to an older one (a restore), live rows and tombstones deleted — are found by the digest
 * exchange, narrowed down to their keys and repaired by republished versions through the normal
 * pipeline, until both regions are digest-equal again and every damaged row holds its value from
 * before the damage. Figures (detection, repair, keys republished) are printed and bounded.
 *
 * Also: the digest the triggers keep equals one computed from scratch from the rows (in TypeScript,
 * shared/domain/digest.ts); GET /v1/digest answers per bucket and refuses a bad bucket with 400;
 * /v1/status and /metrics show the counters; a digest message nobody signed is quarantined.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../infra/lab/waitFor.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import {
  DIGEST_BUCKETS,
  bucketOf,
  combineDigests,
  digestHex,
  itemDigest,
} from '../../shared/domain/digest.js';
import { createKafka } from '../../shared/kafka/client.js';
import { encodeEvent, type DigestEvent } from '../../shared/kafka/envelope.js';
import { changeTopic } from '../../shared/kafka/topics.js';
import { kafkaClientSecurity, sharedInfra, testAdminKey, testLogger } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { regionsTest } from '../support/fixtures.js';

const SEED = Number(process.env.HOTHOT_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ITEMS = 240;
/** Items written at once. */
const WRITERS = 12;
const DAMAGED_PER_KIND = 10;
const DETECT_WITHIN_MS = 30_000;
const REPAIR_WITHIN_MS = 60_000;

interface DigestBody {
  digest: string;
  items: number;
  bucketDigests: { bucket: number; digest: string; items: number }[];
}

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

async function put(base: string, key: string, value: unknown): Promise<void> {
  const res = await fetch(`${base}/v1/items/ae/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  expect(res.status).toBeLessThan(300);
}

async function del(base: string, key: string): Promise<void> {
  const res = await fetch(`${base}/v1/items/ae/${key}`, { method: 'DELETE' });
  expect(res.status).toBeLessThan(300);
}

/** Every row's identity, version and content, as text, in key order. */
async function rowsOf(db: pg.Pool): Promise<string[]> {
  const { rows } = await db.query<{ r: string }>(
    `SELECT concat_ws('|', collection, key, hlc_wall, hlc_logical, origin, vv::text, deleted, value::text, policy, crdt::text) AS r
       FROM item ORDER BY collection, key`,
  );
  return rows.map((r) => r.r);
}

let t: TestRegions;
let us: pg.Pool;
let eu: pg.Pool;
const url = (r: string) => t.regions[r]!.url;

const test = regionsTest(() => startTestRegions(['us', 'eu']));

describe('digest anti-entropy, two regions', () => {
  test.beforeAll(async ({ regions }) => {
    console.log(`seed=${SEED} (rerun with HOTHOT_SEED=${SEED})`);
    t = regions;
    us = new pg.Pool({ connectionString: t.databaseUrls.us, max: 2 });
    eu = new pg.Pool({ connectionString: t.databaseUrls.eu, max: 2 });
    // Items written in both regions, most of them twice (so that an older version exists), some deleted.
    const writeOne = async (i: number) => {
      const home = i % 2 === 0 ? url('us') : url('eu');
      await put(home, `k${i}`, { i, v: 1 });
      if (i % 4 !== 3) await put(home, `k${i}`, { i, v: 2 });
      if (i % 10 === 9) await del(home, `k${i}`);
    };
    for (let i = 0; i < ITEMS; i += WRITERS)
      await Promise.all(Array.from({ length: Math.min(WRITERS, ITEMS - i) }, (_, n) => writeOne(i + n)));
    let last = '';
    await waitFor(
      async () => {
        const [a, b] = await Promise.all([
          getJson<DigestBody>(`${url('us')}/v1/digest`),
          getJson<DigestBody>(`${url('eu')}/v1/digest`),
        ]);
        last = `us ${a.body.items} items ${a.body.digest}, eu ${b.body.items} items ${b.body.digest}`;
        return a.body.items === ITEMS && a.body.digest === b.body.digest;
      },
      {
        description: 'both regions to hold every item, digest-equal',
        timeoutMs: 90_000,
        intervalMs: 250,
      },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message} (last: ${last})`);
    });
  }, 300_000);

  afterAll(async () => {
    await us?.end();
    await eu?.end();
  });

  it('when the digest is recomputed from the rows, then it equals the one the triggers kept, bucket by bucket', async () => {
    const { rows } = await eu.query<{
      collection: string;
      key: string;
      hlcWall: string;
      hlcLogical: number;
      origin: string;
      vvText: string;
      deleted: boolean;
      policy: string;
      valueText: string | null;
      crdtText: string | null;
    }>(
      `SELECT collection, key, hlc_wall AS "hlcWall", hlc_logical AS "hlcLogical", origin, vv::text AS "vvText",
              deleted, policy, value::text AS "valueText", crdt::text AS "crdtText" FROM item`,
    );
    const byBucket = Array.from({ length: DIGEST_BUCKETS }, () => [] as bigint[]);
    for (const r of rows)
      byBucket[bucketOf(r.collection, r.key)]!.push(itemDigest({ ...r, hlcWall: Number(r.hlcWall) }));
    const served = await getJson<DigestBody>(`${url('eu')}/v1/digest`);
    expect(served.status).toBe(200);
    expect(served.body.bucketDigests.map((b) => b.digest)).toEqual(
      byBucket.map((ds) => digestHex(combineDigests(ds))),
    );
    expect(served.body.bucketDigests.map((b) => b.items)).toEqual(byBucket.map((ds) => ds.length));

    const one = served.body.bucketDigests.find((b) => b.items > 0)!;
    const bucket = await getJson<{ digest: string; items: { key: string; version: string }[] }>(
      `${url('eu')}/v1/digest?bucket=${one.bucket}`,
    );
    expect(bucket.body.digest).toBe(one.digest);
    expect(bucket.body.items).toHaveLength(one.items);
    for (const bad of ['-1', '1024', 'abc', '1.5'])
      expect((await fetch(`${url('eu')}/v1/digest?bucket=${bad}`)).status).toBe(400);
  });

  it('when rows are damaged by hand in one region, then the divergence is detected and repaired through the pipeline, with few keys republished', async () => {
    const random = seededRandom(SEED);
    const before = await rowsOf(eu);
    expect(await rowsOf(us)).toEqual(before);
    const { rows: all } = await us.query<{ key: string; deleted: boolean; versions: number }>(
      `SELECT key, deleted, (SELECT sum(value::int) FROM jsonb_each_text(vv))::int AS versions FROM item ORDER BY key`,
    );
    const pick = (pool: { key: string }[], n: number, taken: Set<string>) => {
      const free = pool.filter((r) => !taken.has(r.key));
      const out: string[] = [];
      while (out.length < n && free.length > 0)
        out.push(free.splice(Math.floor(random() * free.length), 1)[0]!.key);
      for (const k of out) taken.add(k);
      return out;
    };
    const taken = new Set<string>();
    const live = all.filter((r) => !r.deleted);
    const valueChanged = pick(live, DAMAGED_PER_KIND, taken);
    const restored = pick(
      live.filter((r) => r.versions >= 2),
      DAMAGED_PER_KIND,
      taken,
    );
    const deletedLive = pick(live, DAMAGED_PER_KIND, taken);
    const deletedTombstones = pick(
      all.filter((r) => r.deleted),
      Math.min(DAMAGED_PER_KIND, all.filter((r) => r.deleted).length),
      taken,
    );
    const damaged = taken.size;

    const startedAt = Date.now();
    let detectedAt: number | undefined;
    const onDivergent = () => (detectedAt ??= Date.now());
    for (const r of Object.values(t.regions)) r.antiEntropy!.on('divergent', onDivergent);
    const republishedBefore = Object.values(t.regions).reduce(
      (n, r) => n + r.antiEntropy!.snapshot().keysRepublished,
      0,
    );

    // The damage, by hand, in us's PostgreSQL.
    await us.query(
      `UPDATE item SET value = jsonb_build_object('damaged', true) WHERE collection = 'ae' AND key = ANY($1)`,
      [valueChanged],
    );
    // Back to the first version (as a restore from an older backup would): older stamp and vector.
    const { rows: firsts } = await us.query<{
      key: string;
      wall: string;
      logical: number;
      origin: string;
      vv: unknown;
      value: unknown;
    }>(
      `SELECT DISTINCT ON (key) key, hlc_wall AS wall, hlc_logical AS logical, origin, vv, value FROM item_history
        WHERE collection = 'ae' AND key = ANY($1) ORDER BY key, id`,
      [restored],
    );
    expect(firsts).toHaveLength(restored.length);
    for (const f of firsts)
      await us.query(
        `UPDATE item SET hlc_wall = $2, hlc_logical = $3, origin = $4, vv = $5, value = $6 WHERE collection = 'ae' AND key = $1`,
        [f.key, f.wall, f.logical, f.origin, JSON.stringify(f.vv), JSON.stringify(f.value)],
      );
    await us.query(`DELETE FROM item WHERE collection = 'ae' AND key = ANY($1)`, [
      [...deletedLive, ...deletedTombstones],
    ]);
    expect(await rowsOf(us)).not.toEqual(before);

    await waitFor(() => detectedAt, {
      description: 'the damage to be detected',
      timeoutMs: DETECT_WITHIN_MS,
      intervalMs: 100,
    });
    await waitFor(
      async () => {
        const [a, b] = await Promise.all([
          getJson<DigestBody>(`${url('us')}/v1/digest`),
          getJson<DigestBody>(`${url('eu')}/v1/digest`),
        ]);
        return a.body.digest === b.body.digest && (await rowsOf(us)).join('\n') === before.join('\n');
      },
      {
        description: 'us to be repaired (digest-equal, every row as before the damage)',
        timeoutMs: REPAIR_WITHIN_MS,
        intervalMs: 250,
      },
    );
    const repairedAt = Date.now();
    const republished =
      Object.values(t.regions).reduce((n, r) => n + r.antiEntropy!.snapshot().keysRepublished, 0) -
      republishedBefore;
    const detectMs = detectedAt! - startedAt;
    const repairMs = repairedAt - startedAt;
    console.log(
      `anti-entropy: damaged=${damaged} (value=${valueChanged.length} restored=${restored.length} deleted=${deletedLive.length} ` +
        `tombstonesDeleted=${deletedTombstones.length}) detectMs=${detectMs} repairMs=${repairMs} republished=${republished} ` +
        `ratio=${(republished / damaged).toFixed(2)}`,
    );
    expect(detectMs).toBeLessThanOrEqual(DETECT_WITHIN_MS);
    expect(repairMs).toBeLessThanOrEqual(REPAIR_WITHIN_MS);
    expect(republished).toBeGreaterThanOrEqual(damaged - deletedTombstones.length);
    expect(republished).toBeLessThanOrEqual(2 * damaged);
    expect(await rowsOf(eu)).toEqual(before);
    expect((await us.query<{ n: number }>('SELECT count(*)::int AS n FROM item_suspect')).rows[0]!.n).toBe(0);

    // Status and metrics show it.
    const status = await getJson<{
      antiEntropy: {
        bucketsCompared: number;
        bucketsDivergent: number;
        bucketsRepaired: number;
        keysRepublished: number;
      };
    }>(`${url('us')}/v1/status`);
    expect(status.body.antiEntropy.bucketsCompared).toBeGreaterThan(0);
    expect(status.body.antiEntropy.bucketsDivergent).toBeGreaterThan(0);
    const metrics = await (await fetch(`${url('us')}/metrics`)).text();
    for (const name of [
      'hothot_antientropy_buckets_compared_total',
      'hothot_antientropy_buckets_divergent_total',
      'hothot_antientropy_buckets_repaired_total',
      'hothot_antientropy_keys_republished_total',
    ])
      expect(metrics).toMatch(new RegExp(`^${name}\\{[^}]*\\} \\d+`, 'm'));
    await waitFor(
      () => Object.values(t.regions).reduce((n, r) => n + r.antiEntropy!.snapshot().divergentNow, 0) === 0,
      { description: 'no bucket to be counted divergent any more', timeoutMs: 30_000, intervalMs: 250 },
    );
    const totals = Object.values(t.regions).map((r) => r.antiEntropy!.snapshot());
    console.log(
      `anti-entropy counters: ${totals.map((s, i) => `${Object.keys(t.regions)[i]} compared=${s.bucketsCompared} divergent=${s.bucketsDivergent} repaired=${s.bucketsRepaired} republished=${s.keysRepublished}`).join('; ')}`,
    );
    expect(totals.reduce((n, s) => n + s.bucketsRepaired, 0)).toBeGreaterThan(0);
  });

  it('when anti-entropy is paused and a row is damaged, then `hothot repair --check` prints the key with both versions and exits 1; once repaired, 0', async () => {
    for (const r of Object.values(t.regions)) await r.antiEntropy!.stop();
    const dir = mkdtempSync(join(tmpdir(), 'hothot-repair-check-'));
    try {
      const keyFile = join(dir, 'admin-key');
      writeFileSync(keyFile, `${testAdminKey()}\n`, { mode: 0o600 });
      const check = () =>
        promisify(execFile)(
          process.execPath,
          [
            'bin/hothot.js',
            'repair',
            '--check',
            url('us'),
            url('eu'),
            '--key-file',
            keyFile,
            '--settle-ms',
            '300',
          ],
          { cwd: process.cwd(), timeout: 60_000 },
        ).then(
          (r) => ({ code: 0, stdout: r.stdout }),
          (e: { code: number; stdout: string; stderr: string }) => ({
            code: e.code,
            stdout: e.stdout + e.stderr,
          }),
        );
      const clean = await check();
      expect(clean.stdout).toMatch(/digest-equal: nothing differs/);
      expect(clean.code).toBe(0);

      const { rows } = await eu.query<{ key: string; version: string }>(
        `SELECT key, hlc_wall || '.' || hlc_logical || '.' || origin AS version FROM item
          WHERE collection = 'ae' AND NOT deleted ORDER BY key LIMIT 1`,
      );
      const victim = rows[0]!;
      await eu.query(`UPDATE item SET value = '{"hand": 1}' WHERE collection = 'ae' AND key = $1`, [
        victim.key,
      ]);
      const found = await check();
      console.log(found.stdout);
      expect(found.code).toBe(1);
      expect(found.stdout).toContain(`ae/${victim.key}`);
      expect(found.stdout).toMatch(
        new RegExp(
          `${victim.version.replace(/\./g, '\\.')}\\s+${victim.version.replace(/\./g, '\\.')}\\s+same version, different content`,
        ),
      );
      expect(found.stdout).toMatch(/1 key\(s\) differ in 1 bucket\(s\)/);

      for (const r of Object.values(t.regions)) r.antiEntropy!.start();
      await waitFor(async () => (await check()).code === 0, {
        description: 'the damaged row to be repaired',
        timeoutMs: REPAIR_WITHIN_MS,
        intervalMs: 500,
      });
      expect(
        (
          await eu.query<{ v: unknown }>(`SELECT value AS v FROM item WHERE collection = 'ae' AND key = $1`, [
            victim.key,
          ])
        ).rows[0]!.v,
      ).not.toEqual({ hand: 1 });
    } finally {
      for (const r of Object.values(t.regions)) r.antiEntropy!.start();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('when a digest event that nobody signed is published on a region’s topic, then it is quarantined and not recorded', async () => {
    const kafka = createKafka(
      { clientId: 'ae-forger', brokers: [...sharedInfra().kafkaBrokers], ...securityOf() },
      testLogger('forger'),
    );
    const producer = kafka.producer();
    await producer.connect();
    const forged: DigestEvent = {
      v: 1,
      type: 'digest',
      origin: 'us',
      hlc: { wall: Date.now(), logical: 0, region: 'us' },
      sentAt: Date.now(),
      settledBefore: Date.now(),
      gcHorizon: 0,
      digests: Array.from({ length: DIGEST_BUCKETS }, () => '0000000000000000'),
      maxWalls: Array.from({ length: DIGEST_BUCKETS }, () => 0),
    };
    const quarantinedBefore = await quarantinedIn(eu);
    await producer.send({
      topic: changeTopic(t.prefix, 'us'),
      messages: [{ key: '_digest/us', value: encodeEvent(forged) }],
    });
    await producer.disconnect();
    await waitFor(async () => (await quarantinedIn(eu)) > quarantinedBefore, {
      description: 'eu to quarantine the unsigned digest',
      timeoutMs: 30_000,
    });
    const { rows } = await eu.query<{ sentAt: Date }>(
      `SELECT sent_at AS "sentAt" FROM peer_digest WHERE reporter = 'us'`,
    );
    expect(rows[0]?.sentAt.getTime()).not.toBe(forged.sentAt);
  });
});

function securityOf() {
  const security = kafkaClientSecurity();
  return security === undefined ? {} : { security };
}

async function quarantinedIn(db: pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM dead_letter WHERE code = 'quarantined'`,
  );
  return rows[0]!.n;
}
