/**
 * Where the time goes: both region processes run under the V8 CPU profiler (the `--cpu-prof`
 * profile, started by bench/lab/profiledRegionMain.ts) and both hothot clusters
 * with pg_stat_statements. Closed-loop PUTs into `us` (write path in `us`, apply path in `eu`), then
 * a drain, then the regions stop (flushing their profiles). Reports per-statement database time per
 * write/batch, region CPU per write, and the CPU profile of each region by area and by function.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logLevel } from 'kafkajs';
import { createKafka } from '../../shared/kafka/client.js';
import { changeTopic } from '../../shared/kafka/topics.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { closedLoop } from '../load/closedLoop.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { openLoop } from '../load/openLoop.js';
import { commitTimes } from '../measure/commitTimes.js';
import { distribution, roundDistribution, type Distribution } from '../measure/stats.js';
import { cpuMs } from '../measure/processStats.js';
import { round } from '../measure/stats.js';
import { summarizeProfile, type ProfileSummary } from '../report/cpuProfile.js';
import { putItem, waitForQuiet, type BenchContext } from './benchContext.js';
import { sleep } from '../../infra/lab/waitFor.js';

export const PROFILE_PG_SETTINGS = {
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.track': 'all',
} as const;

interface StatementTime {
  readonly query: string;
  readonly calls: number;
  readonly totalMs: number;
  readonly meanMs: number;
  readonly rows: number;
}

/** Per-stage latency of the replication path at a light fixed rate, ms. */
export interface ReplicationStages {
  readonly rate: number;
  readonly rows: number;
  /** us commit → the relay hands the event to the producer (Kafka CreateTime). */
  readonly commitToPublish: Distribution;
  /** producer → consumable by a consumer of the topic (a bench tap next to eu's applier). */
  readonly publishToConsumable: Distribution;
  /** consumable → committed in eu (applier batch). */
  readonly consumableToApplied: Distribution;
  readonly total: Distribution;
}

export interface ProfileResult {
  readonly concurrency: number;
  readonly durationS: number;
  readonly writesPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuMsPerWrite: {
    readonly us: number;
    readonly eu: number;
    readonly usPostgres: number;
    readonly euPostgres: number;
  };
  readonly statements: { readonly us: readonly StatementTime[]; readonly eu: readonly StatementTime[] };
  readonly profiles: { readonly us?: ProfileSummary; readonly eu?: ProfileSummary };
  readonly stages?: ReplicationStages;
}

export async function profileRegions(
  ctx: BenchContext,
  outDir: string,
  stamp: string,
  profileDir: string,
): Promise<string> {
  const { lab, quick, log } = ctx;
  const concurrency = 16;
  const durationS = quick ? 8 : 20;
  for (const db of ['us', 'eu'] as const) {
    await lab.db(db).query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  }
  const us = lab.region('us');
  const eu = lab.region('eu');
  const random = seededRandom(3);
  const request = (i: number) => putItem('w', 1 + Math.floor(random() * 100_000), i);
  log('warm-up 3 s');
  await closedLoop({
    baseUrl: us.url,
    authorization: lab.authorization,
    connections: concurrency,
    durationS: 3,
    request,
  });
  await waitForQuiet(lab, 60_000);
  for (const db of ['us', 'eu'] as const) await lab.db(db).query('SELECT pg_stat_statements_reset()');
  const pids = { us: us.pid, eu: eu.pid, usPg: lab.cluster('us').pid ?? 0, euPg: lab.cluster('eu').pid ?? 0 };
  process.kill(pids.us, 'SIGUSR2'); // start the profilers (bench/lab/profiledRegionMain.ts)
  process.kill(pids.eu, 'SIGUSR2');
  const c0 = {
    us: cpuMs(pids.us),
    eu: cpuMs(pids.eu),
    usPg: cpuMs(pids.usPg, true),
    euPg: cpuMs(pids.euPg, true),
  };
  log(`closed-loop PUTs at concurrency ${concurrency} for ${durationS} s`);
  const load = await closedLoop({
    baseUrl: us.url,
    authorization: lab.authorization,
    connections: concurrency,
    durationS,
    request,
  });
  await waitForQuiet(lab, 120_000);
  const c1 = {
    us: cpuMs(pids.us),
    eu: cpuMs(pids.eu),
    usPg: cpuMs(pids.usPg, true),
    euPg: cpuMs(pids.euPg, true),
  };
  const statements = { us: await topStatements(ctx, 'us'), eu: await topStatements(ctx, 'eu') };
  const stages = await replicationStages(ctx, quick ? 5 : 10);
  log('stopping the regions to flush their CPU profiles');
  await us.stop();
  await eu.stop();
  const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  const fileOf = (pid: number) => files.find((f) => f === `region-${pid}.cpuprofile`);
  const usFile = fileOf(pids.us);
  const euFile = fileOf(pids.eu);
  const writes = Math.max(1, load.ok);
  const result: ProfileResult = {
    concurrency,
    durationS,
    writesPerS: round(load.okPerS),
    p50Ms: load.latencyMs.p50,
    p99Ms: load.latencyMs.p99,
    cpuMsPerWrite: {
      us: round((c1.us - c0.us) / writes),
      eu: round((c1.eu - c0.eu) / writes),
      usPostgres: round((c1.usPg - c0.usPg) / writes),
      euPostgres: round((c1.euPg - c0.euPg) / writes),
    },
    statements,
    stages,
    profiles: {
      ...(usFile ? { us: summarizeProfile(join(profileDir, usFile)) } : {}),
      ...(euFile ? { eu: summarizeProfile(join(profileDir, euFile)) } : {}),
    },
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `${stamp}-profile.json`), `${JSON.stringify(result, null, 2)}\n`);
  const md = join(outDir, `${stamp}-profile.md`);
  writeFileSync(md, renderProfile(result, profileDir));
  return md;
}

