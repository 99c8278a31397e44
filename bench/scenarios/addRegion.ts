/**
 * Issue 11's add-region target: a lab of us and eu holding ≥ 200,000 items (20,000 with --quick) takes
 * 200 writes/s (100/s into each) while `ap` joins with `hothot lab add-region` (infra/lab/membership/
 * addRegion.ts): no write may fail, the three regions must end identical (every item compared: an md5
 * over every row's key, value, stamp, vector, policy and state, plus the row count), and the time to
 * join is set against native logical replication's initial copy (`CREATE SUBSCRIPTION … WITH
 * (copy_data = true)`) of the same rows, in the same run, between two fresh clusters on this machine.
 *
 * Runs alone, on a lab of its own (`npm run bench -- --only addregion [--quick]`); writes
 * `<out>/add-region-<stamp>.json`, a Markdown report beside it and its chart (report/addRegionReport.ts).
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { copySnapshot } from '../../services/bootstrap/snapshotCopy.js';
import { migrate } from '../../shared/db/migrate.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { buildCompiledRegion, COMPILED_REGION_MAIN } from '../../infra/lab/compiledRegion.js';
import { Lab, labDatabaseUrl, labDown } from '../../infra/lab/lab.js';
import { readLabState } from '../../infra/lab/labState.js';
import { addRegion } from '../../infra/lab/membership/addRegion.js';
import { PortAllocator } from '../../infra/lab/ports.js';
import { PostgresCluster, findPostgresBinaries } from '../../infra/lab/postgresCluster.js';
import { sleep, waitFor } from '../../infra/lab/waitFor.js';
import { closedLoop } from '../load/closedLoop.js';
import { itemValue } from '../load/payloads.js';
import { writeAddRegionReport } from '../report/addRegionReport.js';
import type { AddRegionResult } from '../../infra/lab/membership/addRegion.js';

export interface AddRegionBenchOptions {
  readonly quick: boolean;
  readonly out: string;
  readonly log: (message: string) => void;
}

/** Issue 11's target: the join takes at most this many times logical replication's initial copy. */
const JOIN_VS_LOGICAL_TARGET = 2;

/** Logical replication's initial copy (`copy_data = true`) of the rows the join copied. */
export interface LogicalCopy {
  readonly rows: number;
  readonly copied: number;
  readonly initialCopyMs: number;
}

/** What `add-region-<stamp>.json` holds (and the Markdown report beside it shows). */
export interface AddRegionBenchResult {
  readonly scenario: 'add-region';
  readonly mode: 'quick' | 'full';
  readonly at: string;
  /** Items seeded before the join. */
  readonly items: number;
  /** Items in the source's snapshot. */
  readonly rowsAtJoin: number;
  /** Writes per second into the existing regions throughout. */
  readonly writeRate: number;
  readonly writes: WriterResult;
  /** The join proper (positions → snapshot → start → every region up), what the target compares. */
  readonly joinMs: number;
  /** The whole command: provisioning (credentials, PostgreSQL, the lab's broker restart, topic, peers told) and the join. */
  readonly totalMs: number;
  readonly phases: AddRegionResult['phases'];
  readonly snapshot: AddRegionResult['snapshot'];
  readonly identical: {
    readonly rows: number;
    readonly digest: string;
    readonly afterWriterStoppedMs: number;
  };
  /** The copy made under the same writes as the join, with the idle one (after the writer stopped) beside it. */
  readonly logicalReplication: LogicalCopy & { readonly idle: LogicalCopy };
  /** Ratios without "Idle" in their name are against the copy under the same writes. */
  readonly joinVsLogicalCopy: number;
  readonly joinVsIdleLogicalCopy: number;
  readonly totalVsLogicalCopy: number;
  readonly snapshotVsLogicalCopy: number;
  readonly target: { readonly joinVsLogicalCopyAtMost: number; readonly failedWrites: number };
  /** Judged both ways: against the copy under the same writes, and against the idle one. */
  readonly met: { readonly againstSameWrites: boolean; readonly againstIdle: boolean };
}

/** Total write rate into the existing regions while the new one joins. */
const WRITE_RATE = 200;

