/**
 * A region away for longer than Kafka keeps its peers' events: eu stops, us takes writes, and Kafka
 * deletes them before eu reads them (the records are deleted up to the high watermark with Kafka's
 * DeleteRecords — what retention does to old segments, without waiting for the broker's retention
 * check). When eu comes back, kafkajs would silently resume at the earliest offset; eu instead reports
 * the loss — `/v1/status` `replication.complete: false` with the events lost, `/metrics`
 * `hothot_replication_complete 0` — and `hothot lab rebootstrap eu` (the same snapshot copy as
 * add-region, merged) brings it back: identical rows in both regions, eu's own writes kept, complete
 * again. On a lab of its own.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { labDown, restartLabRegion } from '../../infra/lab/lab.js';
import { readLabState } from '../../infra/lab/labState.js';
import { withLabAdmin } from '../../infra/lab/membership/labAdminKafka.js';
import { rebootstrapRegion } from '../../infra/lab/membership/rebootstrapRegion.js';
import { changeTopic } from '../../shared/kafka/topics.js';
import { waitFor } from '../support/harness.js';
import { waitAllUp, type FaultLab } from '../support/faultLab.js';
import { regionStatus, waitForConvergence, type RegionStatusView } from '../support/workload.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

type StatusWithReplication = RegionStatusView & {
  replication: { complete: boolean; lostEvents: number; gaps: { origin: string; partition: number }[] };
};

const BEFORE = 100;
const WHILE_AWAY = 300;
const EU_OWN = 20;

async function put(url: string, collection: string, key: string, value: unknown): Promise<void> {
  const res = await fetch(`${url}/v1/items/${collection}/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  expect(res.status, `PUT ${collection}/${key}`).toBeLessThan(300);
  await res.body?.cancel();
}

async function putMany(url: string, collection: string, n: number, prefix: string): Promise<void> {
  for (let i = 0; i < n; i += 20)
    await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, (_, j) =>
        put(url, collection, `${prefix}${i + j}`, { i: i + j }),
      ),
    );
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m === null ? undefined : Number(m[1]);
}

const test = faultLabTest({ regions: ['us', 'eu'] });

describe('events older than Kafka keeps', () => {
  let fl: FaultLab;

  test.beforeAll(async ({ lab }) => {
    fl = lab;
    await waitAllUp(fl);
  }, LAB_START_MS);
  afterAll(async () => {
    if (fl !== undefined) await labDown(fl.dir).catch(() => undefined);
  }, 180_000);

  it(
    'when us’s events expire while eu is stopped, then eu reports itself incomplete, and after rebootstrap both hold identical rows',
    { timeout: 240_000 },
    async () => {
      const us = fl.regions.us!.url;
      const eu = fl.regions.eu!.url;
      await putMany(us, 'exp', BEFORE, 'before-');
      await waitForConvergence(fl.dbs(), 30_000);

      await fl.regions.eu!.process.stop();
      await putMany(us, 'exp', WHILE_AWAY, 'away-');
      await waitFor('us to publish everything', async () => (await regionStatus(us)).outbox.rows === 0, {
        timeoutMs: 20_000,
      });
      // Kafka deletes us's topic up to its end: eu's committed offsets now lie below the earliest kept.
      const topic = changeTopic(fl.prefix, 'us');
      const lows = await withLabAdmin(readLabState(fl.dir)!, async (admin) => {
        const offsets = await admin.fetchTopicOffsets(topic);
        await admin.deleteTopicRecords({
          topic,
          partitions: offsets.map((o) => ({ partition: o.partition, offset: o.high })),
        });
        return (await admin.fetchTopicOffsets(topic)).map((o) => Number(o.low));
      });
      const deleted = lows.reduce((n, l) => n + l, 0);
      // Every partition eu had not read to its end loses events (each carries heartbeats at least).
      const partitionsLosing = lows.filter((l) => l > 0).length;

      await restartLabRegion(fl.dir, 'eu');
      const t0 = Date.now();
      const reported = await waitFor<StatusWithReplication>(
        'eu to report events lost',
        async () => {
          const s = (await regionStatus(eu)) as StatusWithReplication;
          return s.replication.complete === false && s.replication.gaps.length >= partitionsLosing
            ? s
            : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const reportedMs = Date.now() - t0;
      const completeMetric = await metric(eu, 'hothot_replication_complete');
      const lostMetric = await metric(eu, 'hothot_replication_lost_events');
      // What expired is really missing in eu, and eu goes on taking writes of its own.
      const away = await fl.regions.eu!.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM item WHERE collection = 'exp' AND key LIKE 'away-%'",
      );
      await putMany(eu, 'exp', EU_OWN, 'eu-own-');

      const lines: string[] = [];
      const r = await rebootstrapRegion({
        root: fl.dir,
        region: 'eu',
        source: 'us',
        onProgress: (e) => {
          if (e.type === 'info') lines.push(e.message);
        },
      });
      const after = await waitFor<StatusWithReplication>(
        'eu to report itself complete again',
        async () => {
          const s = (await regionStatus(eu)) as StatusWithReplication;
          return s.replication.complete ? s : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const { rows, ms } = await waitForConvergence(fl.dbs(), 60_000);
      const exp = rows.filter((x) => x.collection === 'exp');
      console.log(
        `[expired events] deleted ${deleted} records of ${topic}; eu reported ${reported.replication.lostEvents} events lost ` +
          `(${reported.replication.gaps.length} partitions) ${reportedMs}ms after restart, metric complete=${completeMetric} lost=${lostMetric}; ` +
          `eu held ${away.rows[0]!.n}/${WHILE_AWAY} of the expired writes; rebootstrap ${r.totalMs}ms ` +
          `(${r.snapshot.items} items, ${r.snapshot.inserted} inserted, ${r.snapshot.merged} merged, ${r.gapsResolved} gaps resolved); ` +
          `converged ${ms}ms after; ${exp.length} rows identical`,
      );
      for (const l of lines) console.log(`[expired events]   ${l}`);

      expect(deleted).toBeGreaterThanOrEqual(WHILE_AWAY);
      expect(reported.replication.lostEvents).toBeGreaterThanOrEqual(WHILE_AWAY);
      // Counted from where eu had got to, not from 0: what it applied before it stopped is not lost.
      expect(reported.replication.lostEvents).toBeLessThanOrEqual(deleted - BEFORE);
      expect(reported.replication.gaps.every((g) => g.origin === 'us')).toBe(true);
      expect(completeMetric).toBe(0);
      expect(lostMetric).toBe(reported.replication.lostEvents);
      expect(away.rows[0]!.n).toBe(0);
      expect(r.gapsResolved).toBe(reported.replication.gaps.length);
      expect(after.replication.lostEvents).toBe(0);
      expect(await metric(eu, 'hothot_replication_complete')).toBe(1);
      expect(exp.length).toBe(BEFORE + WHILE_AWAY + EU_OWN);
      expect(exp.filter((x) => x.key.startsWith('eu-own-')).length).toBe(EU_OWN);
    },
  );
});
