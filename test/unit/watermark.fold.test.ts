import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatStamp } from '../../shared/domain/hlc.js';
import {
  computeSettledBefore,
  foldAppliedWatermarks,
  foldPartitionMarks,
  foldPeerReports,
  foldProgress,
  type AppliedChange,
  type HeartbeatMarks,
  type PartitionMark,
} from '../../shared/domain/watermark.js';
import { stampArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** Few origins and partitions, small marks: heartbeats of one origin and partition collide often. */
const ORIGINS = ['us', 'eu', 'ap'] as const;
const originArb = fc.constantFrom(...ORIGINS);
const msArb = fc.integer({ min: 0, max: 20 });

const heartbeatArb: fc.Arbitrary<HeartbeatMarks> = fc
  .record(
    {
      origin: originArb,
      sentAt: msArb,
      partition: fc.integer({ min: 0, max: 3 }),
      partitions: fc.integer({ min: 1, max: 4 }),
      safeBefore: msArb,
      watermarks: fc.dictionary(originArb, msArb, { noNullPrototype: true }),
      policies: fc.constant({}),
    },
    { requiredKeys: ['origin', 'sentAt'], noNullPrototype: true },
  )
  .map((h) => h as HeartbeatMarks);
const heartbeatsArb = fc.array(heartbeatArb, { maxLength: 20 });

/** Stored marks: at most one per origin and partition, as the table's key keeps them. */
const storedMarksArb: fc.Arbitrary<PartitionMark[]> = fc
  .array(
    fc.record({
      origin: originArb,
      partition: fc.integer({ min: 0, max: 5 }),
      partitions: fc.integer({ min: 1, max: 4 }),
      safeBefore: msArb,
    }),
    { maxLength: 15 },
  )
  .map((ms) => {
    const byKey = new Map<string, PartitionMark>();
    for (const m of ms) byKey.set(`${m.origin}/${m.partition}`, { ...m, sentAt: new Date(0) });
    return [...byKey.values()];
  });

const hasMark = (h: HeartbeatMarks) =>
  h.partition !== undefined && h.partitions !== undefined && h.safeBefore !== undefined;
const byKey = (marks: readonly PartitionMark[]) =>
  new Map(marks.map((m) => [`${m.origin}/${m.partition}`, m.safeBefore]));

describe('foldPartitionMarks', () => {
  it('when heartbeats are folded, then each partition of each origin keeps its highest mark', () => {
    fc.assert(
      fc.property(heartbeatsArb, (hbs) => {
        const expected = new Map<string, number>();
        for (const h of hbs.filter(hasMark)) {
          const id = `${h.origin}/${h.partition}`;
          expected.set(id, Math.max(expected.get(id) ?? -Infinity, h.safeBefore!));
        }
        expect(byKey(foldPartitionMarks(hbs))).toEqual(expected);
      }),
      fcRuns.params(300),
    );
  });

  it('when heartbeats arrive in another order or twice, then the marks are the same', () => {
    fc.assert(
      fc.property(
        heartbeatsArb.chain((hbs) =>
          fc.tuple(fc.constant(hbs), fc.shuffledSubarray(hbs, { minLength: hbs.length })),
        ),
        ([hbs, shuffled]) => {
          expect(byKey(foldPartitionMarks(shuffled))).toEqual(byKey(foldPartitionMarks(hbs)));
          expect(byKey(foldPartitionMarks([...hbs, ...hbs]))).toEqual(byKey(foldPartitionMarks(hbs)));
        },
      ),
      fcRuns.params(300),
    );
  });
});

describe('foldAppliedWatermarks', () => {
  it('when every partition of an origin has reported, then its watermark is the least mark; else it has none', () => {
    fc.assert(
      fc.property(storedMarksArb, (marks) => {
        const w = foldAppliedWatermarks(marks);
        for (const origin of ORIGINS) {
          const own = marks.filter((m) => m.origin === origin);
          const partitions = Math.max(0, ...own.map((m) => m.partitions));
          if (own.length > 0 && own.length >= partitions)
            expect(w.get(origin)).toBe(Math.min(...own.map((m) => m.safeBefore)));
          else expect(w.has(origin)).toBe(false);
        }
      }),
      fcRuns.params(300),
    );
  });

  it('when a partition’s mark rises, then no watermark falls (monotone)', () => {
    fc.assert(
      fc.property(storedMarksArb, fc.nat(), msArb, (marks, pick, raise) => {
        fc.pre(marks.length > 0);
        const i = pick % marks.length;
        const raised = marks.map((m, j) => (j === i ? { ...m, safeBefore: m.safeBefore + raise } : m));
        const before = foldAppliedWatermarks(marks);
        const after = foldAppliedWatermarks(raised);
        for (const [origin, w] of before) expect(after.get(origin)).toBeGreaterThanOrEqual(w);
      }),
      fcRuns.params(300),
    );
  });

  it('when heartbeats reached every partition, then the watermark is the least of the partitions’ highest marks', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.array(msArb, { minLength: 1, maxLength: 4 }), { minLength: 4, maxLength: 4 }),
        (partitions, perPartition) => {
          const hbs: HeartbeatMarks[] = perPartition
            .slice(0, partitions)
            .flatMap((marks, partition) =>
              marks.map((safeBefore) => ({ origin: 'us', sentAt: 0, partition, partitions, safeBefore })),
            );
          const expected = Math.min(...perPartition.slice(0, partitions).map((m) => Math.max(...m)));
          expect(foldAppliedWatermarks(foldPartitionMarks(hbs)).get('us')).toBe(expected);
        },
      ),
      fcRuns.params(200),
    );
  });
});

