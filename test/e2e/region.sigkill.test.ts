import { describe, expect, it } from 'vitest';
import { prng, testSeed } from '../support/harness.js';
import { compareConflictLogs, putItem, waitConverged, type Cluster } from '../support/twoRegions.js';
import { sleep } from '../../infra/lab/waitFor.js';
import { clusterTest, REGIONS_START_MS } from '../support/fixtures.js';

/**
 * A restarted region process answers /readyz within this: tsx compiles its sources at start, 11–18 s
 * here with other labs busy on the same two cores (3–7 s in the fault labs' quieter runs).
 */
const RESTART_READY_MS = 30_000;
/** After the load stops: identical rows, empty outboxes. */
const CONVERGE_MS = 20_000;

/**
 * SIGKILL a region process under write load, restart it, and check that no acknowledged write was
 * lost, that both regions converge with consistent conflict logs, and that only the killed region's
 * requests failed, only while it was down. Every printed figure is asserted.
 */
const test = clusterTest(['us', 'eu']);

describe('a region process killed under write load', () => {
  let cluster: Cluster;

  test.beforeAll(({ cluster: started }) => {
    cluster = started;
  }, REGIONS_START_MS);

  it('when us is SIGKILLed mid-load and restarted, then every acknowledged write survives and both regions converge', async () => {
    const seed = testSeed('sigkill');
    const random = prng(seed);
    const regions = ['us', 'eu'] as const;
    const ownKeys = 8; // single-writer keys per worker: their final value must be the last acked one or later
    const workersPerRegion = 3;
    const sharedKeys = Array.from({ length: 6 }, (_, i) => `s${i}`);
    /** Highest acknowledged sequence number per single-writer key. */
    const ackedSeq = new Map<string, number>();
    const written = new Set<string>(); // every value sent to a shared key (acked or not)
    let acked = 0;
    let stop = false;
    /** When each failed request failed, per region. */
    const failedAt: Record<(typeof regions)[number], number[]> = { us: [], eu: [] };

    const worker = async (region: (typeof regions)[number], w: number) => {
      const seqs = new Map<string, number>();
      while (!stop) {
        const base = cluster.regions[region]!.url;
        const shared = random() < 0.3;
        const key = shared
          ? sharedKeys[Math.floor(random() * sharedKeys.length)]!
          : `${region}-${w}-${Math.floor(random() * ownKeys)}`;
        const seq = (seqs.get(key) ?? 0) + 1;
        seqs.set(key, seq);
        const value = { region, w, seq };
        if (shared) written.add(`${region}/${w}/${seq}`);
        try {
          const r = await putItem(base, 'load', key, value);
          if (r.status === 200 || r.status === 201) {
            acked += 1;
            if (!shared) ackedSeq.set(key, seq);
          } else {
            failedAt[region].push(Date.now());
          }
        } catch {
          failedAt[region].push(Date.now()); // connection refused while the process is down
          await sleep(20);
        }
      }
    };

    const us = cluster.regions.us!.process;
    const load = regions.flatMap((r) => Array.from({ length: workersPerRegion }, (_, w) => worker(r, w)));
    await sleep(1500); // load runs for a while before the crash
    const ackedBeforeKill = acked;
    const killedAt = Date.now();
    us.kill('SIGKILL');
    const exit = await us.waitForExit();
    expect(exit.signal).toBe('SIGKILL');
    const restartAt = Date.now();
    await us.restart();
    const readyAt = Date.now();
    await sleep(1500); // and for a while after the restart
    stop = true;
    await Promise.all(load);

    const healStarted = Date.now();
    const state = await waitConverged(cluster, 90_000);
    const convergeMs = Date.now() - healStarted;

    let lost = 0;
    for (const [key, seq] of ackedSeq) {
      const row = state.find((i) => i.collection === 'load' && i.key === key);
      const finalSeq = (row?.value as { seq?: number } | undefined)?.seq ?? 0;
      if (row === undefined || row.deleted || finalSeq < seq) lost += 1;
    }
    for (const key of sharedKeys) {
      const row = state.find((i) => i.collection === 'load' && i.key === key);
      const v = row?.value as { region: string; w: number; seq: number } | undefined;
      if (v) expect(written.has(`${v.region}/${v.w}/${v.seq}`)).toBe(true);
    }
    const conflicts = await compareConflictLogs(Object.values(cluster.regions), {
      collections: ['load'],
      finalRows: state,
    });
    const usFailures = failedAt.us.map((t) => t - killedAt);
    console.log(
      `[sigkill] seed=${seed} acked=${acked} (before kill ${ackedBeforeKill}) failedRequests=${usFailures.length + failedAt.eu.length} ` +
        `(us ${usFailures.length}, from ${Math.min(...usFailures)}ms to ${Math.max(...usFailures)}ms after the kill; us ready again ${readyAt - killedAt}ms after it, ` +
        `restart ${readyAt - restartAt}ms; eu ${failedAt.eu.length}) singleWriterKeys=${ackedSeq.size} lost=${lost} convergedAfterLoadMs=${convergeMs} ` +
        `conflicts: us ${conflicts.counts.us}, eu ${conflicts.counts.eu} (identical in both ${conflicts.common}, problems ${conflicts.problems.length})`,
    );
    expect(ackedBeforeKill).toBeGreaterThan(0);
    expect(acked).toBeGreaterThan(ackedBeforeKill);
    expect(ackedSeq.size).toBeGreaterThan(0);
    expect(lost).toBe(0);
    // Only us's requests failed, and only while it was down (the last in flight ones may fail on
    // their way back, shortly after it answered /readyz again).
    expect(failedAt.eu).toEqual([]);
    expect(usFailures.length).toBeGreaterThan(0);
    expect(Math.min(...usFailures)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...usFailures)).toBeLessThanOrEqual(readyAt - killedAt + 500);
    expect(readyAt - restartAt).toBeLessThanOrEqual(RESTART_READY_MS);
    expect(convergeMs).toBeLessThanOrEqual(CONVERGE_MS);
    expect(conflicts.problems).toEqual([]);
  });
});
