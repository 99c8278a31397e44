/**
 * Two (or more) real region processes on the shared PostgreSQL and Kafka, each with a fresh
 * database, replicating through a random topic prefix; plus the HTTP and SQL probes e2e tests use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { EventSigner } from '../../shared/security/eventAuth.js';
import {
  eventKeyEnv,
  loadEventKeys,
  provisionEventKeys,
  type EventSigningFiles,
} from '../../shared/security/eventKeys.js';
import { compareStamps, formatStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { dumpItems, type StoredItem } from '../../shared/db/queries/item.js';
import { RegionProcess } from '../../infra/lab/regionProcess.js';
import {
  createDatabase,
  dropDatabase,
  provisionTestAdminKey,
  provisionTestRegions,
  randomId,
  regionKafkaEnv,
  sharedInfra,
  testSessionTokenKeys,
  waitFor,
} from './harness.js';

export interface RegionUnderTest {
  readonly name: string;
  readonly process: RegionProcess;
  readonly db: pg.Pool;
  readonly url: string;
}

export interface Cluster {
  readonly prefix: string;
  readonly regions: Readonly<Record<string, RegionUnderTest>>;
  /** Each region's event-key files (it signs what it publishes; its peers verify). */
  readonly eventKeys: Readonly<Record<string, EventSigningFiles>>;
  stop(): Promise<void>;
}

/**
 * A signer holding `region`'s event key, as a new publisher instance of that region (a relay that
 * restarted): what a test uses to publish by hand on a region's topic messages its peers accept as
 * genuine. The partition a message goes to is part of what is signed.
 */
export function signerOf(cluster: Cluster, region: string): EventSigner {
  const files = cluster.eventKeys[region];
  if (files === undefined) throw new Error(`no event keys for region ${region}`);
  return new EventSigner(loadEventKeys(files, region).signing, region);
}

