/**
 * Three regions (us, eu, ap) under write load to all three — a workload overwriting shared keys and
 * one writing unique keys: cut us off Kafka, then eu as well, heal both. Every region keeps serving;
 * each cut region is reported down by its link and, after the thresholds, by every other region
 * (and sees every other region down itself); after heal all three converge with nothing acknowledged
 * lost, nothing deleted brought back and consistent conflict logs. Then, on the same lab: ap's link
 * flaps (reset and blackhole in turn) while eu restarts and us is SIGKILLed and restarted — ap serves
 * every request, no region answers a 5xx, and all three converge with nothing lost. On a lab of its own.
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/brokerLinkProxies.js';
import { prng, testSeed, waitFor } from '../support/harness.js';
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
  StaleDeliveryCounter,
  StatusMonitor,
  Workload,
  checkAfterFault,
  expectSound,
  peerOf,
  regionStatus,
} from '../support/workload.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

const REGIONS = ['us', 'eu', 'ap'] as const;
/** Issue 9's bounds (as in partition.cutAndHeal.test.ts). */
const MAX_WRITE_MS = 1_000;
const CONVERGE_AFTER_HEAL_MS = 20_000;
const STATUS_UP_AFTER_HEAL_MS = 10_000;

const test = faultLabTest({ regions: REGIONS });

