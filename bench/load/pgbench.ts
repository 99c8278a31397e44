/**
 * pgbench running the SQL of hothot's write path (services/api/useCases/writeItem.ts with
 * shared/db/queries/item.ts and localWrite.ts, for a PUT into an `lww` collection), statement for
 * statement, in one transaction, in the same two pipelined round trips:
 *
 *   [BEGIN; advisory lock on hashtextextended('<collection>/<key>') (lockItems); SELECT the row
 *   (findItem)] then [one statement writing the item row, its history entry and its outbox row
 *   (storeLocalWrite: three data-modifying CTEs); COMMIT]
 *
 * (pgbench's `\startpipeline`/`\endpipeline`; the API sends each group in one write with
 * node-postgres's pipeline mode, see shared/db/withTransaction.ts.)
 *
 * Same tables and indexes (hothot's migrations), same value and event sizes. The version vector and
 * HLC stamp, which the API computes in Node, are constants/SQL expressions here. Run with
 * `-M prepared`: the best this SQL can do, so the ratio shows how far hothot is from its database.
 * Keep it in step with writeItem.ts (PGBENCH_WRITE_PATH_STATEMENTS is what the report shows).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../infra/lab/processes.js';
import { itemValue, outboxPayload } from './payloads.js';

const HLC_WALL = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint';

export const PGBENCH_WRITE_PATH_STATEMENTS = [
  'round trip 1: BEGIN',
  'SELECT pg_advisory_xact_lock(…) — lockItems',
  'SELECT … FROM item — findItem',
  'round trip 2: WITH stored AS (INSERT INTO item … ON CONFLICT DO UPDATE), history AS (INSERT INTO item_history …) INSERT INTO outbox … — storeLocalWrite',
  'COMMIT',
] as const;

export const PGBENCH_WRITE_SCRIPT = [
  '\\set k random(1, :keyspace)',
  '\\startpipeline',
  'BEGIN;',
  `SELECT pg_advisory_xact_lock(hashtextextended(:collection::text || '/' || :k::text, 0));`,
  `SELECT collection, key, value, deleted, hlc_wall AS "hlcWall", hlc_logical AS "hlcLogical", origin, vv, policy, crdt, updated_at AS "updatedAt" FROM item WHERE collection = :collection::text AND key = :k::text;`,
  '\\endpipeline',
  '\\startpipeline',
  `WITH stored AS (INSERT INTO item (collection, key, value, deleted, hlc_wall, hlc_logical, origin, vv, policy, crdt, updated_at) VALUES (:collection::text, :k::text, :value::jsonb, false, ${HLC_WALL}, 0, 'us', :vv::jsonb, 'lww', NULL, clock_timestamp()) ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value, deleted = EXCLUDED.deleted, hlc_wall = EXCLUDED.hlc_wall, hlc_logical = EXCLUDED.hlc_logical, origin = EXCLUDED.origin, vv = EXCLUDED.vv, policy = EXCLUDED.policy, crdt = EXCLUDED.crdt, updated_at = EXCLUDED.updated_at), history AS (INSERT INTO item_history (collection, key, hlc_wall, hlc_logical, origin, vv, deleted, value, outcome) VALUES (:collection::text, :k::text, ${HLC_WALL}, 0, 'us', :vv::jsonb, false, :value::jsonb, 'written') ON CONFLICT DO NOTHING) INSERT INTO outbox (msg_key, payload) VALUES (:collection::text || '/' || :k::text, :payload::jsonb);`,
  'END;',
  '\\endpipeline',
  '',
].join('\n');

/** Keys drawn from 1..this are unique in practice (collision odds ~1e-5 for 100k rows). */
export const UNIQUE_KEYSPACE = 1_000_000_000_000_000;

export interface PgbenchTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** Given to pgbench as PGPASSWORD (its environment, never its command line). */
  readonly password: string;
}