/**
 * Where a change spends its time between regions, at a light fixed rate (100 writes/s, new keys):
 * a bench consumer taps `us`'s change topic beside `eu`'s applier and records each event's Kafka
 * CreateTime (set when the relay hands it to the producer) and when it became consumable.
 */
async function replicationStages(ctx: BenchContext, durationS: number): Promise<ReplicationStages> {
  const { lab, log } = ctx;
  const rate = 100;
  const collection = 'stages';
  const logger = createRootLogger({ region: 'bench', level: 'silent' });
  const kafka = createKafka(
    { clientId: 'bench-tap', brokers: [lab.kafkaDirect('eu')], security: lab.kafkaClientSecurity() },
    logger,
  );
  const seen = new Map<string, { created: number; received: number }>();
  const consumer = kafka.consumer({ groupId: `bench.tap.${Date.now()}`, maxWaitTimeInMs: 250 });
  consumer.logger().setLogLevel(logLevel.NOTHING);
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
  await consumer.connect();
  await consumer.subscribe({ topic: changeTopic('hothot', 'us'), fromBeginning: false });
  await consumer.run({
    eachMessage: ({ message }) => {
      const received = Date.now();
      const key = message.key?.toString('utf8') ?? '';
      if (key.startsWith(`${collection}/`))
        seen.set(key.slice(collection.length + 1), { created: Number(message.timestamp), received });
      return Promise.resolve();
    },
  });
  try {
    const deadline = Date.now() + 30_000;
    while (!joined && Date.now() < deadline) await sleep(100);
    log(
      `replication stages: open-loop PUTs of new keys at ${rate}/s for ${durationS} s, tapping us's change topic`,
    );
    await openLoop({
      baseUrl: lab.region('us').url,
      authorization: lab.authorization,
      rate,
      durationMs: durationS * 1000,
      connections: 8,
      request: (i) => putItem(collection, i, i),
    });
    await waitForQuiet(lab, 60_000);
  } finally {
    await consumer.disconnect();
  }
  const [origin, target] = await Promise.all([
    commitTimes(lab.db('us'), collection),
    commitTimes(lab.db('eu'), collection),
  ]);
  const a: number[] = [];
  const b: number[] = [];
  const c: number[] = [];
  const t: number[] = [];
  for (const [key, committed] of origin) {
    const tap = seen.get(key);
    const applied = target.get(key);
    if (!tap || applied === undefined) continue;
    a.push(tap.created - committed);
    b.push(tap.received - tap.created);
    c.push(applied - tap.received);
    t.push(applied - committed);
  }
  const d = (v: number[]) => roundDistribution(distribution(v));
  return {
    rate,
    rows: t.length,
    commitToPublish: d(a),
    publishToConsumable: d(b),
    consumableToApplied: d(c),
    total: d(t),
  };
}

