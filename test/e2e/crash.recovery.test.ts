/**
 * Crashes under write load, on a lab of the test's own (its Kafka and PostgreSQL get killed):
 * SIGKILL of a region process in the middle of a publish and in the middle of an apply, SIGKILL and
 * restart of Kafka, and an immediate-mode restart of a region's PostgreSQL. After recovery: both
 * regions converge, no acknowledged write is lost, no deleted item comes back.
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/toxiproxy.js';
import { prng, testSeed, waitFor } from '../support/harness.js';
import { startFaultLab, type FaultLab } from '../support/faultLab.js';
import {
  StaleDeliveryCounter,
  Workload,
  regionStatus,
  verifyAcked,
  waitForConvergence,
} from '../support/workload.js';

describe('crashes under write load', () => {
  let fl: FaultLab;

  beforeAll(async () => {
    fl = await startFaultLab();
  }, 240_000);
  afterAll(async () => {
    await fl?.stop();
  }, 120_000);

  /** Load on both regions around `fault`, then converge and check; prints the figures. */
  async function underLoad(name: string, fault: (load: Workload) => Promise<string>): Promise<void> {
    const seed = testSeed(name);
    const collection = `crash-${name.replace(/[^a-z0-9]+/gi, '-')}`;
    const stale = new StaleDeliveryCounter(fl.urls());
    await stale.begin();
    const load = new Workload({
      targets: { us: fl.regions.us!.url, eu: fl.regions.eu!.url },
      collection,
      random: prng(seed),
      keys: 40,
      writersPerTarget: 2,
    });
    load.start();
    await sleep(1_500);
    load.phase = 'fault';
    const detail = await fault(load);
    load.phase = 'after';
    await sleep(1_500);
    const stoppedAt = Date.now();
    await load.stop();
    const { rows, ms } = await waitForConvergence(fl.dbs(), 120_000);
    const verdict = verifyAcked(load.acked, rows, collection);
    const total = load.total();
    const duringFault = load.stats('fault');
    console.log(
      `[crash: ${name}] seed=${seed} ${detail} acked=${verdict.acked} (deletes ${verdict.ackedDeletes}) lost=${verdict.lost} ` +
        `resurrected=${verdict.resurrected} divergentKeys=0 duplicatesApplied(stale no-ops)=${await stale.end()} ` +
        `failedRequests=${total.serverErrors + total.networkErrors} (during fault: 5xx ${duringFault.serverErrors}, no answer ${duringFault.networkErrors}) ` +
        `convergedAfterLoadStopped=${ms}ms (${Date.now() - stoppedAt}ms incl. checks)`,
    );
    if (verdict.examples.length > 0) console.log(`[crash: ${name}] examples: ${verdict.examples.join('; ')}`);
    if (load.failureSamples.length > 0)
      console.log(`[crash: ${name}] failures: ${load.failureSamples.join('; ')}`);
    expect(verdict.acked).toBeGreaterThan(0);
    expect(verdict.lost).toBe(0);
    expect(verdict.resurrected).toBe(0);
  }

  it(
    'when us is SIGKILLed while a publish is in flight and restarted, then nothing acked is lost',
    { timeout: 180_000 },
    async () => {
      await underLoad('sigkill mid-publish', async () => {
        // 600 ms of latency on the link: every publish takes a while, so the kill lands inside one.
        await fl.links.latency('us', 600);
        const us = fl.regions.us!.process;
        const inFlight = await waitFor(
          'a publish of us to be in flight',
          async () => {
            const s = await regionStatus(fl.regions.us!.url);
            return s.relay?.passRunningMs !== null &&
              s.relay?.passRunningMs !== undefined &&
              s.outbox.rows > 0
              ? s
              : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 20 },
        );
        us.kill('SIGKILL');
        const exit = await us.waitForExit();
        expect(exit.signal).toBe('SIGKILL');
        const restartedAt = Date.now();
        // Restart first, then lift the latency: Toxiproxy can take a long time to remove a latency
        // toxic while the killed process's half-open connections still hold delayed bytes.
        await us.restart();
        await fl.links.latency('us', 0);
        return `killed with a publish ${inFlight.relay!.passRunningMs}ms in flight and ${inFlight.outbox.rows} outbox rows; ready again after ${Date.now() - restartedAt}ms`;
      });
    },
  );

  it(
    'when eu is SIGKILLed while it applies a backlog and restarted, then nothing acked is lost',
    { timeout: 180_000 },
    async () => {
      await underLoad('sigkill mid-apply', async () => {
        const eu = fl.regions.eu!;
        const applied = async () =>
          Number(
            (
              await eu.db.query<{ n: string }>(
                "SELECT coalesce(sum(applied_events), 0) AS n FROM peer_progress WHERE origin = 'us'",
              )
            ).rows[0]!.n,
          );
        // Build a backlog for eu: cut it while us keeps taking writes, then heal and kill it mid-way.
        await fl.links.partition('eu', PartitionMode.Reset);
        await sleep(3_000);
        const before = await applied();
        await fl.links.heal('eu');
        const atKill = await waitFor(
          'eu to start applying the backlog',
          async () => ((await applied()) > before ? applied() : undefined),
          {
            timeoutMs: 30_000,
            intervalMs: 10,
          },
        );
        eu.process.kill('SIGKILL');
        await eu.process.waitForExit();
        const lagAtKill = (await regionStatus(fl.regions.us!.url)).outbox.rows;
        const restartedAt = Date.now();
        await eu.process.restart();
        return `killed after applying ${atKill - before} events of the backlog (us outbox then ${lagAtKill} rows); ready again after ${Date.now() - restartedAt}ms`;
      });
    },
  );

  it(
    'when Kafka is SIGKILLed under load and restarted, then both regions resume and nothing acked is lost',
    { timeout: 240_000 },
    async () => {
      await underLoad('kafka sigkill and restart', async (load) => {
        const kafka = fl.lab.kafka!;
        kafka.kill('SIGKILL');
        await kafka.waitForExit();
        const killedAt = Date.now();
        await waitFor(
          'both regions to report the broker link down',
          async () =>
            (await Promise.all(fl.urls().map((u) => regionStatus(u)))).every(
              (s) => s.brokerLink?.state === 'down',
            ) || undefined,
          { timeoutMs: 15_000, intervalMs: 100 },
        );
        const downAfter = Date.now() - killedAt;
        await sleep(2_000);
        const outage = load.stats('fault');
        const restartAt = Date.now();
        await kafka.restart();
        const readyAfter = Date.now() - restartAt;
        await waitFor(
          'both regions to report the broker link up and each other up',
          async () =>
            (await Promise.all(fl.urls().map((u) => regionStatus(u)))).every(
              (s) => s.brokerLink?.state === 'up' && s.peers.every((p) => p.state === 'up'),
            ) || undefined,
          { timeoutMs: 60_000, intervalMs: 200 },
        );
        expect(outage.serverErrors + outage.networkErrors).toBe(0);
        return `link down seen after ${downAfter}ms; Kafka ready ${readyAfter}ms after restart; regions up again ${Date.now() - restartAt}ms after restart; requests while Kafka was dead ${outage.requests}, failed ${outage.serverErrors + outage.networkErrors}`;
      });
    },
  );

  it(
    "when us's PostgreSQL restarts in immediate mode under load, then us recovers and nothing acked is lost",
    { timeout: 180_000 },
    async () => {
      await underLoad('postgres immediate restart', async () => {
        const pg = fl.lab.postgres.get('us')!;
        const started = Date.now();
        await pg.restart('immediate');
        const restartMs = Date.now() - started;
        const readyMs = await waitFor(
          'us to answer /readyz again',
          async () =>
            (await fetch(`${fl.regions.us!.url}/readyz`)).status === 200 ? Date.now() - started : undefined,
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        return `PostgreSQL restarted in ${restartMs}ms; us ready ${readyMs}ms after the crash`;
      });
    },
  );
});
