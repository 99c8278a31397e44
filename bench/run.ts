/**
 * `npm run bench` — hothot side by side with its peers, on a native lab the bench starts itself.
 *
 *   npm run bench                       full suite (≈ 10 min, bounded at 15)
 *   npm run bench -- --quick            smoke run (≈ 3 min)
 *   npm run bench -- --only lag,floor   some scenarios: throughput, latency, floor, lag, catchup, timeline, signing, repair
 *   npm run bench -- --only debezium    #3 and #4 with the Debezium peer too (issue 13; jars fetched with Maven on first use)
 *   npm run bench -- --only profile     CPU profiles (V8 profiler) + per-statement timings of write and apply paths
 *   npm run bench -- --only availability  served fraction, failover, writes lost under seeded kills (N = 2, 3; own labs)
 *   npm run bench -- --env DB_POOL_SIZE=20   a tuning knob for both region processes (repeatable)
 *   npm run bench -- --keep             keep the lab directory (logs, data) afterwards
 *   npm run bench -- --render FILE.json re-render the report and charts of an earlier run (no lab)
 *
 * Writes bench/results/<timestamp>.json, <timestamp>.md (+ latest.md) and <timestamp>-*.svg.
 * Everything it starts is stopped on exit, on failure and on Ctrl-C.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { findPostgresBinaries } from '../infra/lab/postgresCluster.js';
import { REPO_ROOT } from '../infra/lab/paths.js';
import { buildCompiledRegion, COMPILED_REGION_MAIN } from '../infra/lab/compiledRegion.js';
import { BenchLab } from './lab/benchLab.js';
import { DEBEZIUM_TUNING, DebeziumPeer } from './lab/debeziumPeer.js';
import { machineInfo } from './machine.js';
import { readHostCpu, sideHostCpu, type HostCpuShare } from './measure/hostCpu.js';
import { targetRows, writeReport, type BenchResults } from './report/benchReport.js';
import { waitForQuiet, type BenchContext } from './scenarios/benchContext.js';
import { catchUp } from './scenarios/catchUp.js';
import { partitionTimeline } from './scenarios/partitionTimeline.js';
import { availability } from './scenarios/availability.js';
import { addRegionBench } from './scenarios/addRegion.js';
import { profileRegions, PROFILE_PG_SETTINGS } from './scenarios/profileRegions.js';
import { replicationLag } from './scenarios/replicationLag.js';
import { repair } from './scenarios/repair.js';
import { signingCost } from './scenarios/signingCost.js';
import { transportFloor } from './scenarios/transportFloor.js';
import { writeLatency } from './scenarios/writeLatency.js';
import { writeThroughput } from './scenarios/writeThroughput.js';

const SCENARIOS = [
  'throughput',
  'latency',
  'floor',
  'lag',
  'catchup',
  'timeline',
  'signing',
  'repair',
  'debezium',
] as const;
/**
 * What a run without --only measures: `signing` (#8, ~3 min) only when asked for, and so is `debezium`
 * (the Debezium peer of #3 and #4, issue 13: +5–8 min, and ~90 jars from Maven on first use).
 */
const DEFAULT_SCENARIOS = SCENARIOS.filter((s) => s !== 'signing' && s !== 'debezium');
type Scenario = (typeof SCENARIOS)[number] | 'profile' | 'availability' | 'addregion';
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    keep: { type: 'boolean', default: false },
    out: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'usage: npm run bench -- [--quick] [--only throughput,latency,floor,lag,catchup,timeline,signing,repair,debezium|profile|availability|addregion] [--env KEY=VALUE]… [--keep] [--out DIR]\n' +
      '       npm run bench -- --render bench/results/<id>.json [--out DIR]\n',
  );
  process.exit(0);
}

if (values.render !== undefined) {
  const previous = JSON.parse(readFileSync(values.render, 'utf8')) as BenchResults;
  const files = writeReport(
    { ...previous, targets: targetRows(previous) },
    values.out ?? dirname(values.render),
  );
  process.stdout.write(`re-rendered ${files.markdown} and ${files.charts.length} charts\n`);
  process.exit(0);
}