/** Digest of every item row (what must be identical in every region) and the row count. */
const DIGEST_SQL = `SELECT count(*)::int AS n, coalesce(md5(string_agg(
    concat_ws('|', collection, key, value::text, deleted, hlc_wall, hlc_logical, origin, vv::text, policy, crdt::text),
    E'\\n' ORDER BY collection, key)), '') AS digest FROM item`;

/** What the writer sent while the region joined. */
export interface WriterResult {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** Failures by status or error. */
  readonly failures: Readonly<Record<string, number>>;
  readonly seconds: number;
}

/** Fixed-rate writer alternating between targets; counts what failed. Stop it with the returned function. */
function steadyWriter(
  urls: readonly string[],
  rate: number,
  authorization: string,
): () => Promise<WriterResult> {
  let sent = 0;
  let ok = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const inflight = new Set<Promise<void>>();
  const started = Date.now();
  let running = true;
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      while (sent < due) {
        const i = sent++;
        const p = (async () => {
          try {
            const res = await fetch(`${urls[i % urls.length]!}/v1/items/during/k${i}`, {
              method: 'PUT',
              headers: { 'content-type': 'application/json', authorization },
              body: itemValue(i),
              signal: AbortSignal.timeout(30_000),
            });
            await res.body?.cancel();
            if (res.ok) ok++;
            else {
              failed++;
              failures[String(res.status)] = (failures[String(res.status)] ?? 0) + 1;
            }
          } catch (err) {
            failed++;
            const m = err instanceof Error ? err.message : String(err);
            failures[m] = (failures[m] ?? 0) + 1;
          }
        })();
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await sleep(5);
    }
  })();
  return async () => {
    running = false;
    await loop;
    await Promise.all([...inflight]);
    return { sent, ok, failed, failures, seconds: (Date.now() - started) / 1000 };
  };
}

/**
 * Two fresh PostgreSQL clusters, `pub` loaded with `source`'s items (the same rows the join copied)
 * and published; each `measure` subscribes `sub` with `copy_data = true` and times its initial copy
 * until every table is ready, then drops the subscription and empties `sub` again.
 */
