/**
 * The bench's reading of the regions' stage histograms (bench/measure/stageHistogram.ts), against
 * prom-client's own text exposition of `hothot_replication_stage_seconds` with the region's buckets:
 * counts and sums survive the round trip, a later scrape minus an earlier one is what was observed in
 * between, and an interpolated percentile lies in the bucket that holds the exact one.
 */
import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { STAGE_BUCKETS } from '../../services/region/regionMetrics.js';
import {
  histogramQuantile,
  parseStageHistograms,
  pathStages,
  stageDelta,
  summarizeStages,
} from '../../bench/measure/stageHistogram.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

function stageRegistry() {
  const registry = new Registry();
  const h = new Histogram({
    name: 'hothot_replication_stage_seconds',
    help: 'test',
    labelNames: ['stage'] as const,
    buckets: STAGE_BUCKETS,
    registers: [registry],
  });
  return { registry, h };
}

/** Seconds, mostly where the buckets are fine, some beyond the last bound. */
const secondsArb = fc.oneof(
  fc.double({ min: 0, max: 0.05, noNaN: true }),
  fc.double({ min: 0, max: 20, noNaN: true }),
);

/** The bucket bounds around `v`: [previous bound, first bound ≥ v]. */
function bucketOf(v: number): [number, number] {
  const i = STAGE_BUCKETS.findIndex((le) => v <= le);
  return i === -1
    ? [STAGE_BUCKETS.at(-1)!, Infinity]
    : [i === 0 ? 0 : STAGE_BUCKETS[i - 1]!, STAGE_BUCKETS[i]!];
}

describe('stage histograms as the bench reads them', () => {
  it('parses counts, sums and cumulative buckets per stage from a real exposition', async () => {
    const { registry, h } = stageRegistry();
    for (const v of [0.0004, 0.0015, 0.0015, 0.012]) h.observe({ stage: 'claimed_to_sent' }, v);
    h.observe({ stage: 'sent_to_fetched' }, 30);
    const parsed = parseStageHistograms(await registry.metrics());
    const sent = parsed.get('claimed_to_sent')!;
    expect(sent.count).toBe(4);
    expect(sent.sum).toBeCloseTo(0.0154, 10);
    expect(sent.buckets.find(([le]) => le === 0.002)?.[1]).toBe(3);
    expect(sent.buckets.at(-1)).toEqual([Infinity, 4]);
    expect(parsed.get('sent_to_fetched')!.buckets.find(([le]) => le === 10)?.[1]).toBe(0);
    // Beyond the last bound: the best a histogram can say is its last bound.
    expect(histogramQuantile(parsed.get('sent_to_fetched')!, 0.5)).toBe(10);
    expect(parsed.has('written_to_claimed')).toBe(false);
  });

  it('a later scrape minus an earlier one holds exactly what was observed in between', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(secondsArb, { maxLength: 50 }),
        fc.array(secondsArb, { minLength: 1, maxLength: 200 }),
        async (earlier, between) => {
          const { registry, h } = stageRegistry();
          for (const v of earlier) h.observe({ stage: 'fetched_to_applied' }, v);
          const before = parseStageHistograms(await registry.metrics());
          for (const v of between) h.observe({ stage: 'fetched_to_applied' }, v);
          const delta = stageDelta(before, parseStageHistograms(await registry.metrics()));
          const d = delta.get('fetched_to_applied')!;
          expect(d.count).toBe(between.length);
          expect(d.sum).toBeCloseTo(
            between.reduce((a, b) => a + b, 0),
            6,
          );
          for (const [le, n] of d.buckets) expect(n).toBe(between.filter((v) => v <= le).length);
        },
      ),
      fcRuns.params(100),
    );
  });

  it('an interpolated percentile lies in the bucket of the exact one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(secondsArb, { minLength: 1, maxLength: 300 }),
        fc.constantFrom(0.5, 0.9, 0.99),
        async (values, q) => {
          const { registry, h } = stageRegistry();
          for (const v of values) h.observe({ stage: 'applied_to_committed' }, v);
          const hist = parseStageHistograms(await registry.metrics()).get('applied_to_committed')!;
          const sorted = [...values].sort((a, b) => a - b);
          const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
          const [lo, hi] = bucketOf(exact);
          const got = histogramQuantile(hist, q);
          expect(got).toBeGreaterThanOrEqual(lo);
          expect(got).toBeLessThanOrEqual(Number.isFinite(hi) ? hi : lo);
        },
      ),
      fcRuns.params(100),
    );
  });

  it('takes the relay stages from the origin and the applier stages from the peer, in path order', async () => {
    const origin = stageRegistry();
    const peer = stageRegistry();
    origin.h.observe({ stage: 'claimed_to_sent' }, 0.001);
    origin.h.observe({ stage: 'sent_to_fetched' }, 99); // the origin applying its peer's changes: not this path
    peer.h.observe({ stage: 'sent_to_fetched' }, 0.003);
    peer.h.observe({ stage: 'written_to_claimed' }, 99);
    const stages = summarizeStages(
      pathStages(
        parseStageHistograms(await origin.registry.metrics()),
        parseStageHistograms(await peer.registry.metrics()),
      ),
    );
    expect(stages.map((s) => [s.stage, s.meanMs])).toEqual([
      ['claimed_to_sent', 1],
      ['sent_to_fetched', 3],
    ]);
    expect(stages[1]!.histogram.reduce((a, [, n]) => a + n, 0)).toBe(1);
  });
});