const selected = new Set<Scenario>();
for (const s of (values.only ?? DEFAULT_SCENARIOS.join(','))
  .split(',')
  .map((x) => x.trim())
  .filter(Boolean)) {
  if (
    s !== 'profile' &&
    s !== 'availability' &&
    s !== 'addregion' &&
    !(SCENARIOS as readonly string[]).includes(s)
  ) {
    process.stderr.write(
      `bench: unknown scenario ${JSON.stringify(s)}: choose from ${[...SCENARIOS, 'profile', 'availability'].join(', ')}\n`,
    );
    process.exit(2);
  }
  selected.add(s as Scenario);
}
if (selected.has('availability') && selected.size > 1) {
  process.stderr.write('bench: --only availability runs alone (it starts labs of its own)\n');
  process.exit(2);
}
if (selected.has('addregion') && selected.size > 1) {
  process.stderr.write('bench: --only addregion runs alone (it starts a lab of its own)\n');
  process.exit(2);
}
if (selected.has('profile') && selected.size > 1) {
  process.stderr.write('bench: --only profile runs alone (profiling slows everything else down)\n');
  process.exit(2);
}
if (selected.has('latency')) selected.add('throughput'); // its rate is 50 % of #1's pgbench max
// The Debezium peer is measured inside #3 and #4, next to hothot and logical replication: alone, it means both.
if (selected.has('debezium') && !selected.has('lag') && !selected.has('catchup')) {
  selected.add('lag');
  selected.add('catchup');
}
const regionEnv: Record<string, string> = {};
for (const kv of values.env) {
  const i = kv.indexOf('=');
  if (i <= 0) {
    process.stderr.write(`bench: --env wants KEY=VALUE, got ${JSON.stringify(kv)}\n`);
    process.exit(2);
  }
  regionEnv[kv.slice(0, i)] = kv.slice(i + 1);
}

const quick = values.quick;
const started = Date.now();
const stamp = new Date(started)
  .toISOString()
  .replace(/[:]/g, '-')
  .replace(/\.\d+Z$/, 'Z');
