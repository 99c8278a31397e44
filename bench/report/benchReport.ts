/**
 * The results of one bench run: the JSON written to bench/results/<timestamp>.json, the Markdown
 * report beside it (also copied to latest.md) and its SVG charts.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGBENCH_WRITE_PATH_STATEMENTS, PGBENCH_WRITE_SCRIPT } from '../load/pgbench.js';
import type { MachineInfo } from '../machine.js';
import type { CatchUpResult } from '../scenarios/catchUp.js';
import type { LagResult } from '../scenarios/replicationLag.js';
import { STAGES } from '../measure/stageHistogram.js';
import type { LatencyResult } from '../scenarios/writeLatency.js';
import type { ThroughputResult } from '../scenarios/writeThroughput.js';
import type { FloorResult } from '../scenarios/transportFloor.js';
import type { TimelineResult } from '../scenarios/partitionTimeline.js';
import type { SigningResult } from '../scenarios/signingCost.js';
import { REPAIR_DETECT_TARGET_S, REPAIR_TARGET_S, type RepairResult } from '../scenarios/repair.js';
import { barChart, COLORS, percentileChart, timelineChart } from './svgCharts.js';
import type { HostCpuShare } from '../measure/hostCpu.js';

export interface BenchResults {
  readonly id: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationS: number;
  readonly mode: 'full' | 'quick';
  readonly scenarios: readonly string[];
  readonly regionEnv: Readonly<Record<string, string>>;
  readonly machine: MachineInfo;
  /** 1-minute load average before each scenario (the machine is shared). */
  readonly loadAverage: Readonly<Record<string, number>>;
  /**
   * The whole machine's CPU during each scenario that finished: busy, and stolen by the hypervisor
   * for other guests (bench/measure/hostCpu.ts). Absent in runs before 2026-12-02.
   */
  readonly hostCpu?: Readonly<Record<string, HostCpuShare>>;
  readonly throughput?: ThroughputResult;
  readonly latency?: LatencyResult;
  readonly lag?: LagResult;
  readonly catchUp?: CatchUpResult;
  readonly floor?: FloorResult;
  readonly timeline?: TimelineResult;
  readonly signing?: SigningResult;
  /** Digest anti-entropy repairing rows damaged by hand (issue 11). */
  readonly repair?: RepairResult;
  /** The Debezium peer of #3 and #4 (issue 13), when it ran: versions and the settings changed from defaults. */
  readonly debeziumPeer?: {
    readonly debezium: string;
    readonly kafkaConnect: string;
    readonly hibernate: string;
    readonly tuning: Readonly<Record<string, string>>;
  };
  readonly errors: readonly { readonly scenario: string; readonly message: string }[];
  readonly targets: readonly TargetRow[];
}

export interface TargetRow {
  readonly id: string;
  readonly metric: string;
  readonly hothot: string;
  readonly peer: string;
  readonly value: string;
  readonly target: string;
  readonly met: boolean | null;
}

const MIB_TO_MB = 1.048576;
const RSS_LIMIT_MB = 200;

const f = (v: number, digits = 2) => (Number.isFinite(v) ? String(Number(v.toFixed(digits))) : '–');
/** Seconds to one decimal with their unit; `–` for a figure that never came (NaN). */
const secs = (v: number) => (Number.isFinite(v) ? `${f(v, 1)} s` : '–');

