/**
 * `lab.json`: what a running lab consists of (pids, ports, URLs, directories), so that `lab down` and
 * `lab status` — other processes — can find it, and so can scripts and tests.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FrontDoorInfo } from './frontDoor.js';
import type { KafkaBrokerInfo } from './kafkaBroker.js';
import type { PostgresClusterInfo } from './postgresCluster.js';
import { isPidAlive } from './processes.js';
import type { RegionProcessInfo } from './regionProcess.js';
import type { ToxiproxyServerInfo } from './toxiproxyServer.js';

export const LAB_STATE_VERSION = 1;

export type LabRegionState = RegionProcessInfo;

export interface LabPostgresState extends PostgresClusterInfo {
  /** Postmaster pid. */
  pid: number;
  /** Superuser URL of the `postgres` database, password shown as `***`. */
  url: string;
  /**
   * URL of the region's database (`hothot`) as the region's role, password shown as `***`
   * (`labDatabaseUrl` in infra/lab/lab.ts puts the real one in).
   */
  databaseUrl: string;
}

export interface LabKafkaState extends KafkaBrokerInfo {
  /** Bootstrap address (`host:port`) of each region: its broker-link proxy. */
  bootstrap: Record<string, string>;
}

export interface LabToxiproxyState extends ToxiproxyServerInfo {
  /** Per region: its broker-link proxy (listens on the advertised address, forwards to the listener). */
  proxies: Record<string, { name: string; listen: string; upstream: string }>;
}

export type LabFrontDoorState = FrontDoorInfo;

export interface LabState {
  version: typeof LAB_STATE_VERSION;
  /** Directory holding lab.json; data and logs are under `<root>/lab/`. */
  root: string;
  /** `starting` while `lab up` runs, `ready` once every region answers /readyz. */
  status: 'starting' | 'ready';
  startedAt: string;
  /** Whether `lab up` returned (`--detach`) or stays in the foreground as {@link ownerPid}. */
  detached: boolean;
  /** Pid of the `lab up` process that owns the lab while it runs in the foreground. */
  ownerPid?: number;
  regionNames: string[];
  regions: Record<string, LabRegionState>;
  postgres: Record<string, LabPostgresState>;
  kafka?: LabKafkaState;
  toxiproxy?: LabToxiproxyState;
  /** Directory of the lab's credentials (mode 0700; see infra/lab/labSecrets.ts). Never their values. */
  secretsDir?: string;
  /** File (mode 0600) of the lab's admin API key (infra/lab/labClientKeys.ts). Never the key. */
  adminKeyFile?: string;
  /**
   * The regions' event-signing keys (`<region>.<key id>.key.pem`, 0600) and `public-keys.json`
   * (shared/security/eventKeys.ts): each region signs what it publishes and verifies its peers'.
   */
  eventKeysDir?: string;
  /** HAProxy in front of the regions (absent when started without one: see {@link noFrontDoor}). */
  frontDoor?: LabFrontDoorState;
  /** Set when the lab runs without a front door: why (`--no-front-door`, HAProxy not installed) and the fix. */
  noFrontDoor?: LabNoFrontDoor;
}

export interface LabNoFrontDoor {
  reason: string;
  /** The command that gives the lab its front door next time (e.g. installing HAProxy). */
  fix?: string;
}

export function labStatePath(root: string): string {
  return join(root, 'lab.json');
}

/** The lab state in `root`, or undefined when there is none (or it is unreadable). */
export function readLabState(root: string): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(labStatePath(root), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as LabState;
    return state.version === LAB_STATE_VERSION ? state : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Write the state atomically (temp file + rename). With `exclusive`, fail if a lab.json exists — two
 * `lab up` racing for the same directory.
 */
export function writeLabState(state: LabState, options: { exclusive?: boolean } = {}): void {
  const path = labStatePath(state.root);
  const text = `${JSON.stringify(state, null, 2)}\n`;
  if (options.exclusive === true) {
    writeFileSync(path, text, { flag: 'wx' });
    return;
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function removeLabState(root: string): void {
  rmSync(labStatePath(root), { force: true });
}

/** Pids the state lists that are still alive (regions, Kafka, Postgres, foreground owner). */
export function livePids(state: LabState): number[] {
  const pids = [
    ...Object.values(state.regions).map((r) => r.pid),
    ...Object.values(state.postgres).map((p) => p.pid),
    ...(state.kafka !== undefined ? [state.kafka.pid] : []),
    ...(state.toxiproxy !== undefined ? [state.toxiproxy.pid] : []),
    ...(state.frontDoor !== undefined ? [state.frontDoor.pid] : []),
    ...(state.ownerPid !== undefined && state.ownerPid !== process.pid ? [state.ownerPid] : []),
  ];
  return pids.filter((pid) => pid > 0 && isPidAlive(pid));
}