export interface PgbenchOptions {
  readonly binDir: string;
  /** Directory for the script and the per-transaction logs. */
  readonly workDir: string;
  readonly target: PgbenchTarget;
  readonly collection: string;
  /** Keys are drawn uniformly from 1..keyspace. */
  readonly keyspace: number;
  readonly clients: number;
  readonly durationS?: number;
  /** Transactions per client (instead of a duration). */
  readonly transactionsPerClient?: number;
  /** Open loop: `-R` transactions per second (Poisson schedule). */
  readonly rate?: number;
  /** Write per-transaction logs (`-l`) and return their latencies. */
  readonly logLatencies?: boolean;
  readonly tag: string;
}

export interface PgbenchResult {
  readonly clients: number;
  readonly processed: number;
  readonly failed: number;
  /** "tps = … (without initial connection time)". */
  readonly tps: number;
  readonly errorRate: number;
  readonly latencyAvgMs: number;
  /** From the transaction logs: scheduled start (or start) → end, ms. */
  readonly latenciesMs?: number[];
  readonly scheduleLagMs?: number[];
  readonly startedAt: number;
  readonly elapsedMs: number;
  readonly command: string;
}

export async function pgbench(options: PgbenchOptions): Promise<PgbenchResult> {
  const script = join(options.workDir, 'pgbench-write.sql');
  writeFileSync(script, PGBENCH_WRITE_SCRIPT);
  const logPrefix = join(options.workDir, `pgbench-${options.tag}`);
  const threads = Math.min(options.clients, 2);
  const args = [
    '-n',
    '-M',
    'prepared',
    '-f',
    script,
    '-c',
    String(options.clients),
    '-j',
    String(threads),
    '-h',
    options.target.host,
    '-p',
    String(options.target.port),
    '-U',
    options.target.user,
    '-D',
    `collection=${options.collection}`,
    '-D',
    `keyspace=${options.keyspace}`,
    '-D',
    `value=${itemValue(0)}`,
    '-D',
    `vv={"us":1}`,
    '-D',
    `payload=${outboxPayload(options.collection, '0')}`,
    ...(options.durationS !== undefined ? ['-T', String(options.durationS)] : []),
    ...(options.transactionsPerClient !== undefined ? ['-t', String(options.transactionsPerClient)] : []),
    ...(options.rate !== undefined ? ['-R', String(options.rate)] : []),
    ...(options.logLatencies === true ? ['-l', `--log-prefix=${logPrefix}`] : []),
    options.target.database,
  ];
  const startedAt = Date.now();
  const t0 = performance.now();
  const { stdout } = await run(join(options.binDir, 'pgbench'), args, {
    timeoutMs: ((options.durationS ?? 300) + 120) * 1000,
    env: { ...process.env, PGPASSWORD: options.target.password },
  });
  const elapsedMs = performance.now() - t0;
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? Number.NaN);
  const processed = num(/number of transactions actually processed: (\d+)/);
  const failed = num(/number of failed transactions: (\d+)/) || 0;
  const result: PgbenchResult = {
    clients: options.clients,
    processed,
    failed,
    tps: num(/tps = ([\d.]+)/),
    errorRate: processed + failed === 0 ? 1 : failed / (processed + failed),
    latencyAvgMs: num(/latency average = ([\d.]+) ms/),
    startedAt,
    elapsedMs,
    command: `pgbench ${args.filter((a) => !a.startsWith('payload=') && !a.startsWith('value=')).join(' ')}`,
  };
  if (options.logLatencies !== true) return result;
  const latenciesMs: number[] = [];
  const scheduleLagMs: number[] = [];
  const base = `pgbench-${options.tag}.`;
  for (const file of readdirSync(options.workDir).filter((f) => f.startsWith(base))) {
    for (const line of readFileSync(join(options.workDir, file), 'utf8').split('\n')) {
      // client_id transaction_no time script_no time_epoch time_us [schedule_lag]
      const f = line.split(' ');
      if (f.length < 6) continue;
      const time = Number(f[2]);
      if (!Number.isFinite(time)) continue; // failed or skipped
      latenciesMs.push(time / 1000);
      if (f[6] !== undefined) scheduleLagMs.push(Number(f[6]) / 1000);
    }
  }
  return { ...result, latenciesMs, scheduleLagMs };
}
