/**
 * A whole native lab of a test's own (infra/lab/lab.ts): Toxiproxy in front of each region's Kafka
 * listener, PostgreSQL per region, Kafka, the region processes and optionally HAProxy — the same code
 * `hothot lab up` runs. Fault tests need it because they cut links, kill brokers and restart
 * databases, which the shared test infrastructure must survive.
 *
 * Region processes get short timeouts (see {@link FAULT_REGION_ENV}) so cuts of a few seconds show
 * everything a long cut would. A lab whose test process died is stopped by the next {@link startFaultLab}.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Lab, labDown } from '../../infra/lab/lab.js';
import { readLabState } from '../../infra/lab/labState.js';
import { isPidAlive } from '../../infra/lab/processes.js';
import type { BrokerLinks } from '../../infra/lab/toxiproxy.js';
import type { Cluster, RegionUnderTest } from './twoRegions.js';

const DIR_PREFIX = 'hothot-faultlab-';

/** Region tuning for fault tests: detection and recovery in seconds, not tens of seconds. */
export const FAULT_REGION_ENV: Readonly<Record<string, string>> = {
  HEARTBEAT_INTERVAL_MS: '500',
  PEER_SUSPECT_AFTER_MS: '2000',
  PEER_DOWN_AFTER_MS: '5000',
  PUBLISH_TIMEOUT_MS: '3000',
  KAFKA_CONNECTION_TIMEOUT_MS: '1000',
  KAFKA_REQUEST_TIMEOUT_MS: '3000',
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  BROKER_PROBE_INTERVAL_MS: '500',
  BROKER_PROBE_TIMEOUT_MS: '1000',
  DB_POOL_SIZE: '8',
};

/**
 * A lab is a {@link Cluster} too, so the probes of twoRegions.ts (convergence, conflict logs) work
 * on it. Each region's `db` is a small pool of the test's own, for row comparisons.
 */
export interface FaultLab extends Cluster {
  readonly lab: Lab;
  readonly dir: string;
  readonly links: BrokerLinks;
  /** The front door's URL, when started with one. */
  readonly frontDoorUrl: string | undefined;
  /** Each region's database pool by region name (what the workload checks take). */
  dbs(): Record<string, pg.Pool>;
  /** Each region's API base URL. */
  urls(): string[];
  stop(): Promise<void>;
}

export interface FaultLabOptions {
  readonly regions?: readonly string[];
  /** Added to (and overriding) {@link FAULT_REGION_ENV}. */
  readonly regionEnv?: Readonly<Record<string, string>>;
  /** @default false */
  readonly frontDoor?: boolean;
  readonly weights?: Readonly<Record<string, number>>;
}

export async function startFaultLab(options: FaultLabOptions = {}): Promise<FaultLab> {
  await reapAbandonedLabs();
  const dir = mkdtempSync(join(tmpdir(), DIR_PREFIX));
  chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must be able to enter it
  const lab = await Lab.up({
    root: dir,
    regions: options.regions ?? ['us', 'eu'],
    regionEnv: { ...FAULT_REGION_ENV, ...options.regionEnv },
    logLevel: process.env.HOTHOT_TEST_REGION_LOG ?? 'info',
    frontDoor: options.frontDoor ?? false,
    ...(options.weights !== undefined ? { weights: options.weights } : {}),
  }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const regions: Record<string, RegionUnderTest> = {};
  for (const name of lab.state.regionNames) {
    const db = new pg.Pool({ connectionString: lab.state.postgres[name]!.databaseUrl, max: 3 });
    db.on('error', () => undefined); // PostgreSQL restarts are part of the tests
    const process = lab.region(name);
    regions[name] = { name, url: process.url, db, process };
  }
  let stopped: Promise<void> | undefined;
  return {
    lab,
    dir,
    prefix: 'hothot', // the lab's topic prefix (no KAFKA_TOPIC_PREFIX override)
    regions,
    links: lab.links,
    frontDoorUrl: lab.state.frontDoor?.url,
    dbs: () => Object.fromEntries(Object.values(regions).map((r) => [r.name, r.db])),
    urls: () => Object.values(regions).map((r) => r.url),
    stop: () =>
      (stopped ??= (async () => {
        await Promise.allSettled(Object.values(regions).map((r) => r.db.end()));
        await lab.down().catch(() => labDown(dir));
        if (process.env.HOTHOT_TEST_KEEP_INFRA === '1') console.log(`[fault lab] kept ${dir}`);
        else rmSync(dir, { recursive: true, force: true });
      })()),
  };
}

/** Stop labs of earlier test runs that died before their teardown. */
async function reapAbandonedLabs(): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    const state = readLabState(dir);
    if (state?.ownerPid !== undefined && isPidAlive(state.ownerPid)) continue;
    // No state yet may be another run setting its lab up: leave young directories alone.
    if (state === undefined && Date.now() - statSync(dir).mtimeMs < 10 * 60_000) continue;
    if (state !== undefined) await labDown(dir).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}
