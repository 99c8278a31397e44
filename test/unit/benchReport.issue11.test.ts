/**
 * Issue 11's targets in the bench's reports: the repair scenario's row (#11) is met only when every
 * one of its three targets is, and a repair that never came shows as such, not as a figure; the
 * add-region report judges the join against both logical copies and says which one it fails.
 */
import { describe, expect, it } from 'vitest';
import { targetRows, type BenchResults } from '../../bench/report/benchReport.js';
import { addRegionChart, addRegionMarkdown } from '../../bench/report/addRegionReport.js';
import type { RepairResult } from '../../bench/scenarios/repair.js';
import type { AddRegionBenchResult } from '../../bench/scenarios/addRegion.js';

const base = {
  id: 'x',
  startedAt: '2026-12-02T00:00:00.000Z',
  finishedAt: '2026-12-02T00:01:00.000Z',
  durationS: 60,
  mode: 'quick',
  scenarios: ['repair'],
  regionEnv: {},
  machine: {} as BenchResults['machine'],
  loadAverage: {},
  errors: [],
} satisfies Omit<BenchResults, 'targets'>;

const repaired: RepairResult = {
  items: 5000,
  damaged: 100,
  changed: 50,
  deleted: 50,
  seed: 1,
  detectS: 3.6,
  repairS: 9.2,
  keysRepublished: 100,
  republishedPerDamaged: 1,
  met: { detect: true, repair: true, republished: true },
  timeline: [{ t: 0, damagedLeft: 100, bucketsDivergent: 0, keysRepublished: 0 }],
};

describe('bench report: the repair row (#11)', () => {
  it('is met when the damage was detected, repaired and republished within the targets', () => {
    const [row] = targetRows({ ...base, repair: repaired });
    expect(row).toMatchObject({
      id: '11',
      met: true,
      hothot: '3.6 s / 9.2 s / 100',
      target: '≤ 30 s / ≤ 60 s / ≤ 2×',
    });
  });

  it('is not met when any one target is missed, and a repair that never came reads –', () => {
    for (const miss of ['detect', 'repair', 'republished'] as const) {
      const [row] = targetRows({ ...base, repair: { ...repaired, met: { ...repaired.met, [miss]: false } } });
      expect(row!.met, miss).toBe(false);
    }
    const [row] = targetRows({
      ...base,
      repair: { ...repaired, repairS: Number.NaN, met: { ...repaired.met, repair: false } },
    });
    expect(row!.hothot).toBe('3.6 s / – / 100');
  });
});

const copy = (ms: number) => ({ rows: 1000, copied: 1000, initialCopyMs: ms });
const joined: AddRegionBenchResult = {
  scenario: 'add-region',
  mode: 'quick',
  at: '2026-12-02T00:00:00.000Z',
  items: 1000,
  rowsAtJoin: 1000,
  writeRate: 200,
  writes: { sent: 10, ok: 10, failed: 0, failures: {}, seconds: 1 },
  joinMs: 3000,
  totalMs: 9000,
  phases: [{ phase: 'joined', ms: 1000 }],
  snapshot: {} as AddRegionBenchResult['snapshot'],
  identical: { rows: 1010, digest: 'abc', afterWriterStoppedMs: 500 },
  logicalReplication: { ...copy(2000), idle: copy(1000) },
  joinVsLogicalCopy: 1.5,
  joinVsIdleLogicalCopy: 3,
  totalVsLogicalCopy: 4.5,
  snapshotVsLogicalCopy: 0.5,
  target: { joinVsLogicalCopyAtMost: 2, failedWrites: 0 },
  met: { againstSameWrites: true, againstIdle: false },
};

describe('add-region report', () => {
  it('judges the join against both logical copies', () => {
    const md = addRegionMarkdown(joined, 'chart.svg');
    expect(md).toContain('join 1.50×, ✅ met');
    expect(md).toContain('join 3.00×, ❌ not met');
    expect(md).toContain('![add-region](chart.svg)');
  });

  it('charts the join beside each copy, in seconds, with the ratios', () => {
    const svg = addRegionChart(joined);
    expect(svg).toContain('1.50×');
    expect(svg).toContain('3.00×');
    expect(svg).toContain('0.50×');
  });
});
