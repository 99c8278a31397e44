import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeAckHorizon, type AckHorizonInput, type PeerReport } from '../../shared/domain/watermark.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const REGION = 'us';
const PEERS = ['eu', 'ap', 'sa'] as const;
const NOW = 1_000_000;
const msArb = fc.integer({ min: 0, max: 50 });

/** Watermarks and reports that are often complete, sometimes missing a piece or silent too long. */
const inputArb: fc.Arbitrary<AckHorizonInput> = fc
  .record({
    peerRegions: fc.subarray([...PEERS]),
    graceMs: fc.integer({ min: 0, max: 100 }),
    peerSuspectAfterMs: fc.integer({ min: 0, max: 100 }),
    local: fc.dictionary(fc.constantFrom(...PEERS), msArb, { noNullPrototype: true }),
    reports: fc.array(
      fc.record({
        reporter: fc.constantFrom(...PEERS),
        watermarks: fc.dictionary(fc.constantFrom(REGION, ...PEERS), msArb, { noNullPrototype: true }),
        silentMs: fc.oneof(
          { weight: 4, arbitrary: fc.integer({ min: 0, max: 30 }) },
          fc.integer({ min: 0, max: 200 }),
        ),
      }),
      { maxLength: 4 },
    ),
  })
  .map((g) => {
    const byReporter = new Map<string, PeerReport>();
    for (const r of g.reports)
      byReporter.set(r.reporter, {
        reporter: r.reporter,
        watermarks: r.watermarks,
        policies: {},
        sentAt: new Date(NOW - r.silentMs),
      });
    return {
      region: REGION,
      peerRegions: g.peerRegions,
      graceMs: g.graceMs,
      peerSuspectAfterMs: g.peerSuspectAfterMs,
      watermarks: new Map(Object.entries(g.local)),
      reports: [...byReporter.values()],
      now: NOW,
    };
  });

/** Whether every acknowledgement the horizon needs is there and fresh. */
function accountedFor(o: AckHorizonInput): boolean {
  const limit = Math.min(o.graceMs, o.peerSuspectAfterMs);
  return o.peerRegions.every((peer) => {
    const r = o.reports.find((x) => x.reporter === peer);
    return (
      o.watermarks.has(peer) &&
      r !== undefined &&
      o.now - r.sentAt.getTime() <= limit &&
      [o.region, ...o.peerRegions].every((origin) => origin === peer || r.watermarks[origin] !== undefined)
    );
  });
}

describe('computeAckHorizon', () => {
  it('when every region has acknowledged every origin, then the horizon is the least acknowledgement; else it is blocked, with a reason', () => {
    fc.assert(
      fc.property(inputArb, (o) => {
        const h = computeAckHorizon(o);
        if (!accountedFor(o)) {
          expect(h.acknowledgedMs).toBeNull();
          expect(h.blockedBy).toEqual(expect.any(String));
          return;
        }
        expect(h.blockedBy).toBeNull();
        const acks = o.peerRegions.flatMap((peer) => [
          o.watermarks.get(peer)!,
          ...[o.region, ...o.peerRegions]
            .filter((origin) => origin !== peer)
            .map((origin) => o.reports.find((r) => r.reporter === peer)!.watermarks[origin]!),
        ]);
        expect(h.acknowledgedMs).toBe(acks.length === 0 ? o.now : Math.min(...acks));
      }),
      fcRuns.params(500),
    );
  });

  it('when the horizon is known, then no region’s acknowledgement of any origin is below it', () => {
    fc.assert(
      fc.property(inputArb, (o) => {
        const h = computeAckHorizon(o);
        fc.pre(h.acknowledgedMs !== null);
        for (const peer of o.peerRegions) {
          expect(o.watermarks.get(peer)!).toBeGreaterThanOrEqual(h.acknowledgedMs);
          const r = o.reports.find((x) => x.reporter === peer)!;
          for (const origin of [o.region, ...o.peerRegions])
            if (origin !== peer) expect(r.watermarks[origin]!).toBeGreaterThanOrEqual(h.acknowledgedMs);
        }
      }),
      fcRuns.params(300),
    );
  });

  it('when reports come in another order, then the horizon is the same', () => {
    fc.assert(
      fc.property(
        inputArb.chain((o) =>
          fc.tuple(fc.constant(o), fc.shuffledSubarray([...o.reports], { minLength: o.reports.length })),
        ),
        ([o, shuffled]) => {
          expect(computeAckHorizon({ ...o, reports: shuffled })).toEqual(computeAckHorizon(o));
        },
      ),
      fcRuns.params(300),
    );
  });

  it('when any acknowledgement rises, then the horizon does not fall and stays unblocked (monotone)', () => {
    fc.assert(
      fc.property(inputArb, msArb, (o, raise) => {
        const h = computeAckHorizon(o);
        fc.pre(h.acknowledgedMs !== null);
        const raised: AckHorizonInput = {
          ...o,
          watermarks: new Map([...o.watermarks].map(([k, w]) => [k, w + raise])),
          reports: o.reports.map((r) => ({
            ...r,
            watermarks: Object.fromEntries(Object.entries(r.watermarks).map(([k, w]) => [k, w + raise])),
          })),
        };
        expect(computeAckHorizon(raised).acknowledgedMs).toBeGreaterThanOrEqual(h.acknowledgedMs);
      }),
      fcRuns.params(300),
    );
  });
});
