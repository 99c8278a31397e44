/**
 * Crashes under write load, on a lab of the test's own (its Kafka and PostgreSQL get killed):
 * SIGKILL of a region process in the middle of a publish and in the middle of an apply, SIGKILL and
 * restart of Kafka, and an immediate-mode restart of a region's PostgreSQL. After recovery: both
 * regions converge, no acknowledged write is lost, no deleted item comes back, the conflict logs
 * agree, and the region a fault did not hit never fails a request. Every printed figure is asserted
 * against a bound (the constants below).
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/brokerLinkProxies.js';
import { createKafka } from '../../shared/kafka/client.js';
import { changeTopic } from '../../shared/kafka/topics.js';
import { prng, testLogger, testSeed, waitFor } from '../support/harness.js';
import type { FaultLab } from '../support/faultLab.js';
import {
  StaleDeliveryCounter,
  Workload,
  checkAfterFault,
  expectSound,
  regionStatus,
  type PhaseStats,
} from '../support/workload.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

/** A restarted region process answers /readyz within this (tsx compiles its sources at start). */
const RESTART_READY_MS = 20_000;
/** After the load stops: identical rows, empty outboxes. */
const CONVERGE_MS = 20_000;
/** A dead Kafka (connections refused) is reported as a down link within this, like a reset cut. */
const LINK_DOWN_MS = 3_000;
/** No write slower than this while Kafka is dead: the API never waits on Kafka. */
const MAX_WRITE_MS = 1_000;
/**
 * A SIGKILLed Kafka answers again within this (a JVM start and KRaft log recovery: 20–44 s here, on
 * two busy cores — infrastructure, not hothot). Once it answers, the regions report their links up
 * within two probes, and each other up once heartbeats flow again: 3–4 s with a PLAINTEXT broker,
 * 11–20 s with TLS + SCRAM (the first publish after the restart times out, 3 s, the relay backs off,
 * ≤ 5 s, the consumer rejoins its group, ≤ the 6 s session): at most two such rounds.
 */
const KAFKA_READY_MS = 90_000;
const LINKS_UP_AFTER_KAFKA_READY_MS = 3_000;
const PEERS_UP_AFTER_KAFKA_READY_MS = 30_000;
/** An immediate-mode PostgreSQL restart (crash recovery) within this; the region ready again within. */
const PG_RESTART_MS = 15_000;
const PG_READY_MS = 20_000;

const test = faultLabTest();

