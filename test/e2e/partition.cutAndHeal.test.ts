/**
 * Cutting a region's broker link (its Toxiproxy proxy) under write load to both regions — one
 * workload overwriting and deleting shared keys, one writing unique keys (each acknowledged write
 * found exactly) — both regions keep serving, status says so, and after heal both converge with
 * nothing acknowledged lost, nothing deleted brought back and consistent conflict logs. Then a
 * flapping link with a seeded schedule. Runs on a lab of its own (real Kafka, Toxiproxy, PostgreSQL).
 *
 * Every printed figure is asserted (issue 9): link reported down within 3 s of the cut (a blackhole:
 * see linkDownBoundMs), the peer `suspect` and `down` after their thresholds, `lagMs` during the cut
 * never 0 and never less than the time since the cut, no write slower than 1 s, the backlog counting
 * every write since the cut, convergence and status after heal, duplicates.
 *
 * HOTHOT_SOAK=1 makes the cuts a minute long and the flapping two minutes.
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/brokerLinkProxies.js';
import { prng, testSeed, waitFor } from '../support/harness.js';
import { establishedTo, tcpConnectionsOf } from '../support/sockets.js';
import { compareConflictLogs } from '../support/twoRegions.js';
import {
  PEER_STATE_SLACK_MS,
  backlogDuringCut,
  describeBacklogDuringCut,
  describePeerDuringCut,
  expectBacklogDuringCut,
  expectPeerDuringCut,
  linkDownBoundMs,
  peerDuringCut,
  waitAllUp,
  type FaultLab,
} from '../support/faultLab.js';
import {
  StatusMonitor,
  Workload,
  checkAfterFault,
  expectSound,
  peerOf,
  regionStatus,
  staleDeliveries,
  waitForConvergence,
} from '../support/workload.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

const SOAK = process.env.HOTHOT_SOAK === '1';
const CUT_MS = SOAK ? 60_000 : 6_000;
const FLAP_MS = SOAK ? 120_000 : 12_000;

/** Issue 9's bounds. No write, to either region, slower than this while the link is cut. */
const MAX_WRITE_MS = 1_000;
/** After heal: identical rows and empty outboxes, and link and peers `up` again. */
const CONVERGE_AFTER_HEAL_MS = 15_000;
const STATUS_UP_AFTER_HEAL_MS = 5_000;
/** A region process started with its link cut answers /readyz within this. */
const COLD_START_READY_MS = 20_000;

const test = faultLabTest();

