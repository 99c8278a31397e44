/**
 * Two (or more) real region processes on the shared PostgreSQL and Kafka, each with a fresh
 * database, replicating through a random topic prefix; plus the HTTP and SQL probes e2e tests use.
 */
import pg from 'pg';
import { dumpItems, type StoredItem } from '../../shared/db/queries/item.js';
import { RegionProcess } from '../../infra/lab/regionProcess.js';
import { createDatabase, dropDatabase, randomId, sharedInfra, waitFor } from './harness.js';

export interface RegionUnderTest {
  readonly name: string;
  readonly process: RegionProcess;
  readonly db: pg.Pool;
  readonly url: string;
}

export interface Cluster {
  readonly prefix: string;
  readonly regions: Readonly<Record<string, RegionUnderTest>>;
  stop(): Promise<void>;
}

export async function startCluster(
  names: readonly string[] = ['us', 'eu'],
  env: Record<string, string> = {},
): Promise<Cluster> {
  const infra = sharedInfra();
  const prefix = `e${randomId()}`;
  const regions: Record<string, RegionUnderTest> = {};
  try {
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
          env: { HEARTBEAT_INTERVAL_MS: '500', ...env },
        });
        const db = new pg.Pool({ connectionString: databaseUrl, max: 3 });
        db.on('error', () => undefined);
        regions[name] = { name, process, db, url: process.url };
      }),
    );
  } catch (err) {
    await stopAll(regions, infra.postgresUrl, prefix);
    throw err;
  }
  return { prefix, regions, stop: () => stopAll(regions, infra.postgresUrl, prefix) };
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
