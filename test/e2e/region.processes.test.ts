/**
 * A region of two processes (API_PROCESSES=2: a node:cluster primary, two API workers and a relay
 * worker that leads) in a real lab under write load: the relay worker is SIGKILLed; an API worker
 * takes the lead (the relay moves with it) within the 2 s and no request fails (the relay
 * worker serves none); the primary starts a new relay worker, which takes the lead back; then an API
 * worker is SIGKILLed: only requests in flight at it fail, none meets its replacement starting;
 * afterwards both regions hold every acknowledged write.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../infra/lab/waitFor.js';
import { readLeaderPid } from '../../shared/db/queries/pgStatActivity.js';
import { prng, testSeed, waitFor } from '../support/harness.js';
import { waitAllUp, type FaultLab } from '../support/faultLab.js';
import { regionStatus, Workload, waitForConvergence } from '../support/workload.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';
import { parseStageHistograms } from '../../bench/measure/stageHistogram.js';

const TAKEOVER_BOUND_MS = 2_000;
const CONVERGE_MS = 60_000;
const WRITERS_PER_REGION = 2;
/**
 * How long a worker the primary forks again may take to start and, for a relay worker, to take the
 * lead back. The lab runs the sources through tsx: under this test's write load a worker took
 * 10–13 s to its first log line on an otherwise idle machine (2026-12-02), and a clean-clone CI run,
 * with other test files beside it, once went past 30 s. Not a product bound: the one that is, an API
 * worker leading within TAKEOVER_BOUND_MS, is asserted below.
 */
const WORKER_START_MS = 60_000;

const test = faultLabTest({ regions: ['us', 'eu'], regionEnv: { API_PROCESSES: '2' } });