export async function startCluster(
  names: readonly string[] = ['us', 'eu'],
  env: Record<string, string> = {},
): Promise<Cluster> {
  const infra = sharedInfra();
  const prefix = `e${randomId()}`;
  const regions: Record<string, RegionUnderTest> = {};
  // One session-token key for all (a token of one region is honoured by the others).
  const sessionTokenKeys = testSessionTokenKeys();
  // Every region signs what it publishes and verifies its peers (SECURITY_MODE=on, the default).
  const eventKeysDir = mkdtempSync(join(tmpdir(), `hothot-event-keys-${prefix}-`));
  const eventKeys = provisionEventKeys(eventKeysDir, names);
  const stop = async () => {
    await stopAll(regions, infra.postgresUrl, prefix);
    rmSync(eventKeysDir, { recursive: true, force: true });
  };
  try {
    // The prefix's topics and ACLs, as admin: each region then connects as its own Kafka principal.
    await provisionTestRegions(prefix, names);
    await Promise.all(
      names.map(async (name) => {
        const databaseUrl = await createDatabase(infra.postgresUrl, `${prefix}_${name}`);
        const process = await RegionProcess.start({
          region: name,
          peerRegions: names.filter((n) => n !== name),
          databaseUrl,
          kafkaBrokers: infra.kafkaBrokers,
          topicPrefix: prefix,
          logLevel: 'info',
          env: {
            HEARTBEAT_INTERVAL_MS: '500',
            SESSION_TOKEN_KEYS: sessionTokenKeys,
            ...eventKeyEnv(eventKeys[name]!),
            ...regionKafkaEnv(name),
            ...env,
          },
        });
        const db = new pg.Pool({ connectionString: databaseUrl, max: 3 });
        db.on('error', () => undefined);
        regions[name] = { name, process, db, url: process.url };
        // Ready means migrated: the run's admin key can go in (what fetch sends).
        await provisionTestAdminKey([databaseUrl]);
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { prefix, regions, eventKeys, stop };
}

async function stopAll(
  regions: Record<string, RegionUnderTest>,
  adminUrl: string,
  prefix: string,
): Promise<void> {
  await Promise.allSettled(Object.values(regions).map((r) => r.process.stop(5000)));
  await Promise.allSettled(Object.values(regions).map((r) => r.db.end()));
  await Promise.allSettled(Object.keys(regions).map((name) => dropDatabase(adminUrl, `${prefix}_${name}`)));
}

export interface ItemResponse {
  readonly status: number;
  readonly etag: string | null;
  readonly body: { value?: unknown; version?: string; origin?: string; error?: { code: string } } | null;
}

export async function putItem(
  base: string,
  collection: string,
  key: string,
  value: unknown,
  headers: Record<string, string> = {},
): Promise<ItemResponse> {
  const res = await fetch(`${base}/v1/items/${collection}/${encodeURIComponent(key)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(value),
  });
  return {
    status: res.status,
    etag: res.headers.get('etag'),
    body: (await res.json()) as ItemResponse['body'],
  };
}

export async function getItem(base: string, collection: string, key: string): Promise<ItemResponse> {
  const res = await fetch(`${base}/v1/items/${collection}/${encodeURIComponent(key)}`);
  return {
    status: res.status,
    etag: res.headers.get('etag'),
    body: (await res.json()) as ItemResponse['body'],
  };
}

export async function deleteItem(base: string, collection: string, key: string): Promise<number> {
  const res = await fetch(`${base}/v1/items/${collection}/${encodeURIComponent(key)}`, { method: 'DELETE' });
  await res.body?.cancel();
  return res.status;
}

/** Every item row of a region without its local `updatedAt`, in key order: what must converge. */
export async function replicatedState(r: RegionUnderTest): Promise<Omit<StoredItem, 'updatedAt'>[]> {
  return (await dumpItems(r.db)).map(({ updatedAt: _u, ...rest }) => rest);
}

/** Wait until every region holds identical rows (values, stamps, vectors, tombstones). */
export async function waitConverged(
  cluster: Cluster,
  timeoutMs = 60_000,
): Promise<Omit<StoredItem, 'updatedAt'>[]> {
  const regions = Object.values(cluster.regions);
  return waitFor(
    'all regions to hold identical rows',
    async () => {
      const states = await Promise.all(regions.map(replicatedState));
      const first = JSON.stringify(states[0]);
      const outboxes = await Promise.all(
        regions.map((r) =>
          r.db.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM outbox WHERE msg_key NOT LIKE '!_heartbeat/%' ESCAPE '!'",
          ),
        ),
      );
      const drained = outboxes.every((o) => o.rows[0]!.n === 0);
      return drained && states.every((s) => JSON.stringify(s) === first) ? states[0] : undefined;
    },
    { timeoutMs, intervalMs: 200 },
  );
}

/** Conflict log of a region as comparable tuples. */
export async function conflictLog(r: RegionUnderTest): Promise<string[]> {
  const { rows } = await r.db.query<{
    collection: string;
    key: string;
    winner: { hlc: unknown };
    loser: { hlc: unknown };
    rule: string;
  }>('SELECT collection, key, winner, loser, rule FROM conflict');
  return rows.map((c) => JSON.stringify([c.collection, c.key, c.winner.hlc, c.loser.hlc, c.rule])).sort();
}

interface ConflictRow {
  readonly collection: string;
  readonly key: string;
  readonly field: string | null;
  readonly rule: string;
  readonly winner: { readonly hlc: HlcStamp };
  readonly loser: { readonly hlc: HlcStamp };
}

export interface ConflictLogComparison {
  /** Entries per region. */
  readonly counts: Readonly<Record<string, number>>;
  /** Entries per collection and region. */
  readonly byCollection: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Entries (collection, key, field, winner, loser, rule) logged identically in every region. */
  readonly common: number;
  /** Items with a conflict logged in some region. */
  readonly conflictedKeys: number;
  /** Distinct versions named by the logs that are not in `knownVersions` (when given). */
  readonly unknownVersions: number;
  /** What is wrong, one sentence each (empty when the logs agree). */
  readonly problems: readonly string[];
}

export interface CompareConflictLogsOptions {
  /** Only these collections. */
  readonly collections: readonly string[];
  /** Every version written (formatted stamps): a logged version outside it is counted as unknown. */
  readonly knownVersions?: ReadonlySet<string>;
  /** The converged rows: a logged winner newer than its item's final row is a problem. */
  readonly finalRows?: readonly Omit<StoredItem, 'updatedAt'>[];
  /** The scenario makes every region log the same pairs: the logs must be identical. */
  readonly identical?: boolean;
}

/**
 * Compare the conflict logs of `regions` after convergence. A region logs a conflict when the
 * version it holds and an incoming one are concurrent, so which pairs it logs depends on the order
 * in which versions reached it: with several writes per key during a cut the logs differ by design
 * (a region that receives A1, A2 while holding B logs B/A1 and B/A2; the writer of A1 and A2 logs
 * only B/A2). What must hold in every case:
 *
 * - no entry twice in one region (a redelivered event never logs again);
 * - an `lww-hlc` winner always has the greater stamp, so no two regions decide a pair differently;
 * - an item with a conflict logged anywhere has one logged in at least two regions (both origins
 *   of the concurrent versions log it) — in a two-region lab, in both;
 * - every logged version was written (`knownVersions`), and no winner is newer than the item's
 *   converged row (`finalRows`).
 */
export async function compareConflictLogs(
  regions: readonly RegionUnderTest[],
  options: CompareConflictLogsOptions,
): Promise<ConflictLogComparison> {
  const logs = await Promise.all(
    regions.map(async (r) => {
      const { rows } = await r.db.query<ConflictRow>(
        'SELECT collection, key, field, rule, winner, loser FROM conflict WHERE collection = ANY($1)',
        [options.collections],
      );
      return rows;
    }),
  );
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < 20) problems.push(text);
  };
  const entry = (c: ConflictRow) =>
    `${c.collection}/${c.key}${c.field === null ? '' : `#${c.field}`} ${formatStamp(c.winner.hlc)} beats ${formatStamp(c.loser.hlc)} (${c.rule})`;
  const keyRegions = new Map<string, Set<string>>();
  const entryCount = new Map<string, number>();
  const byCollection: Record<string, Record<string, number>> = {};
  const unknown = new Set<string>();
  const final = new Map((options.finalRows ?? []).map((row) => [`${row.collection}/${row.key}`, row]));
  regions.forEach((r, i) => {
    const seen = new Set<string>();
    for (const c of logs[i]!) {
      const e = entry(c);
      if (seen.has(e)) problem(`${r.name} logged twice: ${e}`);
      seen.add(e);
      const perCollection = (byCollection[c.collection] ??= {});
      perCollection[r.name] = (perCollection[r.name] ?? 0) + 1;
      if (c.rule === 'lww-hlc' && compareStamps(c.winner.hlc, c.loser.hlc) <= 0)
        problem(`${r.name}: the winner's stamp is not the greater: ${e}`);
      const id = `${c.collection}/${c.key}`;
      let names = keyRegions.get(id);
      if (names === undefined) keyRegions.set(id, (names = new Set()));
      names.add(r.name);
      if (options.knownVersions !== undefined) {
        for (const v of [c.winner.hlc, c.loser.hlc])
          if (!options.knownVersions.has(formatStamp(v))) unknown.add(formatStamp(v));
      }
      const row = final.get(id);
      if (options.finalRows !== undefined && (row === undefined || compareStamps(row.hlc, c.winner.hlc) < 0))
        problem(`${r.name}: ${e}, but the converged row is ${row ? formatStamp(row.hlc) : 'missing'}`);
    }
    for (const e of seen) entryCount.set(e, (entryCount.get(e) ?? 0) + 1);
  });
  const needed = Math.min(2, regions.length);
  for (const [id, names] of keyRegions) {
    if (names.size < needed) problem(`${id} has conflicts logged only in ${[...names].join(', ')}`);
  }
  const common = [...entryCount.values()].filter((n) => n === regions.length).length;
  if (options.identical === true) {
    regions.forEach((r, i) => {
      const missing = logs[i]!.length - common;
      if (missing !== 0 || logs[i]!.length !== logs[0]!.length)
        problem(
          `${r.name} logged ${logs[i]!.length} conflicts, ${missing} of them not logged identically everywhere`,
        );
    });
  }
  return {
    counts: Object.fromEntries(regions.map((r, i) => [r.name, logs[i]!.length])),
    byCollection,
    common,
    conflictedKeys: keyRegions.size,
    unknownVersions: unknown.size,
    problems,
  };
}