describe('crashes under write load', () => {
  let fl: FaultLab;
  const log = testLogger();

  test.beforeAll(({ lab }) => {
    fl = lab;
  }, LAB_START_MS);

  /** Print a fault's figures at once (before its assertions can stop the test). */
  function figures(name: string, detail: string): string {
    console.log(`[crash: ${name}] ${detail}`);
    return detail;
  }

  interface Fault {
    /** The region the fault hits (its writes may fail meanwhile); the other must not notice. */
    readonly hits: 'us' | 'eu' | 'both';
    readonly detail: string;
  }

  /**
   * Load on both regions (a workload overwriting shared keys and one writing unique keys) around
   * `fault`, then converge and check: nothing acked lost, nothing deleted back, conflict logs
   * consistent, no failure in a region the fault did not hit nor after recovery. Prints the figures.
   */
  async function underLoad(
    name: string,
    fault: (loads: readonly Workload[]) => Promise<Fault>,
  ): Promise<void> {
    const seed = testSeed(name);
    const collection = `crash-${name.replace(/[^a-z0-9]+/gi, '-')}`;
    const stale = new StaleDeliveryCounter(fl.urls());
    await stale.begin();
    const targets = { us: fl.regions.us!.url, eu: fl.regions.eu!.url };
    const loads = [
      new Workload({ targets, collection, random: prng(seed), keys: 40, writersPerTarget: 2 }),
      new Workload({
        targets,
        collection: `${collection}-unique`,
        mode: 'unique',
        random: prng(seed ^ 0x9e3779b9),
        writersPerTarget: 1,
      }),
    ];
    const setPhase = (phase: string) => loads.forEach((l) => (l.phase = phase));
    loads.forEach((l) => l.start());
    await sleep(1_500);
    setPhase('fault');
    let result: Fault;
    try {
      result = await fault(loads);
    } catch (err) {
      await Promise.all(loads.map((l) => l.stop())); // no writer may outlive its test
      throw err;
    }
    const { hits, detail } = result;
    setPhase('after');
    await sleep(1_500);
    const stoppedAt = Date.now();
    await Promise.all(loads.map((l) => l.stop()));
    const check = await checkAfterFault(Object.values(fl.regions), loads, 120_000);
    const duplicates = await stale.end();
    const sum = (f: (l: Workload) => PhaseStats) =>
      loads.map(f).reduce(
        (t, p) => ({
          requests: t.requests + p.requests,
          failed: t.failed + p.serverErrors + p.networkErrors,
          serverErrors: t.serverErrors + p.serverErrors,
          networkErrors: t.networkErrors + p.networkErrors,
        }),
        { requests: 0, failed: 0, serverErrors: 0, networkErrors: 0 },
      );
    const duringFault = sum((l) => l.stats('fault'));
    const after = sum((l) => l.stats('after'));
    const spared = (['us', 'eu'] as const).filter((r) => hits !== 'both' && r !== hits);
    const sparedFailed = spared.map((r) => sum((l) => l.total(r)).failed);
    const acked = loads.reduce((n, l) => n + l.totalAcked, 0);
    console.log(
      `[crash: ${name}] seed=${seed} ${detail}; ${check.summary}; duplicatesApplied(stale no-ops)=${duplicates} ` +
        `failedRequests=${check.failedRequests} (during fault: 5xx ${duringFault.serverErrors}, no answer ${duringFault.networkErrors}; ` +
        `after recovery ${after.failed}${spared.length > 0 ? `; in ${spared.join(', ')}, which the fault did not hit: ${sparedFailed.join(', ')}` : ''}) ` +
        `convergedAfterLoadStopped=${check.convergedMs}ms (${Date.now() - stoppedAt}ms incl. checks)`,
    );
    const failures = loads.flatMap((l) => l.failureSamples);
    if (failures.length > 0) console.log(`[crash: ${name}] failures: ${failures.join('; ')}`);
    expectSound(check, loads);
    expect(check.convergedMs).toBeLessThanOrEqual(CONVERGE_MS);
    expect(sum((l) => l.stats('before')).failed).toBe(0);
    expect(after.failed).toBe(0);
    expect(after.requests).toBeGreaterThan(0);
    for (const n of sparedFailed) expect(n).toBe(0);
    // Redeliveries after a crash are applied as no-ops; never more of them than writes.
    expect(duplicates).toBeLessThanOrEqual(acked);
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
        const restartedAt = Date.now();
        // Restart first, then lift the latency: Toxiproxy can take a long time to remove a latency
        // toxic while the killed process's half-open connections still hold delayed bytes.
        await us.restart();
        const readyMs = Date.now() - restartedAt;
        await fl.links.latency('us', 0);
        const detail = figures(
          'sigkill mid-publish',
          `killed with a publish ${inFlight.relay!.passRunningMs}ms in flight and ${inFlight.outbox.rows} outbox rows; ready again after ${readyMs}ms`,
        );
        expect(exit.signal).toBe('SIGKILL');
        expect(inFlight.relay!.passRunningMs).toBeGreaterThan(0);
        expect(inFlight.outbox.rows).toBeGreaterThan(0);
        expect(readyMs).toBeLessThanOrEqual(RESTART_READY_MS);
        return { hits: 'us', detail };
      });
    },
  );

  it(
    'when eu is SIGKILLed while it applies a backlog and restarted, then nothing acked is lost',
    { timeout: 180_000 },
    async () => {
      await underLoad('sigkill mid-apply', async () => {
        const eu = fl.regions.eu!;
        const usTopic = changeTopic(fl.prefix, 'us');
        /** eu's count of events applied from us's topic (heartbeats and redeliveries included). */
        const applied = async () =>
          Number(
            (
              await eu.db.query<{ n: string }>(
                "SELECT coalesce(sum(applied_events), 0) AS n FROM peer_progress WHERE origin = 'us'",
              )
            ).rows[0]!.n,
          );
        const deadLettered = async () =>
          Number(
            (
              await eu.db.query<{ n: string }>('SELECT count(*) AS n FROM dead_letter WHERE topic = $1', [
                usTopic,
              ])
            ).rows[0]!.n,
          );
        const admin = createKafka(
          {
            clientId: 'crash-test-admin',
            brokers: fl.regions.us!.process.info.kafkaBrokers,
            security: fl.kafkaAdminSecurity(),
          },
          log,
        ).admin();
        await admin.connect();
        let published: number;
        try {
          // Build a backlog for eu: cut it while us keeps taking writes, then heal and kill it mid-way.
          await fl.links.partition('eu', PartitionMode.Reset);
          await sleep(4_000);
          // Everything on us's topic now was published before the heal, so before the kill.
          published = (await admin.fetchTopicOffsets(usTopic)).reduce((n, p) => n + Number(p.high), 0);
        } finally {
          await admin.disconnect();
        }
        const before = await applied();
        await fl.links.heal('eu');
        await waitFor(
          'eu to start applying the backlog',
          async () => (await applied()) > before || undefined,
          {
            timeoutMs: 30_000,
            intervalMs: 10,
          },
        );
        eu.process.kill('SIGKILL');
        await eu.process.waitForExit();
        // eu is dead: its database holds exactly what it had applied at the kill. Every event counted
        // applied is at most one message of the topic (redeliveries only add), dead letters are not
        // counted: so at least this many events published before the kill were not yet applied.
        const atKill = await applied();
        const unappliedAtKill = published - atKill - (await deadLettered());
        const restartedAt = Date.now();
        await eu.process.restart();
        const readyMs = Date.now() - restartedAt;
        const detail = figures(
          'sigkill mid-apply',
          `killed after applying ${atKill - before} events of its backlog, with at least ${unappliedAtKill} of the ${published} ` +
            `events on us's topic before the heal not yet applied; ready again after ${readyMs}ms`,
        );
        expect(atKill - before).toBeGreaterThan(0);
        expect(unappliedAtKill).toBeGreaterThan(0);
        expect(readyMs).toBeLessThanOrEqual(RESTART_READY_MS);
        return { hits: 'eu', detail };
      });
    },
  );

  it(
    'when Kafka is SIGKILLed under load and restarted, then both regions resume and nothing acked is lost',
    { timeout: 240_000 },
    async () => {
      await underLoad('kafka sigkill and restart', async (loads) => {
        const kafka = fl.lab.kafka!;
        const killedAt = Date.now();
        kafka.kill('SIGKILL');
        await kafka.waitForExit();
        const downStatuses = await waitFor(
          'both regions to report the broker link down',
          async () => {
            const s = await Promise.all(fl.urls().map((u) => regionStatus(u)));
            return s.every((x) => x.brokerLink?.state === 'down') ? s : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 100 },
        );
        const downAfter = Math.max(...downStatuses.map((s) => Date.parse(s.brokerLink!.since!) - killedAt));
        await sleep(2_000);
        const outage = loads.map((l) => l.stats('fault'));
        const restartAt = Date.now();
        await kafka.restart();
        const readyAfter = Date.now() - restartAt;
        let linkUpAfter: number | undefined;
        await waitFor(
          'both regions to report the broker link up and each other up',
          async () => {
            const s = await Promise.all(fl.urls().map((u) => regionStatus(u)));
            if (s.every((x) => x.brokerLink?.state === 'up')) linkUpAfter ??= Date.now() - restartAt;
            return (
              s.every((x) => x.brokerLink?.state === 'up' && x.peers.every((p) => p.state === 'up')) ||
              undefined
            );
          },
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        const upAfter = Date.now() - restartAt;
        const requests = outage.reduce((n, p) => n + p.requests, 0);
        const failed = outage.reduce((n, p) => n + p.serverErrors + p.networkErrors, 0);
        const slowest = Math.max(...outage.map((p) => p.maxLatencyMs));
        const detail = figures(
          'kafka sigkill and restart',
          `link down seen after ${downAfter}ms; Kafka ready ${readyAfter}ms after restart; links up ${linkUpAfter}ms and peers up ${upAfter}ms after restart; ` +
            `requests while Kafka was dead ${requests}, failed ${failed}, slowest ${slowest}ms`,
        );
        expect(downAfter).toBeLessThanOrEqual(LINK_DOWN_MS);
        expect(requests).toBeGreaterThan(0);
        expect(failed).toBe(0);
        expect(slowest).toBeLessThanOrEqual(MAX_WRITE_MS);
        expect(readyAfter).toBeLessThanOrEqual(KAFKA_READY_MS);
        expect(linkUpAfter! - readyAfter).toBeLessThanOrEqual(LINKS_UP_AFTER_KAFKA_READY_MS);
        expect(upAfter - readyAfter).toBeLessThanOrEqual(PEERS_UP_AFTER_KAFKA_READY_MS);
        return { hits: 'both', detail };
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
        const detail = figures(
          'postgres immediate restart',
          `PostgreSQL restarted in ${restartMs}ms; us ready ${readyMs}ms after the crash`,
        );
        expect(restartMs).toBeLessThanOrEqual(PG_RESTART_MS);
        expect(readyMs).toBeLessThanOrEqual(PG_READY_MS);
        return { hits: 'us', detail };
      });
    },
  );
});