describe('foldPeerReports', () => {
  it('when heartbeats are folded, then each origin keeps the report of its newest heartbeat with acknowledgements', () => {
    fc.assert(
      fc.property(heartbeatsArb, (hbs) => {
        const reports = foldPeerReports(hbs);
        const reporting = hbs.filter((h) => h.watermarks !== undefined && h.policies !== undefined);
        expect(reports.map((r) => r.reporter).sort()).toEqual(
          [...new Set(reporting.map((h) => h.origin))].sort(),
        );
        for (const r of reports) {
          const newest = Math.max(...reporting.filter((h) => h.origin === r.reporter).map((h) => h.sentAt));
          expect(r.sentAt.getTime()).toBe(newest);
          expect(reporting).toContainEqual(
            expect.objectContaining({ origin: r.reporter, sentAt: newest, watermarks: r.watermarks }),
          );
        }
      }),
      fcRuns.params(300),
    );
  });
});

describe('foldProgress', () => {
  const changeArb: fc.Arbitrary<AppliedChange> = fc.record({
    origin: originArb,
    hlc: stampArb,
    writtenAt: msArb,
  });

  it('when a batch is folded, then each origin counts its events, keeps its greatest stamp, newest heartbeat and least lag', () => {
    fc.assert(
      fc.property(fc.array(changeArb, { maxLength: 15 }), heartbeatsArb, msArb, (changes, hbs, appliedAt) => {
        const updates = foldProgress(changes, hbs, appliedAt);
        const origins = new Set([...changes, ...hbs].map((e) => e.origin));
        expect(updates.map((u) => u.origin).sort()).toEqual([...origins].sort());
        for (const u of updates) {
          const cs = changes.filter((c) => c.origin === u.origin);
          const hs = hbs.filter((h) => h.origin === u.origin);
          expect(u.events).toBe(cs.length + hs.length);
          if (cs.length === 0) {
            expect(u.maxHlc).toBeUndefined();
            expect(u.lastEventId).toBeUndefined();
            expect(u.lagMs).toBeUndefined();
          } else {
            for (const c of cs) {
              const below =
                c.hlc.wall < u.maxHlc!.wall ||
                (c.hlc.wall === u.maxHlc!.wall && c.hlc.logical <= u.maxHlc!.logical);
              expect(below).toBe(true);
            }
            expect(cs).toContainEqual(expect.objectContaining({ hlc: u.maxHlc }));
            expect(u.lastEventId).toBe(formatStamp(cs.at(-1)!.hlc));
            expect(u.lagMs).toBe(Math.max(0, appliedAt - Math.max(...cs.map((c) => c.writtenAt))));
          }
          if (hs.length === 0) expect(u.heartbeatSentAt).toBeUndefined();
          else expect(u.heartbeatSentAt?.getTime()).toBe(Math.max(...hs.map((h) => h.sentAt)));
        }
      }),
      fcRuns.params(300),
    );
  });
});

describe('computeSettledBefore', () => {
  it('when settled, then it is below the own mark and every peer’s watermark, 0 for a peer without one, never negative', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 20 }),
        fc.dictionary(originArb, msArb, { noNullPrototype: true }),
        fc.subarray([...ORIGINS]),
        (own, marks, peers) => {
          const watermarks = new Map(Object.entries(marks));
          const settled = computeSettledBefore(own, watermarks, peers);
          expect(settled).toBe(Math.max(0, Math.min(own, ...peers.map((p) => watermarks.get(p) ?? 0))));
          expect(settled).toBeGreaterThanOrEqual(0);
          for (const p of peers) expect(settled).toBeLessThanOrEqual(watermarks.get(p) ?? 0);
        },
      ),
      fcRuns.params(300),
    );
  });
});
