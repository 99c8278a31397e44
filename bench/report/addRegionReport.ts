/**
 * The add-region bench's report (issue 11): `add-region-<stamp>.json`, a Markdown report beside it
 * and its chart `add-region-<stamp>-join.svg` (the join against native logical replication's initial
 * copy of the same rows, made under the same writes and on an idle machine).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddRegionBenchResult } from '../scenarios/addRegion.js';
import { table } from './benchReport.js';
import { barChart, COLORS } from './svgCharts.js';

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const x = (ratio: number) => `${ratio.toFixed(2)}×`;

/** The chart: the join and its snapshot copy beside each logical copy. */
export function addRegionChart(r: AddRegionBenchResult): string {
  const same = r.logicalReplication.initialCopyMs;
  const idle = r.logicalReplication.idle.initialCopyMs;
  return barChart({
    title: `Add a region online: ${r.rowsAtJoin} items, ${r.writeRate} writes/s into the others throughout`,
    subtitle: `join: positions → snapshot → every region up; logical: initial copy (copy_data = true) of the same rows; target ≤ ${r.target.joinVsLogicalCopyAtMost}×`,
    categories: [
      'join | copy under the writes',
      'join | copy, idle machine',
      'snapshot | copy under the writes',
    ],
    categoryLabel: '',
    series: [
      {
        name: 'hothot',
        color: COLORS.hothot,
        values: [r.joinMs, r.joinMs, r.snapshot.ms].map((v) => v / 1000),
      },
      { name: 'logical replication', color: COLORS.peer, values: [same, idle, same].map((v) => v / 1000) },
    ],
    groupNotes: [x(r.joinVsLogicalCopy), x(r.joinVsIdleLogicalCopy), x(r.snapshotVsLogicalCopy)],
    yLabel: 'seconds',
    width: 820,
  });
}

export function addRegionMarkdown(r: AddRegionBenchResult, chartFile: string): string {
  const lr = r.logicalReplication;
  const judged = (met: boolean) => (met ? '✅ met' : '❌ not met');
  return `${[
    `# hothot add-region benchmark — ${r.at}`,
    '',
    `Mode **${r.mode}**. Produced by \`npm run bench -- --only addregion${r.mode === 'quick' ? ' --quick' : ''}\`; raw figures in the JSON file of the same name.`,
    '',
    `A lab of \`us\` and \`eu\` (compiled regions, one process each) seeded with ${r.items} items takes ${r.writeRate} writes/s (half into each) ` +
      `while \`hothot lab add-region ap --from us\` adds a third region (docs/operations.md, "Adding and removing a region"). ` +
      'Then every item of the three regions is compared (an md5 over every row and the row count), and native logical replication copies ' +
      'the same rows between two fresh clusters on this machine, once while the writer still writes (the conditions the join had) and once after it stopped.',
    '',
    `![add-region](${chartFile})`,
    '',
    table(
      ['what', 'figure'],
      [
        ['rows in the snapshot', r.rowsAtJoin],
        [
          'writes during the join',
          `${r.writes.ok} of ${r.writes.sent} acknowledged, ${r.writes.failed} failed`,
        ],
        ['time to join (positions → every region up)', s(r.joinMs)],
        [`snapshot copy (${r.snapshot.load})`, s(r.snapshot.ms)],
        ['the whole command, provisioning included', s(r.totalMs)],
        [
          'three regions identical',
          `${r.identical.rows} rows, md5 \`${r.identical.digest}\`, ${s(r.identical.afterWriterStoppedMs)} after the writer stopped`,
        ],
        [
          'logical initial copy under the same writes',
          `${s(lr.initialCopyMs)} (${lr.copied} of ${lr.rows} rows): join ${x(r.joinVsLogicalCopy)}, ${judged(r.met.againstSameWrites)} (≤ ${r.target.joinVsLogicalCopyAtMost}×, 0 failed writes)`,
        ],
        [
          'logical initial copy, idle machine',
          `${s(lr.idle.initialCopyMs)} (${lr.idle.copied} of ${lr.idle.rows} rows): join ${x(r.joinVsIdleLogicalCopy)}, ${judged(r.met.againstIdle)}`,
        ],
      ],
    ),
    '',
    '## Phases of the command',
    '',
    table(
      ['phase', 'time'],
      r.phases.map((p) => [p.phase, s(p.ms)]),
    ),
    '',
  ].join('\n')}`;
}

/** Write `add-region-<stamp>.json`, `.md` and `-join.svg` into `dir`. */
export function writeAddRegionReport(
  r: AddRegionBenchResult,
  dir: string,
): { json: string; markdown: string; chart: string } {
  mkdirSync(dir, { recursive: true });
  const base = `add-region-${r.at.replace(/[:.]/g, '-')}`;
  const json = join(dir, `${base}.json`);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  const chart = join(dir, `${base}-join.svg`);
  writeFileSync(chart, addRegionChart(r));
  const markdown = join(dir, `${base}.md`);
  writeFileSync(markdown, addRegionMarkdown(r, `${base}-join.svg`));
  return { json, markdown, chart };
}
