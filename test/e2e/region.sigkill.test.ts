import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng, testSeed } from '../support/harness.js';
import { putItem, startCluster, waitConverged, type Cluster } from '../support/twoRegions.js';

/**
 * SIGKILL a region process under write load, restart it, and check that no acknowledged write was
 * lost and that both regions converge.
 */
describe('a region process killed under write load', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster(['us', 'eu']);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

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
    let failed = 0;
    let stop = false;

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
            failed += 1;
          }
        } catch {
          failed += 1; // connection refused while the process is down
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };

    const us = cluster.regions.us!.process;
    const load = regions.flatMap((r) => Array.from({ length: workersPerRegion }, (_, w) => worker(r, w)));
    await new Promise((r) => setTimeout(r, 1500)); // load runs for a while before the crash
    const ackedBeforeKill = acked;
    us.kill('SIGKILL');
    const exit = await us.waitForExit();
    expect(exit.signal).toBe('SIGKILL');
    await us.restart();
    await new Promise((r) => setTimeout(r, 1500)); // and for a while after the restart
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
    console.log(
      `[sigkill] seed=${seed} acked=${acked} (before kill ${ackedBeforeKill}) failedRequests=${failed} ` +
        `singleWriterKeys=${ackedSeq.size} lost=${lost} convergedAfterLoadMs=${convergeMs}`,
    );
    expect(ackedBeforeKill).toBeGreaterThan(0);
    expect(acked).toBeGreaterThan(ackedBeforeKill);
    expect(lost).toBe(0);
  });
});