describe('three regions, two of them cut one after the other', () => {
  let fl: FaultLab;

  test.beforeAll(async ({ lab }) => {
    fl = lab;
    await waitAllUp(fl);
  }, LAB_START_MS);

  it(
    'when us is cut, then eu as well, under writes to all three and both healed, then all served throughout and converge with nothing lost',
    { timeout: 180_000 },
    async () => {
      const seed = testSeed('three regions');
      const targets = Object.fromEntries(REGIONS.map((r) => [r, fl.regions[r]!.url]));
      const over = new Workload({
        targets,
        collection: 'three',
        random: prng(seed),
        keys: 40,
        writersPerTarget: 1,
      });
      const uniq = new Workload({
        targets,
        collection: 'three-unique',
        mode: 'unique',
        random: prng(seed ^ 0x9e3779b9),
        writersPerTarget: 1,
      });
      const loads = [over, uniq];
      const setPhase = (phase: string) => loads.forEach((l) => (l.phase = phase));
      const { peerDownAfterMs } = fl.thresholds;
      const downWithin = peerDownAfterMs + PEER_STATE_SLACK_MS + 1_000;
      const monitor = new StatusMonitor(targets, 150).start();
      const stale = new StaleDeliveryCounter(fl.urls());
      await stale.begin();
      loads.forEach((l) => l.start());
      const cuts: Record<string, { at: number; done: number }> = {};
      /** Cut `region`, then wait until its link is down and every other region calls it down. */
      const cut = async (region: string, mode: PartitionMode, others: readonly string[]) => {
        const at = Date.now();
        await fl.links.partition(region, mode);
        cuts[region] = { at, done: Date.now() };
        await monitor.waitFirst(
          `${region} to report its link down`,
          region,
          at,
          (s) => s.brokerLink?.state === 'down',
          15_000,
        );
        for (const o of others)
          await monitor.waitFirst(
            `${o} to report ${region} down`,
            o,
            at,
            (s) => peerOf(s, region)?.state === 'down',
            downWithin,
          );
      };
      let healedAt = 0;
      try {
        await sleep(1_500);
        setPhase('one-cut');
        await cut('us', PartitionMode.Reset, ['eu', 'ap']);
        setPhase('two-cut');
        await cut('eu', PartitionMode.Blackhole, ['ap']);
        await sleep(1_000);
      } finally {
        await Promise.all([fl.links.heal('us'), fl.links.heal('eu')]);
        healedAt = Date.now();
      }
      try {
        setPhase('after');
        await sleep(1_000);
        await Promise.all(loads.map((l) => l.stop()));
        const check = await checkAfterFault(Object.values(fl.regions), loads, 90_000);
        const upMs = await waitFor(
          'every region to report its link and every peer up',
          async () => {
            const s = await Promise.all(fl.urls().map((u) => regionStatus(u)));
            return s.every((x) => x.brokerLink?.state === 'up' && x.peers.every((p) => p.state === 'up'))
              ? Date.now() - healedAt
              : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        await monitor.stop();
        const duplicates = await stale.end();

        const linkDownMs = Object.fromEntries(
          ['us', 'eu'].map((r) => {
            const s = monitor.first(r, cuts[r]!.at, (x) => x.brokerLink?.state === 'down')!;
            return [r, Date.parse(s.status.brokerLink!.since!) - cuts[r]!.at];
          }),
        );
        // Every region's view of each cut region, and the cut regions' view of everyone (they hear
        // nothing either): [observer, peer, the cut that silenced the pair].
        const views: [string, string, string][] = [
          ['eu', 'us', 'us'],
          ['ap', 'us', 'us'],
          ['us', 'eu', 'us'],
          ['us', 'ap', 'us'],
          ['ap', 'eu', 'eu'],
          ['eu', 'ap', 'eu'],
        ];
        const peers = views.map(([observer, peer, by]) => ({
          observer,
          peer,
          view: peerDuringCut(monitor, fl.thresholds, observer, peer, cuts[by]!, healedAt),
        }));
        const backlogs = ['us', 'eu'].map((r) => ({
          region: r,
          backlog: backlogDuringCut(monitor, r, loads, cuts[r]!.done, healedAt),
        }));
        const during = ['one-cut', 'two-cut'].flatMap((p) => loads.map((l) => l.stats(p)));
        const failed = loads.reduce((n, l) => {
          const t = l.total();
          return n + t.serverErrors + t.networkErrors;
        }, 0);
        const maxWriteMs = Math.max(...during.map((p) => p.maxLatencyMs));
        const acked = loads.reduce((n, l) => n + l.totalAcked, 0);
        console.log(
          `[three regions] seed=${seed} us cut ${((healedAt - cuts.us!.at) / 1000).toFixed(1)}s (reset), eu cut ${((healedAt - cuts.eu!.at) / 1000).toFixed(1)}s (blackhole); ` +
            `${check.summary}; acked while cut ${during.reduce((n, p) => n + p.acked, 0)}, failed requests ${failed}, slowest write while cut ${maxWriteMs}ms; ` +
            `duplicatesApplied(stale no-ops)=${duplicates}; link down after: us ${linkDownMs.us}ms, eu ${linkDownMs.eu}ms; ` +
            peers.map((p) => describePeerDuringCut(p.view, p.observer, p.peer)).join('; ') +
            '; ' +
            backlogs.map((b) => `${b.region} ${describeBacklogDuringCut(b.backlog)}`).join('; ') +
            `; convergedAfterHeal=${check.convergedMs}ms statusUpAfterHeal=${upMs}ms`,
        );
        expectSound(check, loads);
        expect(check.convergedMs).toBeLessThanOrEqual(CONVERGE_AFTER_HEAL_MS);
        expect(upMs).toBeLessThanOrEqual(check.convergedMs + STATUS_UP_AFTER_HEAL_MS);
        // All three served throughout: no failure, no write slower than 1 s, writes in every region.
        expect(failed).toBe(0);
        expect(maxWriteMs).toBeLessThanOrEqual(MAX_WRITE_MS);
        for (const r of REGIONS)
          for (const phase of ['one-cut', 'two-cut'])
            expect(over.stats(phase, r).acked, `${r} ${phase}`).toBeGreaterThan(0);
        for (const [r, mode] of [
          ['us', PartitionMode.Reset],
          ['eu', PartitionMode.Blackhole],
        ] as const) {
          expect(linkDownMs[r]!, `${r}'s link down`).toBeGreaterThanOrEqual(0);
          expect(linkDownMs[r]!, `${r}'s link down`).toBeLessThanOrEqual(linkDownBoundMs(fl, mode));
        }
        for (const p of peers)
          expectPeerDuringCut(p.view, fl.thresholds, `${p.observer}'s view of ${p.peer}`);
        for (const b of backlogs) expectBacklogDuringCut(b.backlog, `${b.region}'s outbox`);
        // At most one more copy of each write per failed relay pass (BacklogDuringCut.maxRelayFailures).
        expect(duplicates).toBeLessThanOrEqual(
          acked * (1 + backlogs.reduce((n, b) => n + b.backlog.maxRelayFailures, 0)),
        );
      } finally {
        await Promise.all(loads.map((l) => l.stop()));
        await monitor.stop();
      }
    },
  );

  it(
    "when ap's link flaps while eu restarts and us crashes (SIGKILL) and restarts, under writes to all three, then ap serves throughout and all converge with nothing lost",
    { timeout: 180_000 },
    async () => {
      await waitAllUp(fl);
      const seed = testSeed('three regions flap and crash');
      const targets = Object.fromEntries(REGIONS.map((r) => [r, fl.regions[r]!.url]));
      const over = new Workload({
        targets,
        collection: 'flap',
        random: prng(seed),
        keys: 40,
        writersPerTarget: 1,
      });
      const uniq = new Workload({
        targets,
        collection: 'flap-unique',
        mode: 'unique',
        random: prng(seed ^ 0x9e3779b9),
        writersPerTarget: 1,
      });
      const loads = [over, uniq];
      const setPhase = (phase: string) => loads.forEach((l) => (l.phase = phase));
      const eu = fl.regions.eu!.process;
      const us = fl.regions.us!.process;
      loads.forEach((l) => l.start());
      let flaps = 0;
      let euRestartMs = 0;
      let usRestartMs = 0;
      try {
        await sleep(1_000);
        setPhase('faults');
        // ap's link: cut 1.2 s, healed 0.8 s, over and over, while eu restarts and then us crashes.
        let flapping = true;
        const flapper = (async () => {
          while (flapping) {
            await fl.links.partition('ap', flaps % 2 === 0 ? PartitionMode.Reset : PartitionMode.Blackhole);
            await sleep(1_200);
            await fl.links.heal('ap');
            flaps += 1;
            await sleep(800);
          }
        })();
        try {
          let t = Date.now();
          await eu.restart();
          euRestartMs = Date.now() - t;
          await sleep(1_000);
          t = Date.now();
          us.kill('SIGKILL');
          await us.waitForExit();
          await us.restart();
          usRestartMs = Date.now() - t;
          await sleep(1_500);
        } finally {
          flapping = false;
          await flapper;
          await fl.links.heal('ap');
        }
        setPhase('after');
        await sleep(1_000);
        await Promise.all(loads.map((l) => l.stop()));
        const check = await checkAfterFault(Object.values(fl.regions), loads, 90_000);
        const faults = loads.map((l) => l.stats('faults'));
        const apFaults = loads.map((l) => l.stats('faults', 'ap'));
        const failed = (ps: readonly { serverErrors: number; networkErrors: number }[]) =>
          ps.reduce((n, p) => n + p.serverErrors + p.networkErrors, 0);
        console.log(
          `[three regions flap+crash] seed=${seed} ap link flapped ${flaps} times; eu restarted in ${euRestartMs}ms, ` +
            `us SIGKILLed and ready again in ${usRestartMs}ms; during faults acked ${faults.reduce((n, p) => n + p.acked, 0)}, ` +
            `failed ${failed(faults)} (ap ${failed(apFaults)}, 5xx ${faults.reduce((n, p) => n + p.serverErrors, 0)}); ${check.summary}`,
        );
        expectSound(check, loads);
        expect(check.convergedMs).toBeLessThanOrEqual(CONVERGE_AFTER_HEAL_MS);
        expect(flaps).toBeGreaterThanOrEqual(2);
        // ap, only flapping, served every request; the restarting regions refused some, answered none with a 5xx.
        expect(failed(apFaults)).toBe(0);
        expect(faults.reduce((n, p) => n + p.serverErrors, 0)).toBe(0);
        for (const r of REGIONS) expect(over.stats('faults', r).acked, r).toBeGreaterThan(0);
      } finally {
        await Promise.all(loads.map((l) => l.stop()));
      }
    },
  );
});