describe('a region of two processes', () => {
  let fl: FaultLab;

  test.beforeAll(async ({ lab }) => {
    fl = lab;
    await waitAllUp(fl);
  }, LAB_START_MS);

  it('when the relay worker of us is SIGKILLed under load, then an API worker leads within 2 s, no request fails, a new relay worker leads again, killing an API worker fails only its requests in flight, and nothing acknowledged is lost', async () => {
    const usDb = fl.dbs().us!;
    const primaryPid = fl.regions.us!.process.pid;
    // The relay workers' pids, from their "region started" lines (a relay worker's carry "worker":"relay").
    const started = (relay: boolean) =>
      readFileSync(fl.regions.us!.process.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"worker":"relay"') === relay && l.includes('"msg":"region started"'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid);
    const relayWorkers = () => started(true);
    const apiWorkersStarted = () => started(false);
    const first = await waitFor(
      'the relay worker of us to lead',
      async () => {
        const pid = await readLeaderPid(usDb);
        return pid !== null && relayWorkers().includes(pid) ? pid : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(first).not.toBe(primaryPid);
    // /v1/status describes the region: the API workers that answer show the leader's relay, running.
    await waitFor(
      'the API workers to show the relay worker’s relay in /v1/status',
      async () => {
        const seen = await Promise.all([1, 2, 3, 4].map(() => regionStatus(fl.regions.us!.url)));
        expect(
          seen.every((s) => s.processes?.leaderPid === first && s.processes.answeredBy.pid !== first),
        ).toBe(true);
        return seen.every((s) => s.relay?.running === true);
      },
      { timeoutMs: 10_000 },
    );
    const load = new Workload({
      targets: { us: fl.regions.us!.url, eu: fl.regions.eu!.url },
      collection: 'procs',
      mode: 'unique',
      random: prng(testSeed('two processes')),
      writersPerTarget: WRITERS_PER_REGION,
    });
    load.start();
    try {
      await sleep(2_000);
      load.phase = 'kill';
      const killedAt = Date.now();
      process.kill(first, 'SIGKILL');
      const next = await waitFor(
        'another worker to lead us',
        async () => {
          const pid = await readLeaderPid(usDb);
          return pid !== null && pid !== first ? pid : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      const tookMs = Date.now() - killedAt;
      // The primary forks a new relay worker (after 500 ms), which takes the lead from the API worker.
      const relayAgain = await waitFor(
        'a new relay worker to lead us',
        async () => {
          const pid = await readLeaderPid(usDb);
          return pid !== null && pid !== first && relayWorkers().includes(pid) ? pid : undefined;
        },
        { timeoutMs: WORKER_START_MS, intervalMs: 50 },
      );
      const backMs = Date.now() - killedAt;
      await sleep(1_000);
      // An API worker SIGKILLed: only requests in flight at it fail, and its replacement listens only
      // once started (migrations, clock), so no request meets a worker answering 503 `starting`.
      load.phase = 'api kill';
      const apiStartedBefore = apiWorkersStarted().length;
      const apiKilledAt = Date.now();
      process.kill(next, 'SIGKILL');
      await waitFor('a new API worker of us to start', () => apiWorkersStarted().length > apiStartedBefore, {
        timeoutMs: WORKER_START_MS,
        intervalMs: 50,
      });
      const apiBackMs = Date.now() - apiKilledAt;
      await sleep(1_000);
      load.phase = 'after';
      await sleep(2_000);
      await load.stop();
      const { rows, ms } = await waitForConvergence(fl.dbs(), CONVERGE_MS);
      // /metrics describes the region: the primary sums its workers' counters (the published events
      // are the leader's, the applied ones both workers'), and a gauge both read from one place is
      // reported once, not doubled.
      const metrics = await (await fetch(`${fl.regions.us!.url}/metrics`)).text();
      const sample = (name: string) =>
        metrics
          .split('\n')
          .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
          .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
      const sum = (name: string) => sample(name).reduce((a, b) => a + b, 0);
      const v = load.verify(rows);
      const kill = load.stats('kill');
      const apiKill = load.stats('api kill');
      const after = load.stats('after');
      console.log(
        `[two processes] relay worker ${first} killed; API worker ${next} led ${tookMs} ms later, ` +
          `the new relay worker ${relayAgain} ${backMs} ms after the kill; ` +
          `API worker ${next} killed, a new one started ${apiBackMs} ms later: ${apiKill.acked} acked, ` +
          `${apiKill.networkErrors} no answer, ${apiKill.serverErrors} 5xx; ` +
          `while killing: ${kill.acked} acked, ${kill.networkErrors} no answer, ${kill.serverErrors} 5xx; ` +
          `after: ${after.acked} acked, ${after.networkErrors + after.serverErrors} failed; ` +
          `converged in ${ms} ms; us published ${sum('hothot_outbox_published_total')}, applied ${sum('hothot_applied_events_total')} (its workers' sum); acked=${v.acked} lost=${v.lost} resurrected=${v.resurrected} phantom=${v.phantom}`,
      );
      expect(tookMs).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
      expect(relayWorkers()).not.toContain(next);
      expect(sample('hothot_kafka_message_max_bytes')).toEqual([2_097_152]);
      expect(sum('hothot_outbox_published_total')).toBeGreaterThanOrEqual(load.stats('after', 'us').acked);
      expect(sum('hothot_applied_events_total')).toBeGreaterThanOrEqual(load.stats('after', 'eu').acked);
      // Where the lag goes, summed over the workers: every change us published went through its
      // relay's stages, every change from eu through its applier's, none took a negative or absurd time.
      const stages = parseStageHistograms(metrics);
      const relayStages = [
        'written_to_claimed',
        'claimed_to_sent',
        'sent_to_acked',
        'acked_to_relay_committed',
      ];
      const applierStages = ['sent_to_fetched', 'fetched_to_applied', 'applied_to_committed'];
      for (const st of [...relayStages, ...applierStages]) {
        const h = stages.get(st);
        const acked = load.stats('after', relayStages.includes(st) ? 'us' : 'eu').acked;
        expect(h?.count, st).toBeGreaterThanOrEqual(acked);
        expect(h!.sum / h!.count, st).toBeGreaterThanOrEqual(0);
        expect(h!.sum / h!.count, st).toBeLessThan(CONVERGE_MS / 1000);
      }
      // The primary lived on; the relay worker serves no requests, so none failed.
      expect(() => process.kill(primaryPid, 0)).not.toThrow();
      expect(kill.serverErrors).toBe(0);
      expect(kill.networkErrors).toBe(0);
      // Killing an API worker fails at most the requests in flight at it (one per writer).
      expect(apiKill.serverErrors).toBe(0);
      expect(apiKill.networkErrors).toBeLessThanOrEqual(WRITERS_PER_REGION);
      expect(apiKill.acked).toBeGreaterThan(0);
      expect(after.networkErrors + after.serverErrors).toBe(0);
      expect(after.acked).toBeGreaterThan(0);
      expect(v.acked).toBeGreaterThan(0);
      expect(v.lost).toBe(0);
      expect(v.resurrected).toBe(0);
      expect(v.phantom).toBe(0);
    } finally {
      await load.stop();
    }
  }, 240_000); // two worker starts of up to WORKER_START_MS each, and the convergence after
});