const clock = () => {
  const s = Math.round((Date.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
let section = 'setup';
const log = (message: string) => process.stdout.write(`[${clock()}] ${section}: ${message}\n`);

let lab: BenchLab | undefined;
let debezium: DebeziumPeer | undefined;
let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`\n[${clock()}] ${signal}: stopping the bench lab…\n`);
  await debezium?.stop().catch(() => undefined);
  await lab?.stop(true).catch(() => undefined);
  process.exit(130);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

async function main(): Promise<number> {
  if (selected.has('addregion')) {
    section = 'addregion';
    return addRegionBench({ quick, out: values.out ?? RESULTS_DIR, log });
  }
  if (selected.has('availability')) {
    section = 'availability';
    return availability({ quick, out: values.out ?? RESULTS_DIR, log });
  }
  const pg = findPostgresBinaries();
  const profiling = selected.has('profile');
  log(`${quick ? 'quick' : 'full'} run of ${[...selected].join(', ')}; starting the lab`);
  const profileDir = join(os.tmpdir(), `hothot-bench-profile-${stamp}`);
  if (profiling) mkdirSync(profileDir, { recursive: true });
  // The region processes run the compiled build, as deployed (the profile runs the sources through
  // tsx: its entry wraps main.ts with the profiler).
  if (!profiling) {
    log('compiling the region process (npm run build → dist/)');
    await buildCompiledRegion();
  }
  lab = await BenchLab.up({
    regionEnv: profiling ? { ...regionEnv, BENCH_CPU_PROFILE_DIR: profileDir } : regionEnv,
    regionEntry: profiling ? 'bench/lab/profiledRegionMain.ts' : COMPILED_REGION_MAIN,
    ...(profiling ? { hothotPgSettings: PROFILE_PG_SETTINGS } : {}),
    keep: values.keep,
    log,
  });
  const workDir = join(lab.dir, 'work');
  mkdirSync(workDir, { recursive: true });
  const ctx: BenchContext = { lab, quick, workDir, pgBinDir: pg.binDir, log: (m) => log(m) };
  log(`lab up in ${Math.round((Date.now() - started) / 1000)} s (${lab.dir})`);

  if (profiling) {
    section = 'profile';
    const out = values.out ?? RESULTS_DIR;
    const file = await profileRegions(ctx, out, stamp, profileDir);
    log(`profile report: ${file} (profiles in ${profileDir})`);
    return 0;
  }

  const loadAverage: Record<string, number> = {};
  const hostCpu: Record<string, HostCpuShare> = {};
  const errors: { scenario: string; message: string }[] = [];
  const partial: { -readonly [K in keyof BenchResults]?: BenchResults[K] } = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    section = name;
    loadAverage[name] = Math.round(os.loadavg()[0]! * 100) / 100;
    const t0 = Date.now();
    const cpu0 = readHostCpu();
    try {
      const r = await fn();
      const share = sideHostCpu(cpu0);
      if (share !== undefined) hostCpu[name] = share;
      log(
        `done in ${Math.round((Date.now() - t0) / 1000)} s` +
          (share === undefined ? '' : ` (machine CPU busy ${share.busyPct} %, stolen ${share.stealPct} %)`),
      );
      return r;
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`FAILED: ${message}`);
      errors.push({ scenario: name, message });
      return undefined;
    }
  };

  if (selected.has('throughput')) {
    section = 'throughput';
    log("stopping eu's region process: #1 and #2 measure one region alone");
    await lab.region('eu').stop();
    try {
      partial.throughput = await step('throughput', () => writeThroughput(ctx));
      if (selected.has('latency') && partial.throughput) {
        const t = partial.throughput;
        partial.latency = await step('latency', () =>
          writeLatency(ctx, t.pgbenchBest.tps, t.hothotBest.okPerS),
        );
      }
    } finally {
      section = 'catch-up of #1/#2';
      log("restarting eu's region process");
      await lab.region('eu').restart();
    }
    const ms = await waitForQuiet(lab, 300_000);
    log(
      Number.isNaN(ms) ? 'eu did not catch up within 300 s' : `eu caught up in ${(ms / 1000).toFixed(1)} s`,
    );
  }
  if (selected.has('debezium')) {
    debezium = await step('debezium', () => DebeziumPeer.start(lab!, { log }));
    if (debezium === undefined) log('the Debezium peer did not start: #3 and #4 run without it');
  }
  const rates = quick ? [100, 500] : [100, 500, 2000];
  if (selected.has('floor')) partial.floor = await step('floor', () => transportFloor(ctx, rates));
  if (selected.has('lag')) partial.lag = await step('lag', () => replicationLag(ctx, rates, debezium));
  if (selected.has('catchup') || selected.has('timeline')) {
    section = 'links';
    await lab.useLinks('linked'); // #4 and #7 cut eu's broker link
  }
  if (selected.has('catchup')) partial.catchUp = await step('catchup', () => catchUp(ctx, debezium));
  if (selected.has('timeline')) partial.timeline = await step('timeline', () => partitionTimeline(ctx));
  if (selected.has('signing')) {
    section = 'links';
    await lab.useLinks('direct'); // as #3: the lag compared is the regions', not the proxies'
    partial.signing = await step('signing', () => signingCost(ctx, quick ? [200] : [100, 500]));
  }
  if (selected.has('repair')) {
    // Digest anti-entropy (issue 11).
    const r = await step('repair', () => repair(ctx));
    if (r !== undefined) {
      partial.repair = r;
      log(
        `repair: ${r.damaged} rows damaged of ${r.items}: detected in ${r.detectS} s (target ≤ 30), repaired in ` +
          `${r.repairS} s (≤ 60), ${r.keysRepublished} keys republished (${r.republishedPerDamaged}× damaged, ≤ 2×); ` +
          `seed ${r.seed}; ${r.met.detect && r.met.repair && r.met.republished ? 'met' : 'NOT met'}`,
      );
    }
  }

  section = 'report';
  const base: Omit<BenchResults, 'targets'> = {
    id: stamp,
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    durationS: Math.round((Date.now() - started) / 1000),
    mode: quick ? 'quick' : 'full',
    scenarios: [...selected],
    regionEnv,
    machine: machineInfo(pg.binDir, lab.kafkaVersion),
    loadAverage,
    hostCpu,
    ...(debezium
      ? {
          debeziumPeer: {
            debezium: debezium.versions.debezium,
            kafkaConnect: debezium.versions.kafkaConnect,
            hibernate: debezium.versions.hibernate,
            tuning: DEBEZIUM_TUNING,
          },
        }
      : {}),
    ...partial,
    errors,
  };
  const results: BenchResults = { ...base, targets: targetRows(base) };
  const files = writeReport(results, values.out ?? RESULTS_DIR);
  process.stdout.write(
    `\n${results.targets.map((t) => `  #${t.id} ${t.metric}: ${t.value} (target ${t.target}) ${t.met === null ? '' : t.met ? 'met' : 'NOT met'}`).join('\n')}\n\n`,
  );
  log(`wrote ${files.json}, ${files.markdown} and ${files.charts.length} charts`);
  return errors.length > 0 ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
} finally {
  section = 'teardown';
  if (!stopping) {
    log('stopping the lab');
    await debezium?.stop().catch((err: unknown) => log(`stopping Debezium failed: ${String(err)}`));
    await lab?.stop(code !== 0).catch((err: unknown) => log(`teardown failed: ${String(err)}`));
    log(`finished in ${clock()}`);
  }
}
process.exit(code);