export function targetRows(r: Omit<BenchResults, 'targets'>): TargetRow[] {
  const rows: TargetRow[] = [];
  if (r.throughput) {
    const t = r.throughput;
    rows.push({
      id: '1',
      metric: 'write throughput, one region (best, <1 % errors)',
      hothot: `${Math.round(t.hothotBest.okPerS)} req/s @${t.hothotBest.concurrency}`,
      peer: `pgbench ${Math.round(t.pgbenchBest.tps)} tx/s @${t.pgbenchBest.concurrency}`,
      value: `${f(t.ratio)}×`,
      target: '≥ 0.30×',
      met: t.ratio >= 0.3,
    });
    if (t.byProcesses !== undefined && t.byProcesses.length > 0)
      rows.push({
        id: '1',
        metric: 'write throughput by API processes per region (best of 16 / 64 connections)',
        hothot: t.byProcesses.map((p) => `${p.processes}: ${Math.round(p.okPerS)} req/s`).join(', '),
        peer: `pgbench ${Math.round(t.pgbenchBest.tps)} tx/s`,
        value: t.byProcesses.map((p) => `${f(p.ratio)}×`).join(', '),
        target: 'a chart',
        met: true,
      });
  }
  // Issue 13's point: 50 % of hothot's own best (the other point, 50 % of pgbench's, is in #2).
  const main = r.latency?.points.find((p) => p.basis === 'hothot max');
  if (main) {
    rows.push({
      id: '2',
      metric: `write latency at ${main.rate}/s (50 % of hothot's max), p50 / p99`,
      hothot: `${f(main.hothot.p50)} / ${f(main.hothot.p99)} ms`,
      peer: `pgbench -R ${f(main.pgbench.p50)} / ${f(main.pgbench.p99)} ms`,
      value: `p99 ${main.p99DeltaMs >= 0 ? '+' : ''}${f(main.p99DeltaMs)} ms`,
      target: 'p99 ≤ peer + 3 ms',
      met: main.p99DeltaMs <= 3,
    });
  }
  for (const p of r.lag?.points ?? []) {
    // Issue 13: within reach of the transport's own floor (#5, kafkajs, same rate, same run).
    const floor = r.floor?.points.find((x) => x.rate === p.rate);
    const p50Over = floor ? p.hothot.p50 - floor.p50 : Number.NaN;
    const p99Times = floor ? p.hothot.p99 / floor.p99 : Number.NaN;
    rows.push({
      id: '3',
      metric: `replication lag at ${p.rate} writes/s, p50 / p99`,
      hothot: `${f(p.hothot.p50)} / ${f(p.hothot.p99)} ms`,
      peer:
        (floor ? `floor ${f(floor.p50)} / ${f(floor.p99)} ms; ` : 'floor not measured; ') +
        `logical ${f(p.logical.p50)} / ${f(p.logical.p99)} ms`,
      value: floor
        ? `p50 ${p50Over >= 0 ? '+' : ''}${f(p50Over)} ms / p99 ${f(p99Times)}× floor`
        : `${f(p.p50Ratio)}× / ${f(p.p99Ratio)}× logical`,
      target: 'p50 ≤ floor + 2 ms, p99 ≤ 1.5× floor',
      met: floor ? p50Over <= 2 && p99Times <= 1.5 : null,
    });
  }
  for (const p of r.lag?.points ?? []) {
    if (p.debezium === undefined) continue;
    const p50 = p.p50RatioDebezium ?? Number.NaN;
    const p99 = p.p99RatioDebezium ?? Number.NaN;
    rows.push({
      id: '3 (Debezium)',
      metric: `replication lag at ${p.rate} writes/s vs Debezium, p50 / p99`,
      hothot: `${f(p.hothot.p50)} / ${f(p.hothot.p99)} ms`,
      peer: `Debezium ${f(p.debezium.p50)} / ${f(p.debezium.p99)} ms`,
      value: `${f(p50)}× / ${f(p99)}×`,
      target: 'p50 ≤ 0.5×, p99 ≤ 0.5×',
      met: p50 <= 0.5 && p99 <= 0.5,
    });
  }
  if (r.catchUp) {
    const c = r.catchUp;
    rows.push({
      id: '4',
      metric: `catch-up of ${c.items} events after a partition (heal → all applied)`,
      hothot: `${Math.round(c.hothot.eventsPerS)} ev/s`,
      peer: `logical ${Math.round(c.logical.eventsPerS)} ev/s`,
      value: `${f(c.ratio)}×; first apply ${f(c.hothot.healToFirstS)} s after heal`,
      target: '≥ 1.0×, heal → first apply ≤ 0.5 s',
      met: c.ratio >= 1 && c.hothot.healToFirstS <= 0.5,
    });
    if (c.debezium !== undefined) {
      const ratio = c.ratioDebezium ?? Number.NaN;
      rows.push({
        id: '4b',
        metric: `catch-up of ${c.items} events vs Debezium (heal / sink resumed → all applied)`,
        hothot: `${Math.round(c.hothot.eventsPerS)} ev/s`,
        peer: `Debezium ${Math.round(c.debezium.eventsPerS)} ev/s`,
        value: `${f(ratio)}×`,
        target: '≥ 2×',
        met: ratio >= 2,
      });
    }
  }
  if (r.floor) {
    const java = r.floor.java;
    rows.push({
      id: '5',
      metric: 'transport floor: produce→consume, p50 / p99',
      hothot: `kafkajs ${r.floor.points.map((p) => `${p.rate}/s: ${f(p.p50)} / ${f(p.p99)} ms`).join('; ')}`,
      peer: java
        ? `Java EndToEndLatency, one at a time: ${java.p50} / ${java.p99} ms (whole ms)`
        : r.floor.javaError !== undefined
          ? 'Java EndToEndLatency failed (see #5)'
          : '—',
      value: 'reported',
      target: '—',
      met: null,
    });
  }
  const rss: [string, number][] = [];
  if (r.throughput) rss.push(['#1 us', r.throughput.regionPeakRssMiB * MIB_TO_MB]);
  if (r.catchUp)
    rss.push(['#4 us', r.catchUp.peakRssMiB.us * MIB_TO_MB], ['#4 eu', r.catchUp.peakRssMiB.eu * MIB_TO_MB]);
  if (rss.length > 0) {
    const worst = Math.max(...rss.map(([, v]) => v));
    rows.push({
      id: '6',
      metric: 'peak RSS of a region process',
      hothot: rss.map(([k, v]) => `${k} ${Math.round(v)} MB`).join(', '),
      peer: '—',
      value: `${Math.round(worst)} MB`,
      target: `≤ ${RSS_LIMIT_MB} MB`,
      met: worst <= RSS_LIMIT_MB,
    });
  }
  if (r.signing) {
    const small = r.signing.cpu[0];
    if (small)
      rows.push({
        id: '8',
        metric: `event signing, CPU per ${small.eventBytes}-byte event: sign / verify`,
        hothot: `${f(small.signUs)} / ${f(small.verifyUs)} µs (thread pool: ${f(small.signAsyncUs)} / ${f(small.verifyAsyncUs)} µs)`,
        peer: `decode ${f(small.decodeUs)} µs`,
        value: 'reported',
        target: '—',
        met: null,
      });
    for (const p of r.signing.lag)
      rows.push({
        id: '8',
        metric: `replication lag at ${p.rate} writes/s, signed vs unsigned, p50 / p99`,
        hothot: `${f(p.signed.p50)} / ${f(p.signed.p99)} ms`,
        peer: `unsigned ${f(p.unsigned.p50)} / ${f(p.unsigned.p99)} ms`,
        value: `${p.p50DeltaMs >= 0 ? '+' : ''}${f(p.p50DeltaMs)} / ${p.p99DeltaMs >= 0 ? '+' : ''}${f(p.p99DeltaMs)} ms`,
        target: '—',
        met: null,
      });
  }
  if (r.timeline) {
    rows.push({
      id: '7',
      metric: 'partition timeline (cut → heal → drain)',
      hothot: `drained ${f(r.timeline.drainAfterHealS, 1)} s after heal; ${r.timeline.failedWrites} failed writes`,
      peer: '—',
      value: 'chart',
      target: 'a chart',
      met: true,
    });
  }
  if (r.repair) {
    const x = r.repair;
    rows.push({
      id: '11',
      metric: `anti-entropy: ${x.damaged} rows of ${x.items} damaged by hand in eu (detected / repaired / keys republished)`,
      hothot: `${secs(x.detectS)} / ${secs(x.repairS)} / ${x.keysRepublished}`,
      peer: '—',
      value: `${f(x.republishedPerDamaged)}× the damaged keys republished`,
      target: `≤ ${REPAIR_DETECT_TARGET_S} s / ≤ ${REPAIR_TARGET_S} s / ≤ 2×`,
      met: x.met.detect && x.met.repair && x.met.republished,
    });
  }
  return rows;
}