async function logicalCopyBench(
  root: string,
  source: pg.Pool,
  clusters: PostgresCluster[],
  log: (message: string) => void,
) {
  const pgBin = findPostgresBinaries().binDir;
  const ports = new PortAllocator();
  const make = async (name: string) => {
    const c = new PostgresCluster({
      dataDir: join(root, `pg-${name}`),
      port: await ports.allocate(undefined, name),
      binDir: pgBin,
      logFile: join(root, `postgres-${name}.log`),
      superuserPassword: 'benchpass',
      settings: { wal_level: 'logical', max_wal_senders: 10, max_replication_slots: 10 },
    });
    clusters.push(c);
    await c.init();
    await c.start();
    await c.createDatabase('lr');
    const pool = new pg.Pool({ connectionString: c.url('lr'), max: 2 });
    await migrate(pool, createRootLogger({ region: name, level: 'silent' }));
    return { c, pool };
  };
  const pub = await make('pub');
  const sub = await make('sub');
  await copySnapshot(source, pub.pool, { targetRegion: 'pub' });
  const rows = (await pub.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM item')).rows[0]!.n;
  await pub.pool.query('CREATE PUBLICATION bench_add FOR TABLE item');
  return {
    async measure(when: string): Promise<LogicalCopy> {
      const started = Date.now();
      await sub.pool.query(
        `CREATE SUBSCRIPTION bench_add CONNECTION 'host=127.0.0.1 port=${pub.c.port} dbname=lr user=postgres password=benchpass' ` +
          'PUBLICATION bench_add WITH (copy_data = true)',
      );
      await waitFor(
        async () => {
          const { rows: r } = await sub.pool.query<{ ready: boolean }>(
            "SELECT bool_and(srsubstate = 'r') AS ready FROM pg_subscription_rel",
          );
          return r[0]?.ready === true;
        },
        { description: 'the subscription initial copy to finish', timeoutMs: 600_000, intervalMs: 100 },
      );
      const initialCopyMs = Date.now() - started;
      const copied = (await sub.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM item')).rows[0]!.n;
      await sub.pool.query('DROP SUBSCRIPTION bench_add');
      await sub.pool.query('TRUNCATE item');
      log(
        `native logical replication copied ${copied}/${rows} rows (copy_data = true) in ${initialCopyMs} ms, ${when}`,
      );
      return { rows, copied, initialCopyMs };
    },
    end: () => Promise.all([pub.pool.end(), sub.pool.end()]),
  };
}

export async function addRegionBench(options: AddRegionBenchOptions): Promise<number> {
  const { log } = options;
  const items = options.quick ? 20_000 : 200_000;
  const root = mkdtempSync(join(tmpdir(), 'hothot-bench-addregion-'));
  chmodSync(root, 0o755);
  const extra: PostgresCluster[] = [];
  try {
    // The regions run the compiled build, as deployed (and as the other scenarios measure them).
    log('building the compiled region (dist/)');
    await buildCompiledRegion();
    log(`starting a lab of us and eu in ${root}`);
    const lab = await Lab.up({
      root,
      regions: ['us', 'eu'],
      detached: true,
      frontDoor: false,
      regionEntry: COMPILED_REGION_MAIN,
      // One process per region, like the other scenarios' regions (API_PROCESSES is a knob there too).
      processes: 1,
      // HOTHOT_BENCH_LOG_LEVEL=debug: each applied batch with its duration in the kept logs (and a
      // line per request too, which costs CPU the figures then include).
      ...(process.env.HOTHOT_BENCH_LOG_LEVEL !== undefined
        ? { logLevel: process.env.HOTHOT_BENCH_LOG_LEVEL }
        : {}),
    });
    const authorization = `Bearer ${lab.adminKey.token}`;
    const urls = ['us', 'eu'].map((r) => lab.region(r).url);
    const t0 = Date.now();
    const seeded = await Promise.all(
      urls.map((baseUrl, u) =>
        closedLoop({
          baseUrl,
          connections: 16,
          amount: items / 2,
          maxDurationS: 1200,
          authorization,
          request: (i) => ({ method: 'PUT', path: `/v1/items/seed/u${u}-${i}`, body: itemValue(i) }),
        }),
      ),
    );
    const pools = Object.fromEntries(
      ['us', 'eu'].map((r) => [r, new pg.Pool({ connectionString: lab.databaseUrl(r), max: 2 })]),
    );
    const count = async (r: string) =>
      (await pools[r]!.query<{ n: number }>("SELECT count(*)::int AS n FROM item WHERE collection = 'seed'"))
        .rows[0]!.n;
    await waitFor(async () => (await count('us')) >= items && (await count('eu')) >= items, {
      description: `us and eu to hold ${items} items`,
      timeoutMs: 600_000,
      intervalMs: 1_000,
    });
    log(
      `seeded ${items} items in ${((Date.now() - t0) / 1000).toFixed(0)} s ` +
        `(${seeded.map((s) => `${s.okPerS.toFixed(0)}/s, ${s.errors + s.non2xx} failed`).join('; ')}), replicated to both`,
    );

    const stopWriter = steadyWriter(urls, WRITE_RATE, authorization);
    await sleep(2_000);
    const added = await addRegion({
      root,
      region: 'ap',
      source: 'us',
      onProgress: (e) => {
        if (e.type === 'info' || e.type === 'warning') log(e.message);
      },
    });
    await sleep(5_000);

    // Native logical replication's initial copy of the same rows, between two fresh clusters: once
    // while the writer still writes into us and eu (the conditions the join had), once after it
    // stopped (an otherwise quiet machine). The target is judged against each (`met` below).
    const logical = await logicalCopyBench(root, pools.us!, extra, log);
    const underLoad = await logical.measure('while us and eu take 200 writes/s');
    const writes = await stopWriter();
    log(`writer: ${writes.ok}/${writes.sent} acknowledged at ${WRITE_RATE}/s, ${writes.failed} failed`);

    const state = readLabState(root)!;
    pools.ap = new pg.Pool({ connectionString: labDatabaseUrl(state, 'ap'), max: 2 });
    const tc = Date.now();
    const digests = await waitFor(
      async () => {
        const d = await Promise.all(
          ['us', 'eu', 'ap'].map(
            async (r) => (await pools[r]!.query<{ n: number; digest: string }>(DIGEST_SQL)).rows[0]!,
          ),
        );
        return d.every((x) => x.digest === d[0]!.digest && x.n === d[0]!.n) ? d : undefined;
      },
      { description: 'us, eu and ap to hold identical items', timeoutMs: 300_000, intervalMs: 1_000 },
    );
    const equalAfterMs = Date.now() - tc;
    log(
      `us, eu and ap identical: ${digests[0]!.n} rows, md5 ${digests[0]!.digest} (${equalAfterMs} ms after the writer stopped)`,
    );
    const idle = await logical.measure('after the writer stopped');
    await logical.end();
    const logicalMs = underLoad.initialCopyMs;

    const result: AddRegionBenchResult = {
      scenario: 'add-region',
      mode: options.quick ? 'quick' : 'full',
      at: new Date().toISOString(),
      items,
      rowsAtJoin: added.snapshot.items,
      writeRate: WRITE_RATE,
      writes,
      joinMs: added.joinMs,
      totalMs: added.totalMs,
      phases: added.phases,
      snapshot: added.snapshot,
      identical: { rows: digests[0]!.n, digest: digests[0]!.digest, afterWriterStoppedMs: equalAfterMs },
      logicalReplication: { ...underLoad, idle },
      joinVsLogicalCopy: added.joinMs / logicalMs,
      joinVsIdleLogicalCopy: added.joinMs / idle.initialCopyMs,
      totalVsLogicalCopy: added.totalMs / logicalMs,
      snapshotVsLogicalCopy: added.snapshot.ms / logicalMs,
      target: { joinVsLogicalCopyAtMost: JOIN_VS_LOGICAL_TARGET, failedWrites: 0 },
      met: {
        againstSameWrites: added.joinMs / logicalMs <= JOIN_VS_LOGICAL_TARGET && writes.failed === 0,
        againstIdle: added.joinMs / idle.initialCopyMs <= JOIN_VS_LOGICAL_TARGET && writes.failed === 0,
      },
    };
    const { json: file, markdown } = writeAddRegionReport(result, options.out);
    log(
      `time to join ${(added.joinMs / 1000).toFixed(1)} s (snapshot copy ${(added.snapshot.ms / 1000).toFixed(1)} s of ` +
        `${added.snapshot.items} rows by ${added.snapshot.load}) vs native initial copy under the same writes ` +
        `${(logicalMs / 1000).toFixed(1)} s: ${result.joinVsLogicalCopy.toFixed(2)}× (target ≤ ${JOIN_VS_LOGICAL_TARGET}×; ` +
        `against the copy after the writer stopped, ${(idle.initialCopyMs / 1000).toFixed(1)} s: ` +
        `${result.joinVsIdleLogicalCopy.toFixed(2)}×; snapshot alone ` +
        `${result.snapshotVsLogicalCopy.toFixed(2)}×); the whole command with provisioning ` +
        `${(added.totalMs / 1000).toFixed(1)} s (${result.totalVsLogicalCopy.toFixed(1)}×); ` +
        `failed writes ${writes.failed}; ${result.met.againstSameWrites ? 'met' : 'NOT met'} against the copy under ` +
        `the same writes, ${result.met.againstIdle ? 'met' : 'NOT met'} against the idle copy; results in ${file}, report ${markdown}`,
    );
    await Promise.all(Object.values(pools).map((p) => p.end()));
    return writes.failed === 0 ? 0 : 1;
  } finally {
    // The regions' logs outlive the lab (how the join went, batch by batch, at debug).
    const logs = join(root, 'lab', 'logs');
    if (existsSync(logs)) {
      const kept = join(options.out, `add-region-logs-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      mkdirSync(kept, { recursive: true });
      for (const f of readdirSync(logs).filter((n) => n.startsWith('region-')))
        copyFileSync(join(logs, f), join(kept, f));
      log(`region logs kept in ${kept}`);
    }
    await labDown(root).catch(() => undefined);
    await Promise.allSettled(extra.map((c) => c.stop('fast')));
    rmSync(root, { recursive: true, force: true });
  }
}