async function topStatements(ctx: BenchContext, db: 'us' | 'eu'): Promise<StatementTime[]> {
  const { rows } = await ctx.lab
    .db(db)
    .query<{ query: string; calls: string; total: number; mean: number; rows: string }>(
      `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time AS total, mean_exec_time AS mean, rows
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY total_exec_time DESC LIMIT 14`,
    );
  return rows.map((r) => ({
    query: r.query.length > 150 ? `${r.query.slice(0, 147)}…` : r.query,
    calls: Number(r.calls),
    totalMs: round(r.total),
    meanMs: round(r.mean),
    rows: Number(r.rows),
  }));
}

function renderProfile(r: ProfileResult, profileDir: string): string {
  const out: string[] = [
    '# Where the time goes — region processes under write load',
    '',
    `Closed-loop PUTs into \`us\` at concurrency ${r.concurrency} for ${r.durationS} s: ${r.writesPerS} writes/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms ` +
      '(with the CPU profiler on and pg_stat_statements loaded, so a little slower than #1). `eu` applies the same writes meanwhile.',
    '',
    '| CPU per write | ms |',
    '| --- | --- |',
    `| region us (API + relay) | ${r.cpuMsPerWrite.us} |`,
    `| PostgreSQL us (all backends) | ${r.cpuMsPerWrite.usPostgres} |`,
    `| region eu (applier) | ${r.cpuMsPerWrite.eu} |`,
    `| PostgreSQL eu (all backends) | ${r.cpuMsPerWrite.euPostgres} |`,
    '',
  ];
  if (r.stages) {
    const st = r.stages;
    const row = (name: string, x: Distribution) => `| ${name} | ${x.p50} | ${x.p90} | ${x.p99} | ${x.max} |`;
    out.push(
      `## Replication path by stage (${st.rate} writes/s of new keys, ${st.rows} rows)`,
      '',
      "A bench consumer taps `us`'s change topic beside `eu`'s applier. Kafka CreateTime is when the relay handed the event to the producer; " +
        'commit times come from PostgreSQL. Millisecond resolution (Kafka timestamps).',
      '',
      '| stage | p50 ms | p90 ms | p99 ms | max ms |',
      '| --- | --- | --- | --- | --- |',
      row('us commit → relay publishes (outbox claim, wake-up)', st.commitToPublish),
      row('relay publishes → consumable (producer ack path, broker, fetch)', st.publishToConsumable),
      row('consumable → committed in eu (applier batch)', st.consumableToApplied),
      row('total: us commit → eu commit', st.total),
      '',
    );
  }
  for (const db of ['us', 'eu'] as const) {
    out.push(
      `## Statements in ${db} (pg_stat_statements, by total execution time)`,
      '',
      '| calls | total ms | mean ms | rows | statement |',
      '| --- | --- | --- | --- | --- |',
      ...r.statements[db].map(
        (s) =>
          `| ${s.calls} | ${s.totalMs} | ${s.meanMs} | ${s.rows} | \`${s.query.replace(/\|/g, '\\|')}\` |`,
      ),
      '',
    );
  }
  for (const db of ['us', 'eu'] as const) {
    const p = r.profiles[db];
    if (!p) continue;
    out.push(
      `## CPU profile of region ${db}`,
      '',
      `Sampled ${p.wallMs} ms: busy ${p.busyMs} ms, idle ${p.idleMs} ms. Profile: \`${p.file.replace(profileDir, '<profiles>')}\`. ` +
        "The V8 profiler samples the main thread's wall time: time in socket writes includes waiting to run again " +
        'after waking the process at the other end, off the CPU on a busy 2-core machine (the CPU per write above, ' +
        'from /proc, is what the process used). For on-CPU shares use perf (bench/README.md, "On-CPU profiles").',
      '',
      '### Self time by area (share of busy time)',
      '',
      '| area | ms | % |',
      '| --- | --- | --- |',
      ...p.byArea.map((a) => `| ${a.name} | ${a.ms} | ${a.pct} |`),
      '',
      '### Top functions by self time',
      '',
      '| function | ms | % |',
      '| --- | --- | --- |',
      ...p.topSelf.map((a) => `| \`${a.name}\` | ${a.ms} | ${a.pct} |`),
      '',
      '### Top functions by inclusive time',
      '',
      '| function | ms | % |',
      '| --- | --- | --- |',
      ...p.topInclusive.map((a) => `| \`${a.name}\` | ${a.ms} | ${a.pct} |`),
      '',
    );
  }
  return `${out.join('\n')}\n`;
}
