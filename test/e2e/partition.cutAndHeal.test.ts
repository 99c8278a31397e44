/**
 * Cutting a region's broker link (its Toxiproxy proxy) under write load to both regions, with
 * overlapping keys and deletes: both regions keep serving, status says so, and after heal both
 * converge with nothing acknowledged lost and nothing deleted brought back. Then a flapping link
 * with a seeded schedule. Runs on a lab of its own (real Kafka, Toxiproxy, PostgreSQL).
 *
 * HOTHOT_SOAK=1 makes the cuts a minute long and the flapping two minutes.
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/toxiproxy.js';
import { prng, testSeed, waitFor } from '../support/harness.js';
import { startFaultLab, type FaultLab } from '../support/faultLab.js';
import { establishedTo, tcpConnectionsOf } from '../support/sockets.js';
import {
  Workload,
  regionStatus,
  staleDeliveries,
  verifyAcked,
  waitForConvergence,
  type PhaseStats,
} from '../support/workload.js';

const SOAK = process.env.HOTHOT_SOAK === '1';
const CUT_MS = SOAK ? 60_000 : 6_000;
const FLAP_MS = SOAK ? 120_000 : 12_000;

describe('a cut broker link', () => {
  let fl: FaultLab;

  beforeAll(async () => {
    fl = await startFaultLab();
  }, 240_000);
  afterAll(async () => {
    await fl?.stop();
  }, 120_000);

  const failures = (p: PhaseStats) => p.serverErrors + p.networkErrors;

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
      const atListener = establishedTo(usListenerPort).length;
      const fromToxiproxy = tcpConnectionsOf(toxiproxyPid).filter(
        (c) => c.state === 'ESTABLISHED' && c.remotePort === usListenerPort,
      ).length;
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
    },
  );

  for (const mode of [PartitionMode.Reset, PartitionMode.Blackhole]) {
    it(
      `when us is cut (${mode}) under writes to both regions and healed, then both served throughout and converge with nothing lost`,
      { timeout: 180_000 },
      async () => {
        const seed = testSeed(`cut ${mode}`);
        const collection = `cut-${mode}`;
        const load = new Workload({
          targets: { us: fl.regions.us!.url, eu: fl.regions.eu!.url },
          collection,
          random: prng(seed),
          keys: 40,
          writersPerTarget: 2,
        });
        const staleBefore = await staleDeliveries(fl.urls());
        load.start();
        await sleep(2_000);

        load.phase = 'cut';
        const cutAt = Date.now();
        await fl.links.partition('us', mode);
        const linkDownMs = await waitFor(
          'us to report its broker link down',
          async () =>
            (await regionStatus(fl.regions.us!.url)).brokerLink?.state === 'down'
              ? Date.now() - cutAt
              : undefined,
          { timeoutMs: 15_000, intervalMs: 100 },
        );
        const peerSuspectMs = await waitFor(
          'eu to report us suspect or down',
          async () => {
            const peer = (await regionStatus(fl.regions.eu!.url)).peers.find((p) => p.region === 'us');
            return peer && peer.state !== 'up' ? Date.now() - cutAt : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 100 },
        );
        const backlogStart = (await regionStatus(fl.regions.us!.url)).outbox;
        const backlogLater = await waitFor(
          "us's outbox backlog to grow",
          async () => {
            const o = (await regionStatus(fl.regions.us!.url)).outbox;
            return o.rows > backlogStart.rows && o.oldestAgeMs > backlogStart.oldestAgeMs ? o : undefined;
          },
          { timeoutMs: 10_000, intervalMs: 200 },
        );
        await sleep(Math.max(0, CUT_MS - (Date.now() - cutAt)));
        const usDuringCut = await regionStatus(fl.regions.us!.url);

        await fl.links.heal('us');
        const healedAt = Date.now();
        load.phase = 'after';
        await load.stop();
        const { rows, ms: convergedMs } = await waitForConvergence(fl.dbs(), 90_000);
        const linkUpMs = await waitFor(
          'us to report its link up and eu to see us up again',
          async () => {
            const [us, eu] = await Promise.all([
              regionStatus(fl.regions.us!.url),
              regionStatus(fl.regions.eu!.url),
            ]);
            return us.brokerLink?.state === 'up' && eu.peers.every((p) => p.state === 'up')
              ? Date.now() - healedAt
              : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );

        const verdict = verifyAcked(load.acked, rows, collection);
        const cut = load.stats('cut');
        const stale = (await staleDeliveries(fl.urls())) - staleBefore;
        console.log(
          `[cut ${mode}] seed=${seed} cut=${((healedAt - cutAt) / 1000).toFixed(1)}s acked=${verdict.acked} (deletes ${verdict.ackedDeletes}; during cut ${cut.acked}) ` +
            `lost=${verdict.lost} resurrected=${verdict.resurrected} current=${verdict.current} superseded=${verdict.superseded} ` +
            `divergentKeys=0 duplicatesApplied(stale no-ops)=${stale} 5xxDuringCut=${cut.serverErrors} networkErrorsDuringCut=${cut.networkErrors} ` +
            `linkDownAfter=${linkDownMs}ms euSawUsSuspectAfter=${peerSuspectMs}ms backlog ${backlogStart.rows}→${backlogLater.rows}→${usDuringCut.outbox.rows} rows ` +
            `(oldest ${usDuringCut.outbox.oldestAgeMs}ms) convergedAfterHeal=${convergedMs}ms statusUpAfterHeal=${linkUpMs}ms`,
        );
        if (verdict.examples.length > 0)
          console.log(`[cut ${mode}] examples: ${verdict.examples.join('; ')}`);
        expect(failures(cut)).toBe(0);
        expect(cut.acked).toBeGreaterThan(0);
        expect(usDuringCut.brokerLink?.state).toBe('down');
        expect(verdict.lost).toBe(0);
        expect(verdict.resurrected).toBe(0);
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
        expect(put.status).toBe(201);
        const status = await waitFor('us to report its link down', async () => {
          const s = await regionStatus(us.url);
          return s.brokerLink?.state === 'down' ? s : undefined;
        });
        expect(status.outbox.rows).toBeGreaterThan(0);
        await sleep(2_000); // a while cut, with the relay and applier retrying
        await fl.links.heal('us');
        const healedAt = Date.now();
        const { ms } = await waitForConvergence(fl.dbs(), 90_000);
        const eu = await fetch(`${fl.regions.eu!.url}/v1/items/cold-start/k`);
        expect(eu.status).toBe(200);
        console.log(
          `[cold start while cut] us ready ${readyMs}ms after start with its link blackholed; write acked while cut; ` +
            `converged ${ms}ms after heal (${Date.now() - healedAt}ms incl. checks)`,
        );
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
      const collection = 'flap';
      const load = new Workload({
        targets: { us: fl.regions.us!.url, eu: fl.regions.eu!.url },
        collection,
        random: prng(seed ^ 0x5eed),
        keys: 30,
        writersPerTarget: 2,
      });
      const staleBefore = await staleDeliveries(fl.urls());
      load.start();
      load.phase = 'flapping';
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
      load.phase = 'after';
      await load.stop();
      const { rows, ms: convergedMs } = await waitForConvergence(fl.dbs(), 90_000);
      await waitFor(
        'both regions to report the link and peers up',
        async () => {
          const s = await Promise.all(fl.urls().map((u) => regionStatus(u)));
          return (
            s.every((x) => x.brokerLink?.state === 'up' && x.peers.every((p) => p.state === 'up')) ||
            undefined
          );
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const verdict = verifyAcked(load.acked, rows, collection);
      const flapping = load.stats('flapping');
      console.log(
        `[flapping] seed=${seed} cuts=${cuts} over ${((healedAt - started) / 1000).toFixed(1)}s schedule(mode down/up ms)=${schedule.join(',')} ` +
          `acked=${verdict.acked} (deletes ${verdict.ackedDeletes}) lost=${verdict.lost} resurrected=${verdict.resurrected} ` +
          `divergentKeys=0 duplicatesApplied(stale no-ops)=${(await staleDeliveries(fl.urls())) - staleBefore} 5xx=${flapping.serverErrors} networkErrors=${flapping.networkErrors} ` +
          `convergedAfterLastHeal=${convergedMs}ms`,
      );
      if (verdict.examples.length > 0) console.log(`[flapping] examples: ${verdict.examples.join('; ')}`);
      expect(failures(flapping)).toBe(0);
      expect(verdict.lost).toBe(0);
      expect(verdict.resurrected).toBe(0);
    },
  );
});