/** Write `<id>.json`, `<id>.md`, the charts `<id>-*.svg`, and copy the report to latest.md. */
export function writeReport(
  results: BenchResults,
  dir: string,
): { json: string; markdown: string; charts: string[] } {
  mkdirSync(dir, { recursive: true });
  const charts = renderCharts(results);
  const chartFiles: string[] = [];
  for (const [name, svg] of Object.entries(charts)) {
    const file = join(dir, `${results.id}-${name}.svg`);
    writeFileSync(file, svg);
    chartFiles.push(file);
  }
  const json = join(dir, `${results.id}.json`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = join(dir, `${results.id}.md`);
  writeFileSync(markdown, renderMarkdown(results, Object.keys(charts)));
  copyFileSync(markdown, join(dir, 'latest.md'));
  return { json, markdown, charts: chartFiles };
}

function renderCharts(r: BenchResults): Record<string, string> {
  const charts: Record<string, string> = {};
  if (r.throughput) {
    const t = r.throughput;
    charts.throughput = barChart({
      title: '#1 Write throughput, one region: hothot PUT vs pgbench (same SQL)',
      subtitle: `closed loop, ${t.durationS} s per level; ratio = hothot / pgbench`,
      categories: t.levels.map((l) => String(l.concurrency)),
      categoryLabel: 'concurrency (HTTP connections / pgbench clients)',
      series: [
        { name: 'hothot req/s', color: COLORS.hothot, values: t.levels.map((l) => l.hothot.okPerS) },
        { name: 'pgbench tx/s', color: COLORS.peer, values: t.levels.map((l) => l.pgbench.tps) },
      ],
      groupNotes: t.levels.map((l) => `${(l.hothot.okPerS / l.pgbench.tps).toFixed(2)}×`),
      yLabel: 'writes per second',
    });
  }
  const byProcesses = r.throughput?.byProcesses ?? [];
  if (r.throughput && byProcesses.length > 0) {
    const best = r.throughput.pgbenchBest.tps;
    charts.processes = barChart({
      title: '#1 Write throughput by API processes per region',
      subtitle: `us alone, closed loop, best of 16 / 64 connections; pgbench's best (${Math.round(best)} tx/s) for scale`,
      categories: byProcesses.map((p) => String(p.processes)),
      categoryLabel: 'API processes in the region (API_PROCESSES, node:cluster workers)',
      series: [
        { name: 'hothot req/s', color: COLORS.hothot, values: byProcesses.map((p) => p.okPerS) },
        { name: "pgbench's best tx/s", color: COLORS.peer, values: byProcesses.map(() => best) },
      ],
      groupNotes: byProcesses.map((p) => `${f(p.ratio)}×`),
      yLabel: 'writes per second',
      width: 560,
    });
  }
  const staged = (r.lag?.points ?? []).filter((p) => (p.stages ?? []).length > 0);
  if (staged.length > 0) {
    const labels = STAGES.map((x) => x.label).filter((l) =>
      staged.some((p) => p.stages!.some((s) => s.label === l)),
    );
    const palette = [COLORS.hothot, COLORS.peer, COLORS.debezium, COLORS.floor];
    charts.stages = barChart({
      title: '#3 Where the replication lag goes: mean time per stage',
      subtitle:
        "from the regions' hothot_replication_stage_seconds over each measured run; sent → acked and acked → outbox committed run beside the path",
      // Two lines a stage (its start, then where it ends): one line would overrun its neighbours.
      categories: labels.map((l) => l.split(' → ')[0]!),
      groupNotes: labels.map((l) => `→ ${l.split(' → ')[1] ?? ''}`),
      categoryLabel: 'stage (relay in us, then applier in eu)',
      series: staged.map((p, i) => ({
        name: `${p.rate} writes/s`,
        color: palette[i % palette.length]!,
        values: labels.map((l) => p.stages!.find((s) => s.label === l)?.meanMs ?? Number.NaN),
      })),
      yLabel: 'mean ms per change',
      width: 900,
    });
  }
  if (r.latency && r.latency.points.length > 0) {
    const pts = r.latency.points;
    charts.latency = barChart({
      title: '#2 Write latency at a fixed rate (open loop, from scheduled start)',
      subtitle: `hothot PUT vs pgbench -R, ${r.latency.durationS} s per point`,
      categories: pts.flatMap((p) => [`p50 @${p.rate}/s`, `p99 @${p.rate}/s`]),
      categoryLabel: `percentile @ rate (${pts.map((p) => `50 % of ${p.basis}`).join(', then ')})`,
      series: [
        { name: 'hothot', color: COLORS.hothot, values: pts.flatMap((p) => [p.hothot.p50, p.hothot.p99]) },
        { name: 'pgbench', color: COLORS.peer, values: pts.flatMap((p) => [p.pgbench.p50, p.pgbench.p99]) },
      ],
      yLabel: 'latency, ms (log scale)',
      logScale: true,
    });
  }
  for (const p of r.lag?.points ?? []) {
    const floor = r.floor?.points.find((x) => x.rate === p.rate);
    charts[`lag-${p.rate}`] = percentileChart({
      title: `#3 Replication lag at ${p.rate} writes/s: hothot vs native logical replication${p.debezium ? ' and Debezium' : ''}`,
      subtitle: `row landed in target − commit in origin; achieved ${p.hothot.achievedPerS}/s (hothot), ${p.logical.achievedPerS}/s (logical)${p.debezium ? `, ${p.debezium.achievedPerS}/s (Debezium)` : ''}`,
      yLabel: 'lag, ms (log scale)',
      series: [
        { name: 'hothot us→eu', color: COLORS.hothot, curve: p.hothot.curve },
        { name: 'logical replication', color: COLORS.peer, curve: p.logical.curve },
        ...(p.debezium ? [{ name: 'Debezium', color: COLORS.debezium, curve: p.debezium.curve }] : []),
        ...(floor
          ? [{ name: 'kafkajs floor (#5)', color: COLORS.floor, dashed: true, curve: floor.curve }]
          : []),
      ],
    });
  }
  if (r.catchUp) {
    const c = r.catchUp;
    charts.catchup = barChart({
      title: `#4 Catch-up after a partition: ${c.items} events`,
      subtitle: c.debezium
        ? 'events applied per second; heal→done includes reconnecting (Debezium: from the sink connector resumed)'
        : 'events applied per second; heal→done includes reconnecting',
      categories: ['heal → all applied', 'first → last apply'],
      categoryLabel: '',
      series: [
        { name: 'hothot', color: COLORS.hothot, values: [c.hothot.eventsPerS, c.hothot.applyOnlyEventsPerS] },
        {
          name: 'logical replication',
          color: COLORS.peer,
          values: [c.logical.eventsPerS, c.logical.applyOnlyEventsPerS],
        },
        ...(c.debezium
          ? [
              {
                name: 'Debezium',
                color: COLORS.debezium,
                values: [c.debezium.eventsPerS, c.debezium.applyOnlyEventsPerS],
              },
            ]
          : []),
      ],
      groupNotes: c.debezium
        ? [
            `${c.ratio}× logical, ${c.ratioDebezium ?? '–'}× Debezium`,
            `${c.applyOnlyRatio}× logical, ${c.applyOnlyRatioDebezium ?? '–'}× Debezium`,
          ]
        : [`${c.ratio}×`, `${c.applyOnlyRatio}×`],
      yLabel: 'events per second',
      width: 640,
    });
  }
  if (r.timeline) {
    const tl = r.timeline;
    const t = tl.seconds.map((s) => s.t);
    charts.timeline = timelineChart({
      title: `#7 Partition timeline: eu cut from Kafka, healed, drained (${tl.ratePerRegion} writes/s into each region)`,
      subtitle:
        'lag = age of the oldest write not yet committed in the other region (from commit timestamps); dashed = heartbeat age the region reports',
      t,
      span: { from: tl.cutAtS, to: tl.healAtS, label: 'partition' },
      markers: [
        { at: tl.cutAtS, label: 'cut eu', color: '#b91c1c' },
        { at: tl.healAtS, label: 'heal', color: '#15803d' },
      ],
      panels: [
        {
          title: 'acknowledged writes per second',
          yLabel: 'writes/s',
          series: [
            { name: 'us', color: COLORS.us, values: tl.seconds.map((s) => s.writesUs) },
            { name: 'eu', color: COLORS.eu, values: tl.seconds.map((s) => s.writesEu) },
          ],
        },
        {
          title: 'outbox backlog (rows not yet acknowledged by Kafka)',
          yLabel: 'rows',
          series: [
            { name: 'us', color: COLORS.us, values: tl.seconds.map((s) => s.outboxUs) },
            { name: 'eu', color: COLORS.eu, values: tl.seconds.map((s) => s.outboxEu) },
          ],
        },
        {
          title: 'replication lag',
          yLabel: 'seconds',
          series: [
            { name: 'us→eu', color: COLORS.us, values: tl.seconds.map((s) => s.lagUsToEuMs / 1000) },
            { name: 'eu→us', color: COLORS.eu, values: tl.seconds.map((s) => s.lagEuToUsMs / 1000) },
            {
              name: 'eu reports',
              color: COLORS.us,
              dashed: true,
              values: tl.seconds.map((s) =>
                s.statusLagUsToEuMs === null ? null : s.statusLagUsToEuMs / 1000,
              ),
            },
          ],
        },
      ],
    });
  }
  if (r.repair && r.repair.timeline.length > 0) {
    const x = r.repair;
    const markers = [
      { at: 0, label: 'damage', color: '#b91c1c' },
      ...(Number.isFinite(x.detectS) ? [{ at: x.detectS, label: 'detected', color: '#b45309' }] : []),
      ...(Number.isFinite(x.repairS) ? [{ at: x.repairS, label: 'repaired', color: '#15803d' }] : []),
    ];
    charts.repair = timelineChart({
      title: `#11 Anti-entropy: ${x.damaged} rows damaged by hand in eu's PostgreSQL, found and repaired`,
      subtitle: `${x.changed} values changed (version kept), ${x.deleted} rows deleted, of ${x.items}; sampled every 0.5 s from /v1/status and both databases`,
      t: x.timeline.map((s) => s.t),
      xLabel: 'time since the damage, s',
      markers,
      panels: [
        {
          title: 'damaged rows in eu not yet as in us',
          yLabel: 'rows',
          series: [{ name: 'eu', color: COLORS.eu, values: x.timeline.map((s) => s.damagedLeft) }],
        },
        {
          title: 'counted by us and eu since the damage',
          yLabel: 'count',
          series: [
            {
              name: 'buckets divergent',
              color: COLORS.peer,
              values: x.timeline.map((s) => s.bucketsDivergent),
            },
            {
              name: 'keys republished',
              color: COLORS.hothot,
              values: x.timeline.map((s) => s.keysRepublished),
            },
          ],
        },
      ],
    });
  }
  return charts;
}

/** A Markdown table. */
/** The machine's CPU busy / stolen share while a measurement ran, or – when not recorded. */
function hostCell(host: HostCpuShare | undefined): string {
  return host === undefined ? '–' : `${host.busyPct} / ${host.stealPct} %`;
}

export function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(String).join(' | ')} |`),
  ].join('\n');
}

function renderMarkdown(r: BenchResults, charts: readonly string[]): string {
  const img = (name: string, alt: string) =>
    charts.includes(name) ? `\n![${alt}](${r.id}-${name}.svg)\n` : '';
  const m = r.machine;
  const out: string[] = [];
  out.push(
    `# hothot benchmark — ${r.startedAt}`,
    '',
    `Mode **${r.mode}**, scenarios ${r.scenarios.join(', ')}; ${Math.round(r.durationS)} s in all. ` +
      `Commit \`${m.gitCommit}\`${m.gitDirty ? ' (services/ or shared/ had uncommitted changes)' : ''}. ` +
      `Produced by \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}\`; raw figures in [${r.id}.json](${r.id}.json).`,
    '',
    '**Every figure is compared with a peer measured in the same run, on the same machine, minutes apart.** ' +
      'The machine has 2 cores and is shared with other work (test runs of other sessions), so absolute numbers drift ' +
      'from run to run; the ratios are what the targets are about. Load generators, both regions, Kafka and all ' +
      'PostgreSQL clusters share these 2 cores.',
    '',
    '## Results against the targets',
    '',
    table(
      ['#', 'metric', 'hothot', 'peer (same run)', 'ratio / delta', 'target', 'met'],
      r.targets.map((t) => [
        t.id,
        t.metric,
        t.hothot,
        t.peer,
        t.value,
        t.target,
        t.met === null ? '—' : t.met ? '✅ yes' : '❌ no',
      ]),
    ),
    '',
  );
  if (r.errors.length > 0) {
    out.push(
      '**Scenarios that failed:**',
      '',
      ...r.errors.map((e) => `- ${e.scenario}: ${e.message.split('\n')[0]}`),
      '',
    );
  }
  out.push(
    '## Machine',
    '',
    table(
      ['what', 'value'],
      [
        ['CPU', `${m.cpuModel} — ${m.cores} cores`],
        ['memory', `${m.memoryGiB} GiB`],
        ['OS', m.os],
        ['Node.js', m.node],
        ['PostgreSQL', m.postgres],
        ['pgbench', m.pgbench],
        ['Kafka', `${m.kafka} (${m.java})`],
        ['kafkajs / autocannon', `${m.kafkajs} / ${m.autocannon}`],
        ['load average at start', String(m.loadAverageAtStart)],
        [
          'load average before each scenario',
          Object.entries(r.loadAverage)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        ],
        ...(r.hostCpu === undefined
          ? []
          : [
              [
                'machine CPU busy / stolen during each scenario',
                Object.entries(r.hostCpu)
                  .map(([k, v]) => `${k} ${v.busyPct} / ${v.stealPct} %`)
                  .join(', '),
              ],
            ]),
        [
          'region env knobs',
          Object.keys(r.regionEnv).length
            ? Object.entries(r.regionEnv)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')
            : 'none (defaults)',
        ],
      ],
    ),
    '',
    '## Setup',
    '',
    '- A native lab of its own per run (`bench/lab/benchLab.ts`, built from `infra/lab`: `PostgresCluster`, `KafkaBroker`, ' +
      '`RegionProcess`): PostgreSQL 15 clusters `us`, `eu` (hothot) and `pub`, `sub` (the logical-replication peer), one ' +
      'Kafka broker, Toxiproxy, and one region process per region with default settings. The broker has two listeners per region: one advertised ' +
      "at the region's Toxiproxy broker link, as in the lab, and a direct one. #1–#3 and #5 run with direct links (no proxy hop, as deployed); " +
      "#4 and #7 restart the regions on their Toxiproxy links and cut `eu`'s (the lab's `partition`, reset mode), which cuts `eu` alone, in both directions.",
    '- Every cluster runs with `track_commit_timestamp = on`; `pub`/`sub` add `wal_level = logical`. Otherwise default settings (fsync and synchronous commit on).',
    `- The pgbench peer runs, statement for statement, the SQL of hothot's write path for a PUT (\`writeItem.ts\`: ${PGBENCH_WRITE_PATH_STATEMENTS.join('; ')}) ` +
      "with `-M prepared`, on hothot's own `us` server (database `peer`, same schema). The script:",
    '',
    '<details><summary>pgbench script</summary>',
    '',
    '```sql',
    PGBENCH_WRITE_SCRIPT.trim(),
    '```',
    '',
    '</details>',
    '',
  );
  if (r.throughput) {
    const t = r.throughput;
    out.push(
      '## #1 Write throughput, one region',
      '',
      `Closed loop: autocannon PUTs of random keys (1..100 000, collection \`w\`, ~90-byte JSON) into \`us\`, and pgbench with as many clients, ${t.durationS} s each per concurrency, run in ABBA order (hothot, pgbench, pgbench, hothot; half the time each) so that a drift in the machine's load hits both alike. ` +
        "`eu`'s region process is stopped during #1 and #2 (one region measured alone; `us`'s relay still publishes to Kafka) and catches up afterwards. " +
        'CPU per write: the region process, and the whole `us` PostgreSQL cluster (postmaster and all backends), divided by the writes.',
      img('throughput', 'write throughput'),
      table(
        [
          'concurrency',
          'hothot req/s',
          'errors',
          'p50 / p99 ms',
          'region CPU ms/write',
          'PG CPU ms/write',
          'pgbench tx/s',
          'pgbench PG CPU ms/tx',
          'ratio',
        ],
        t.levels.map((l) => [
          l.concurrency,
          Math.round(l.hothot.okPerS),
          `${(l.hothot.errorRate * 100).toFixed(2)} %`,
          `${l.hothot.p50Ms} / ${l.hothot.p99Ms}`,
          l.hothot.regionCpuMsPerWrite,
          l.hothot.postgresCpuMsPerWrite,
          Math.round(l.pgbench.tps),
          l.pgbench.postgresCpuMsPerWrite,
          `${f(l.hothot.okPerS / l.pgbench.tps)}×`,
        ]),
      ),
      '',
      `pgbench command: \`${t.pgbenchCommand}\``,
      '',
      ...processesSection(t, img),
    );
  }
  if (r.latency) {
    out.push(
      '## #2 Write latency at a fixed rate',
      '',
      `Open loop for ${r.latency.durationS} s per system and point, in ABBA order as in #1: Poisson arrivals at the rate, ${r.latency.connections} connections / pgbench clients, latency measured from each request's *scheduled* start ` +
        "(pgbench -R does the same), so an overloaded system shows its queueing. The first point is the issue's (50 % of pgbench's best); the second is 50 % of hothot's own best. " +
        'Requests still unanswered 15 s after the last scheduled start count as failed; before pgbench runs, the region works off whatever it still had queued. ' +
        "Not autocannon's `overallRate`: it fires per-connection per-second quotas in bursts and times from the actual send.",
      img('latency', 'write latency'),
      table(
        [
          'rate',
          'basis',
          'hothot p50 / p90 / p99 / max ms',
          'achieved',
          'pgbench p50 / p90 / p99 / max ms',
          'achieved',
          'p99 delta',
        ],
        r.latency.points.map((p) => [
          `${p.rate}/s`,
          `50 % of ${p.basis}`,
          `${p.hothot.p50} / ${p.hothot.p90} / ${p.hothot.p99} / ${p.hothot.max}`,
          `${p.hothot.achievedPerS}/s${p.hothot.failed + p.hothot.dropped > 0 ? ` (${p.hothot.failed} failed, ${p.hothot.dropped} dropped)` : ''}`,
          `${p.pgbench.p50} / ${p.pgbench.p90} / ${p.pgbench.p99} / ${p.pgbench.max}`,
          `${p.pgbench.achievedPerS}/s`,
          `${p.p99DeltaMs >= 0 ? '+' : ''}${p.p99DeltaMs} ms`,
        ]),
      ),
      '',
    );
  }
  if (r.lag) {
    out.push(
      '## #3 Replication lag',
      '',
      `Open-loop writes of new keys into the origin for ${r.lag.durationS} s per rate (hothot: PUTs into \`us\`; peer: pgbench -R running the same SQL into \`pub\`). ` +
        'Lag of each row = when it landed in the target − its commit timestamp in the origin (`pg_xact_commit_timestamp(xmin)` in `us` / `pub`), ' +
        'read from PostgreSQL after the run: one clock, no polling, every row counted. In `eu` "landed" is the commit timestamp of the applier\'s transaction. ' +
        "In `sub` the apply worker commits with the *origin's* commit timestamp (replication origins keep it), so a BEFORE trigger (ENABLE ALWAYS) stamps " +
        '`clock_timestamp()` as the apply worker writes the row, just before its commit — if anything this favours the peer. ' +
        'For hothot the path is outbox → relay → Kafka → applier → commit; for the peer WAL → walsender → apply worker ' +
        "(the subscription's default `synchronous_commit = off`; hothot's applier commits with fsync).",
      '',
      table(
        [
          'rate',
          'system',
          'achieved',
          'rows',
          'p50',
          'p90',
          'p99',
          'p99.9',
          'max (ms)',
          'ratio p50 / p99',
          'machine busy / stolen',
        ],
        r.lag.points.flatMap((p) => [
          [
            `${p.rate}/s`,
            'hothot',
            `${p.hothot.achievedPerS}/s`,
            `${p.hothot.delivered}/${p.hothot.written}`,
            p.hothot.p50,
            p.hothot.p90,
            p.hothot.p99,
            p.hothot.p999,
            p.hothot.max,
            `${p.p50Ratio}× / ${p.p99Ratio}×`,
            hostCell(p.hothot.host),
          ],
          [
            '',
            'logical',
            `${p.logical.achievedPerS}/s`,
            `${p.logical.delivered}/${p.logical.written}`,
            p.logical.p50,
            p.logical.p90,
            p.logical.p99,
            p.logical.p999,
            p.logical.max,
            '',
            hostCell(p.logical.host),
          ],
          ...(p.debezium
            ? [
                [
                  '',
                  'Debezium',
                  `${p.debezium.achievedPerS}/s`,
                  `${p.debezium.delivered}/${p.debezium.written}`,
                  p.debezium.p50,
                  p.debezium.p90,
                  p.debezium.p99,
                  p.debezium.p999,
                  p.debezium.max,
                  `hothot ÷ Debezium ${p.p50RatioDebezium ?? '–'}× / ${p.p99RatioDebezium ?? '–'}×` +
                    (p.debezium.cpuMsPerRow !== undefined
                      ? `; worker CPU ${p.debezium.cpuMsPerRow} ms/row`
                      : ''),
                  hostCell(p.debezium.host),
                ],
              ]
            : []),
        ]),
      ),
      '',
      ...(r.lag.points.some((p) => p.debezium !== undefined) ? [debeziumMethod(r), ''] : []),
      ...r.lag.points.map((p) => img(`lag-${p.rate}`, `replication lag at ${p.rate}/s`)),
      ...stagesSection(r.lag, img),
    );
  }
  if (r.floor) {
    const java = r.floor.java;
    out.push(
      '## #5 Transport floor',
      '',
      `**kafkajs**: bare kafkajs through the project's wrappers (\`shared/kafka\`: idempotent producer, acks=all, one publish in flight carrying whatever accumulated, like the relay; batch consumer committing after each batch), produced on \`us\`'s listener and consumed on \`eu\`'s (direct, as in #3), ` +
        `open loop for ${r.floor.durationS} s per rate after a 1 s warm-up; latency from the scheduled send to the consumer handler. It is the part of #3 that Kafka and kafkajs alone cost (dashed line in the lag charts).`,
      '',
      "**Java**: Kafka's own `org.apache.kafka.tools.EndToEndLatency` (kafka-tools of the broker's version), on a one-partition topic of its own through `us`'s listener, as admin over TLS + SCRAM as the kafkajs clients. " +
        'It sends one message (acks=all, linger.ms 0), waits for the ack, then polls until the message arrives (a consumer assigned the partition, no group, fetch.max.wait.ms 0), then sends the next: ' +
        "no rate, no queueing, no batching — one message's round trip through the broker, as Kafka's Java client makes it; how far the kafkajs rows are above it is kafkajs's and the open loop's share. " +
        "No warm-up: the first message pays for the producer's connection. Its percentiles are of latencies truncated to whole milliseconds (a 2 is 2–3 ms); its mean is exact." +
        (java
          ? ` Here: ${java.tool}, ${java.messages} messages of ${java.messageBytes} B (the size of the kafkajs messages).`
          : ''),
      '',
      table(
        [
          'client',
          'rate',
          'received',
          'p50',
          'p90',
          'p99',
          'p99.9',
          'max',
          'mean (ms)',
          'machine busy / stolen',
        ],
        [
          ...r.floor.points.map((p) => [
            'kafkajs',
            `${p.rate}/s`,
            `${p.received}/${p.sent}`,
            p.p50,
            p.p90,
            p.p99,
            p.p999,
            p.max,
            p.mean,
            hostCell(p.host),
          ]),
          ...(java
            ? [
                [
                  'Java EndToEndLatency',
                  'one at a time',
                  `${java.messages}/${java.messages}`,
                  java.p50,
                  '–',
                  java.p99,
                  java.p999,
                  '–',
                  java.avg,
                  '–',
                ],
              ]
            : []),
        ],
      ),
      '',
      ...(r.floor.javaError !== undefined
        ? [`Kafka's EndToEndLatency gave no figures: ${r.floor.javaError.split('\n')[0]}`, '']
        : []),
    );
  }
  if (r.catchUp) {
    const c = r.catchUp;
    out.push(
      '## #4 Catch-up after a partition',
      '',
      `hothot: \`eu\`'s broker link cut, ${c.items} new items PUT into \`us\` (32 connections; the scenario aims for ${c.requested} and stops writing at its time bound), \`us\`'s relay publishes them to Kafka, heal; ` +
        `peer: subscription disabled, the same ${c.items} rows written into \`pub\` as ${c.items} transactions of the same SQL (pgbench, 8 clients), enabled. ` +
        'Both measured from when the rows landed in the target (as in #3: commit timestamps in `eu`, apply-time stamps in `sub`).',
      img('catchup', 'catch-up'),
      table(
        [
          'system',
          'events',
          'backlog written in',
          'heal → first apply',
          'heal → all applied',
          'events/s (heal → done)',
          'events/s (apply only)',
        ],
        [
          [
            'hothot',
            c.hothot.items,
            `${c.hothot.writeS} s`,
            `${c.hothot.healToFirstS} s`,
            `${c.hothot.healToDoneS} s`,
            Math.round(c.hothot.eventsPerS),
            Math.round(c.hothot.applyOnlyEventsPerS),
          ],
          [
            'logical',
            c.logical.items,
            `${c.logical.writeS} s`,
            `${c.logical.healToFirstS} s`,
            `${c.logical.healToDoneS} s`,
            Math.round(c.logical.eventsPerS),
            Math.round(c.logical.applyOnlyEventsPerS),
          ],
          ...(c.debezium
            ? [
                [
                  'Debezium',
                  c.debezium.items,
                  `${c.debezium.writeS} s`,
                  `${c.debezium.healToFirstS} s`,
                  `${c.debezium.healToDoneS} s`,
                  Math.round(c.debezium.eventsPerS),
                  Math.round(c.debezium.applyOnlyEventsPerS),
                ],
              ]
            : []),
        ],
      ),
      '',
      `Ratio ${c.ratio}× (heal → done), ${c.applyOnlyRatio}× (apply only)` +
        (c.debezium
          ? `; against Debezium ${c.ratioDebezium ?? '–'}× (heal / sink resumed → done), ${c.applyOnlyRatioDebezium ?? '–'}× (apply only). ` +
            'Debezium: sink connector stopped (Kafka Connect `PUT /connectors/dbz-sink/stop`), the same rows written into its source (pgbench, 8 clients), ' +
            "the source connector left running until it had published them all to Kafka (as hothot waits for `us`'s relay), then `…/resume`: " +
            "heal → first apply includes the sink task's start (consumer group join, Hibernate session factory)."
          : '.'),
      '',
    );
  }
  if (r.throughput || r.catchUp) {
    out.push(
      '## #6 Memory',
      '',
      'Peak RSS of the region processes: `VmHWM` from `/proc/<pid>/status`, reset (`clear_refs`) at the start of the scenario, cross-checked by sampling `VmRSS` every 250 ms.',
      '',
      table(
        ['scenario', 'process', 'peak RSS'],
        [
          ...(r.throughput
            ? [['#1 write throughput', 'us', `${Math.round(r.throughput.regionPeakRssMiB * MIB_TO_MB)} MB`]]
            : []),
          ...(r.catchUp
            ? [
                ['#4 catch-up', 'us (writing)', `${Math.round(r.catchUp.peakRssMiB.us * MIB_TO_MB)} MB`],
                ['#4 catch-up', 'eu (applying)', `${Math.round(r.catchUp.peakRssMiB.eu * MIB_TO_MB)} MB`],
              ]
            : []),
        ],
      ),
      '',
    );
  }
  if (r.timeline) {
    const tl = r.timeline;
    out.push(
      '## #7 Partition timeline',
      '',
      `${tl.ratePerRegion} writes/s into each region (open loop), \`eu\`'s broker link cut at ${tl.cutAtS} s and healed at ${tl.healAtS} s, writes until ${tl.writesEndS} s, then until drained. ` +
        `Drained ${f(tl.drainAfterHealS, 1)} s after the heal; ${tl.failedWrites} writes failed in either region.`,
      img('timeline', 'partition timeline'),
    );
  }
  if (r.signing) {
    const sg = r.signing;
    out.push(
      '## #8 Authenticated replication: what signing and verifying cost',
      '',
      'CPU per event in the bench process (the lab idle meanwhile): the relay signs every message it publishes (`EventSigner.headers`: next publish-sequence number, Ed25519 over domain + origin + key id + sequence + value, base64), ' +
        "the applier checks every message it consumes (`checkSignedMessage`: headers parsed, signature verified) before decoding it — on the event loop, and as the relay and applier run them: on libuv's thread pool, 1,000 at once (CPU of every thread, and wall time per event); " +
        '`decodeEvent` (zod) on the same events for scale. `process.cpuUsage()` over each loop, median of 5 rounds after a warm-up.',
      '',
      table(
        [
          'value',
          'event',
          'events × rounds',
          'sign (µs CPU)',
          'verify (µs CPU)',
          'thread pool: sign / verify (µs CPU)',
          'thread pool: sign / verify (µs wall)',
          'decode (µs CPU)',
        ],
        sg.cpu.map((c) => [
          `${c.valueBytes} B`,
          `${c.eventBytes} B`,
          `${c.events} × 5`,
          c.signUs,
          c.verifyUs,
          `${c.signAsyncUs} / ${c.verifyAsyncUs}`,
          `${c.signAsyncWallUs} / ${c.verifyAsyncWallUs}`,
          c.decodeUs,
        ]),
      ),
      '',
      `Replication lag us → eu (commit in us → commit in eu, per row), open loop for ${sg.lagDurationS} s per rate, both region processes restarted with event keys (signed) and without (SECURITY_MODE=insecure-dev, unsigned), same lab, in the order ${(sg.lagOrder ?? ['unsigned', 'signed']).join(', ')} (the rows of each mode pooled):`,
      '',
      table(
        ['rate', 'unsigned p50 / p99 (ms)', 'signed p50 / p99 (ms)', 'delta p50 / p99 (ms)', 'rows (signed)'],
        sg.lag.map((p) => [
          `${p.rate}/s`,
          `${f(p.unsigned.p50)} / ${f(p.unsigned.p99)}`,
          `${f(p.signed.p50)} / ${f(p.signed.p99)}`,
          `${f(p.p50DeltaMs)} / ${f(p.p99DeltaMs)}`,
          `${p.signed.delivered}/${p.signed.written}`,
        ]),
      ),
      '',
    );
  }
  if (r.repair) {
    const x = r.repair;
    out.push(
      '## #11 Digest anti-entropy: rows damaged by hand',
      '',
      `${x.items} items written into \`us\` and replicated, both regions digest-equal; then ${x.damaged} random rows (seed ${x.seed}) damaged directly in \`eu\`'s PostgreSQL, bypassing the API: ` +
        `${x.changed} values replaced with their version kept, ${x.deleted} rows deleted. Detected: the first bucket either region counts divergent (\`/v1/status\` \`antiEntropy.bucketsDivergent\`). ` +
        "Repaired: both regions' digests (`/v1/digest`) equal again and every damaged row as in `us`. Keys republished: `antiEntropy.keysRepublished` of both regions over that time. How it works: [docs/anti-entropy.md](../../docs/anti-entropy.md).",
      img('repair', 'anti-entropy repair'),
      table(
        ['detected', 'repaired', 'keys republished', 'per damaged key', 'target'],
        [
          [
            secs(x.detectS),
            secs(x.repairS),
            x.keysRepublished,
            `${f(x.republishedPerDamaged)}×`,
            `≤ ${REPAIR_DETECT_TARGET_S} s, ≤ ${REPAIR_TARGET_S} s, ≤ 2×`,
          ],
        ],
      ),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}

/** How the Debezium peer runs and what differs from a production deployment (shown under #3). */
/** #1's scan of API processes per region: chart and table. */
function processesSection(t: ThroughputResult, img: (name: string, alt: string) => string): string[] {
  const pts = t.byProcesses ?? [];
  if (pts.length === 0) return [];
  return [
    '### By API processes per region',
    '',
    "`us` restarted alone with `API_PROCESSES` = 1, 2, 4 (node:cluster workers sharing one port; one of them holds the relay's advisory lock), " +
      'a warm-up, then closed-loop PUTs at 16 and 64 connections; the best level with < 1 % errors. Region CPU counts the primary and its workers. ' +
      "The ratio is to pgbench's best above. Load generator, region and PostgreSQL share the machine's cores.",
    img('processes', 'write throughput by API processes'),
    table(
      [
        'API processes',
        'req/s',
        'at connections',
        'errors',
        'p99 ms',
        'region CPU ms/write',
        "÷ pgbench's best",
      ],
      pts.map((p) => [
        p.processes,
        Math.round(p.okPerS),
        p.concurrency,
        `${(p.errorRate * 100).toFixed(2)} %`,
        p.p99Ms,
        p.regionCpuMsPerWrite,
        `${f(p.ratio)}×`,
      ]),
    ),
    '',
  ];
}

/** #3's per-stage breakdown: chart and a table per rate. */
function stagesSection(lag: LagResult, img: (name: string, alt: string) => string): string[] {
  const staged = lag.points.filter((p) => (p.stages ?? []).length > 0);
  if (staged.length === 0) return [];
  return [
    '### Where the lag goes, stage by stage',
    '',
    "Each region counts every replicated change in `hothot_replication_stage_seconds{stage}` (see docs/operations.md): the relay in `us` (written = the write's HLC stamp; claimed = its claim query returned; sent = its chunk handed to the producer; acked = Kafka acknowledged it; then the relay's transaction deletes the rows and commits) " +
      "and the applier in `eu` (sent = the Kafka record's timestamp; fetched = the batch reached the applier; applied = read and resolved, its writes and the COMMIT sent; committed). " +
      "Scraped from `/metrics` before and after each measured run (after the warm-up); percentiles interpolated within the histogram's buckets, means exact. " +
      '`sent → acked` and `acked → outbox committed` run beside the path: the consumer can fetch before the producer has its acknowledgement, but the relay claims nothing new until its transaction commits. ' +
      "The stages on the path add up to about the row's lag above (written comes a little before the commit, and the bench's lag ends at the commit in `eu`).",
    img('stages', 'per-stage lag'),
    table(
      ['stage', 'on the path', ...staged.map((p) => `${p.rate}/s mean / p50 / p99 ms`)],
      STAGES.map((st) => [
        st.label,
        st.beside ? 'beside' : 'yes',
        ...staged.map((p) => {
          const s = p.stages!.find((x) => x.stage === st.stage);
          return s ? `${s.meanMs} / ${s.p50Ms} / ${s.p99Ms}` : '–';
        }),
      ]),
    ),
    '',
  ];
}

function debeziumMethod(r: Omit<BenchResults, 'targets'>): string {
  const v = r.debeziumPeer;
  const versions = v
    ? `Debezium ${v.debezium} (PostgreSQL source, JDBC sink with Hibernate ${v.hibernate}) in one Kafka Connect ${v.kafkaConnect} standalone worker`
    : 'Debezium in one Kafka Connect standalone worker';
  const tuning = v
    ? Object.entries(v.tuning)
        .map(([k, x]) => `\`${k}=${x}\``)
        .join(', ')
    : '';
  return (
    `Debezium peer (issue 13): ${versions}, on the lab's broker (INTERNAL listener: SASL_SSL + SCRAM, as the regions), ` +
    'source database `dbz` in the `pub` cluster (pgoutput, slot and publication on `item`), sink database `dbz` in the `sub` cluster (upsert by primary key); ' +
    "the same pgbench SQL at the same rate, after a 1 s warm-up (and 10 s at 200/s before the first rate: JIT, the sink's first statements); " +
    'lag = commit in the sink (`pg_xact_commit_timestamp(xmin)`) − commit in the source; worker CPU = user + system time of the Connect JVM per row, from the measured writes to the last row in the sink (idle polling included). ' +
    'JSON converter with schemas (no schema registry), topic with one partition, one task per connector' +
    (tuning !== '' ? `; changed from defaults: ${tuning}` : '') +
    '. Not a production deployment: no distributed Connect cluster, no Avro, no replication factor > 1.'
  );
}