describe('a cut broker link', () => {
  let fl: FaultLab;

  test.beforeAll(({ lab }) => {
    fl = lab;
  }, LAB_START_MS);

  it(
    'when us is cut, then no TCP connection from us reaches the broker, only through its proxy',
    { timeout: 60_000 },
    async () => {
      const kafka = fl.lab.state.kafka!;
      const proxy = fl.lab.state.toxiproxy!.proxies.us!;
      const proxyPort = Number(proxy.listen.split(':')[1]);
      const usListenerPort = Number(proxy.upstream.split(':')[1]);
      const brokerPorts = new Set([
        kafka.controllerPort,
        kafka.internalPort,
        ...kafka.listeners.map((l) => l.port),
      ]);
      const usPid = fl.regions.us!.process.pid;
      const toxiproxyPid = fl.lab.state.toxiproxy!.pid;
      const toBroker = (pid: number) =>
        tcpConnectionsOf(pid).filter((c) => c.state !== 'LISTEN' && brokerPorts.has(c.remotePort));

      // Linked: us talks to Kafka through its proxy only, and the broker's US listener only sees Toxiproxy.
      await waitFor(
        'us to hold connections to its proxy',
        () =>
          tcpConnectionsOf(usPid).some((c) => c.state === 'ESTABLISHED' && c.remotePort === proxyPort) ||
          undefined,
      );
      expect(toBroker(usPid)).toEqual([]);
      // Two reads of procfs, while the broker-link probe opens and closes a connection (a TLS one, some
      // tens of ms long) every 500 ms: compare counts from reads that saw the same set of connections.
      const counts = () => ({
        atListener: establishedTo(usListenerPort).length,
        fromToxiproxy: tcpConnectionsOf(toxiproxyPid).filter(
          (c) => c.state === 'ESTABLISHED' && c.remotePort === usListenerPort,
        ).length,
      });
      const { atListener, fromToxiproxy } = await waitFor(
        'the broker’s US listener to see only Toxiproxy’s connections',
        () => {
          const c = counts();
          return c.atListener > 0 && c.atListener === c.fromToxiproxy ? c : undefined;
        },
        { timeoutMs: 5_000, intervalMs: 100 },
      ).catch(() => counts());
      expect(atListener).toBeGreaterThan(0);
      expect(fromToxiproxy).toBe(atListener);

      await fl.links.partition('us', PartitionMode.Reset);
      try {
        await waitFor(
          'the broker to have no connection on the US listener',
          () => establishedTo(usListenerPort).length === 0 || undefined,
          {
            timeoutMs: 10_000,
          },
        );
        // Keep watching while us writes and retries: nothing may find a way around the proxy.
        let maxAtListener = 0;
        let maxToBroker = 0;
        let writes = 0;
        const until = Date.now() + 3_000;
        while (Date.now() < until) {
          const res = await fetch(`${fl.regions.us!.url}/v1/items/bypass/k${writes}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ writes }),
          });
          if (res.status < 300) writes += 1;
          maxAtListener = Math.max(maxAtListener, establishedTo(usListenerPort).length);
          maxToBroker = Math.max(maxToBroker, toBroker(usPid).length);
          await sleep(100);
        }
        console.log(
          `[partition bypass] before cut: ${atListener} connections on the US listener, all from Toxiproxy; ` +
            `during cut: max ${maxAtListener} on the US listener, max ${maxToBroker} from us to any broker port, ${writes} writes acked in us`,
        );
        expect(writes).toBeGreaterThan(0);
        expect(maxAtListener).toBe(0);
        expect(maxToBroker).toBe(0);
      } finally {
        await fl.links.heal('us');
      }
      await waitForConvergence(fl.dbs());
      const conflicts = await compareConflictLogs(Object.values(fl.regions), {
        collections: ['bypass'],
        identical: true,
      });
      expect(conflicts.problems).toEqual([]);
    },
  );

  for (const mode of [PartitionMode.Reset, PartitionMode.Blackhole]) {
    it(
      `when us is cut (${mode}) under writes to both regions and healed, then both served throughout and converge with nothing lost`,
      { timeout: 180_000 },
      async () => {
        const seed = testSeed(`cut ${mode}`);
        const targets = { us: fl.regions.us!.url, eu: fl.regions.eu!.url };
        const over = new Workload({
          targets,
          collection: `cut-${mode}`,
          random: prng(seed),
          keys: 40,
          writersPerTarget: 2,
        });
        const uniq = new Workload({
          targets,
          collection: `cut-${mode}-unique`,
          mode: 'unique',
          random: prng(seed ^ 0x9e3779b9),
          writersPerTarget: 1,
        });
        const loads = [over, uniq];
        const setPhase = (phase: string) => loads.forEach((l) => (l.phase = phase));
        const { peerDownAfterMs } = fl.thresholds;
        await waitAllUp(fl);
        const monitor = new StatusMonitor(targets, 100).start();
        try {
          const staleBefore = await staleDeliveries(fl.urls());
          loads.forEach((l) => l.start());
          await sleep(2_000);

          setPhase('cut');
          const cutAt = Date.now();
          await fl.links.partition('us', mode);
          const cutDone = Date.now();
          let healedAt = cutDone;
          try {
            await monitor.waitFirst(
              'us to report its broker link down',
              'us',
              cutAt,
              (s) => s.brokerLink?.state === 'down',
              15_000,
            );
            // Hold the cut until eu calls us down (or the bound below has passed), and at least CUT_MS.
            await monitor
              .waitFirst(
                'eu to report us down',
                'eu',
                cutAt,
                (s) => peerOf(s, 'us')?.state === 'down',
                peerDownAfterMs + PEER_STATE_SLACK_MS + 1_000,
              )
              .catch(() => undefined);
            await sleep(Math.max(0, CUT_MS - (Date.now() - cutAt)));
          } finally {
            await fl.links.heal('us');
            healedAt = Date.now();
          }
          setPhase('after');
          await Promise.all(loads.map((l) => l.stop()));
          const check = await checkAfterFault(Object.values(fl.regions), loads, 90_000);
          const upAgain = await monitor.waitFirst(
            'us to report its link up and eu to see us up again',
            'eu',
            healedAt,
            (s) => peerOf(s, 'us')?.state === 'up',
            30_000,
          );
          const linkUp = await monitor.waitFirst(
            'us to report its link up',
            'us',
            healedAt,
            (s) => s.brokerLink?.state === 'up',
            30_000,
          );
          await monitor.stop();
          const stale = (await staleDeliveries(fl.urls())) - staleBefore;

          const linkDown = monitor.first('us', cutAt, (s) => s.brokerLink?.state === 'down')!;
          const linkDownMs = Date.parse(linkDown.status.brokerLink!.since!) - cutAt;
          const peer = peerDuringCut(
            monitor,
            fl.thresholds,
            'eu',
            'us',
            { at: cutAt, done: cutDone },
            healedAt,
          );
          const backlog = backlogDuringCut(monitor, 'us', loads, cutDone, healedAt);
          const statusUpMs = Math.max(upAgain.at, linkUp.at) - healedAt;
          const cut = [over.stats('cut'), uniq.stats('cut')];
          const failedDuringCut = cut.reduce((n, p) => n + p.serverErrors + p.networkErrors, 0);
          const maxWriteMs = Math.max(...cut.map((p) => p.maxLatencyMs));
          const ackedDuringCut = cut.reduce((n, p) => n + p.acked, 0);
          const acked = over.totalAcked + uniq.totalAcked;
          console.log(
            `[cut ${mode}] seed=${seed} cut=${((healedAt - cutAt) / 1000).toFixed(1)}s ${check.summary}; ` +
              `acked during cut ${ackedDuringCut}, 5xx ${cut.reduce((n, p) => n + p.serverErrors, 0)}, no answer ${cut.reduce((n, p) => n + p.networkErrors, 0)}, ` +
              `slowest write ${maxWriteMs}ms (${[over, uniq].map((l) => l.stats('cut').slowest).join(' / ')}); duplicatesApplied(stale no-ops)=${stale}; ` +
              `linkDownAfter=${linkDownMs}ms; ${describePeerDuringCut(peer, 'eu', 'us')}; ${describeBacklogDuringCut(backlog)}; ` +
              `convergedAfterHeal=${check.convergedMs}ms statusUpAfterHeal=${statusUpMs}ms`,
          );
          if (over.failureSamples.length + uniq.failureSamples.length > 0)
            console.log(
              `[cut ${mode}] failures: ${[...over.failureSamples, ...uniq.failureSamples].join('; ')}`,
            );

          // Nothing acknowledged lost, nothing deleted back, conflict logs consistent.
          expectSound(check, loads);
          expect(check.convergedMs).toBeLessThanOrEqual(CONVERGE_AFTER_HEAL_MS);
          expect(healedAt - cutAt).toBeGreaterThanOrEqual(CUT_MS);
          // Both regions served throughout: no failure, no write slower than 1 s.
          expect(ackedDuringCut).toBeGreaterThan(0);
          expect(failedDuringCut).toBe(0);
          expect(maxWriteMs).toBeLessThanOrEqual(MAX_WRITE_MS);
          // The link is reported down within 3 s of the cut (a blackhole: see linkDownBoundMs), not
          // before it, and up soon after heal.
          expect(linkDownMs).toBeGreaterThanOrEqual(0);
          expect(linkDownMs).toBeLessThanOrEqual(linkDownBoundMs(fl, mode));
          expect(statusUpMs).toBeLessThanOrEqual(STATUS_UP_AFTER_HEAL_MS);
          // eu's view of us: suspect, then down, each once its threshold passed; lag never 0, growing.
          expectPeerDuringCut(peer, fl.thresholds, "eu's view of us");
          // us's backlog: counts every write acknowledged since the cut, and its age grows with the cut.
          expectBacklogDuringCut(backlog, "us's outbox");
          // Duplicates after heal are re-sends of writes, applied as no-ops: at most one copy of
          // each write per failed relay pass (see BacklogDuringCut.maxRelayFailures).
          expect(stale).toBeLessThanOrEqual(acked * (1 + backlog.maxRelayFailures));
        } finally {
          // Nothing of this test may outlive it, whatever failed.
          await Promise.all(loads.map((l) => l.stop()));
          await monitor.stop();
        }
      },
    );
  }

  it(
    'when us starts while its link is cut, then it serves at once, reports the link down, and replicates once healed',
    { timeout: 120_000 },
    async () => {
      const us = fl.regions.us!;
      await us.process.stop();
      await fl.links.partition('us', PartitionMode.Blackhole);
      const startedAt = Date.now();
      try {
        await us.process.restart();
        const readyMs = Date.now() - startedAt;
        const put = await fetch(`${us.url}/v1/items/cold-start/k`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ written: 'while cut' }),
        });
        const writeMs = Date.now() - startedAt - readyMs;
        expect(put.status).toBe(201);
        const status = await waitFor('us to report its link down', async () => {
          const s = await regionStatus(us.url);
          return s.brokerLink?.state === 'down' ? s : undefined;
        });
        const linkDownMs = Date.parse(status.brokerLink!.since!) - startedAt;
        expect(status.outbox.rows).toBeGreaterThan(0);
        await sleep(2_000); // a while cut, with the relay and applier retrying
        await fl.links.heal('us');
        const healedAt = Date.now();
        const { ms } = await waitForConvergence(fl.dbs(), 90_000);
        const eu = await fetch(`${fl.regions.eu!.url}/v1/items/cold-start/k`);
        expect(eu.status).toBe(200);
        const conflicts = await compareConflictLogs(Object.values(fl.regions), {
          collections: ['cold-start'],
          identical: true,
        });
        expect(conflicts.problems).toEqual([]);
        console.log(
          `[cold start while cut] us ready ${readyMs}ms after start with its link blackholed; write acked while cut in ${writeMs}ms; ` +
            `link reported down ${linkDownMs}ms after start (${status.outbox.rows} outbox rows); ` +
            `converged ${ms}ms after heal (${Date.now() - healedAt}ms incl. checks)`,
        );
        expect(readyMs).toBeLessThanOrEqual(COLD_START_READY_MS);
        expect(writeMs).toBeLessThanOrEqual(MAX_WRITE_MS);
        // Blackholed from the start: the first probes time out, so down after the second probe's deadline.
        expect(linkDownMs).toBeLessThanOrEqual(readyMs + linkDownBoundMs(fl, PartitionMode.Blackhole));
        expect(ms).toBeLessThanOrEqual(CONVERGE_AFTER_HEAL_MS);
      } finally {
        await fl.links.heal('us');
      }
    },
  );

  it(
    'when the link of us flaps at seeded random intervals under load, then the same invariants hold',
    { timeout: 240_000 },
    async () => {
      const seed = testSeed('flapping link');
      const random = prng(seed);
      const targets = { us: fl.regions.us!.url, eu: fl.regions.eu!.url };
      const over = new Workload({
        targets,
        collection: 'flap',
        random: prng(seed ^ 0x5eed),
        keys: 30,
        writersPerTarget: 2,
      });
      const uniq = new Workload({
        targets,
        collection: 'flap-unique',
        mode: 'unique',
        random: prng(seed ^ 0x9e3779b9),
        writersPerTarget: 1,
      });
      const loads = [over, uniq];
      const staleBefore = await staleDeliveries(fl.urls());
      loads.forEach((l) => {
        l.phase = 'flapping';
        l.start();
      });
      try {
        const schedule: string[] = [];
        const started = Date.now();
        let cuts = 0;
        while (Date.now() - started < FLAP_MS) {
          const mode = random() < 0.5 ? PartitionMode.Reset : PartitionMode.Blackhole;
          const down = Math.round(200 + random() * 1_800);
          const up = Math.round(200 + random() * 1_800);
          schedule.push(`${mode[0]}${down}/${up}`);
          await fl.links.partition('us', mode);
          cuts += 1;
          await sleep(down);
          await fl.links.heal('us');
          await sleep(up);
        }
        const healedAt = Date.now();
        loads.forEach((l) => (l.phase = 'after'));
        await Promise.all(loads.map((l) => l.stop()));
        const check = await checkAfterFault(Object.values(fl.regions), loads, 90_000);
        const upMs = await waitFor(
          'both regions to report the link and peers up',
          async () => {
            const s = await Promise.all(fl.urls().map((u) => regionStatus(u)));
            return s.every((x) => x.brokerLink?.state === 'up' && x.peers.every((p) => p.state === 'up'))
              ? Date.now() - healedAt
              : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        const flapping = loads.map((l) => l.stats('flapping'));
        const failed = flapping.reduce((n, p) => n + p.serverErrors + p.networkErrors, 0);
        const maxWriteMs = Math.max(...flapping.map((p) => p.maxLatencyMs));
        const acked = over.totalAcked + uniq.totalAcked;
        const stale = (await staleDeliveries(fl.urls())) - staleBefore;
        console.log(
          `[flapping] seed=${seed} cuts=${cuts} over ${((healedAt - started) / 1000).toFixed(1)}s schedule(mode down/up ms)=${schedule.join(',')} ` +
            `${check.summary}; duplicatesApplied(stale no-ops)=${stale} 5xx=${flapping.reduce((n, p) => n + p.serverErrors, 0)} ` +
            `networkErrors=${flapping.reduce((n, p) => n + p.networkErrors, 0)} slowest write ${maxWriteMs}ms; ` +
            `convergedAfterLastHeal=${check.convergedMs}ms statusUpAfterLastHeal=${upMs}ms`,
        );
        expectSound(check, loads);
        expect(cuts).toBeGreaterThanOrEqual(3);
        expect(failed).toBe(0);
        expect(maxWriteMs).toBeLessThanOrEqual(MAX_WRITE_MS);
        expect(check.convergedMs).toBeLessThanOrEqual(CONVERGE_AFTER_HEAL_MS);
        expect(upMs).toBeLessThanOrEqual(check.convergedMs + STATUS_UP_AFTER_HEAL_MS);
        // At most one more copy of each write per cut (see BacklogDuringCut.maxRelayFailures).
        expect(stale).toBeLessThanOrEqual(acked * cuts);
      } finally {
        await Promise.all(loads.map((l) => l.stop()));
        await fl.links.heal('us');
      }
    },
  );
});
