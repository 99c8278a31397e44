/**
 * One region process (`services/region/main.ts`) launched with Node + tsx, configured by environment,
 * logging into a file, and considered started once `GET /readyz` answers 200.
 *
 * Tests use it directly (SIGKILL a region, restart it on the same port with the same environment).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redactUrl } from '../../shared/config/redactUrl.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { ManagedProcess, type ProcessExit } from './managedProcess.js';
import { REGION_MAIN, REPO_ROOT } from './paths.js';
import { LOOPBACK, findFreePort } from './ports.js';
import { terminatePid } from './processes.js';

const DEFAULT_READY_TIMEOUT_MS = 60_000;
/**
 * Consecutive `/readyz` answers of 200, each on a connection of its own, that make a region process
 * ready: with API_PROCESSES > 1 every worker answers for itself, and the primary hands new
 * connections to its workers in turn, so four in a row cover up to four workers (one poll over a
 * kept-alive connection asks the same worker every time, and another client may then meet one
 * still starting).
 */
const READY_PROBES = 4;
/** Above the region process's own shutdown deadline (15 s), so SIGKILL is the last resort. */
const DEFAULT_STOP_GRACE_MS = 20_000;

export type RegionRole = 'api' | 'relay' | 'applier';

export interface RegionProcessOptions {
  /** `REGION`. */
  region: string;
  /** `PEER_REGIONS`: the other regions whose changes this one applies. */
  peerRegions: readonly string[];
  /**
   * Give the peers as `PEER_REGIONS_FILE` instead, this file, (re)written with `peerRegions` at each
   * launch: then the running region can be told of a new peer without a restart ({@link writePeersFile}
   * and SIGHUP). @default none: PEER_REGIONS
   */
  peersFile?: string;
  /** `DATABASE_URL` of this region's own database. */
  databaseUrl: string;
  /** `KAFKA_BROKERS`: this region's own Kafka listener (`host:port`). */
  kafkaBrokers: readonly string[];
  /** `PORT`. @default a free port, chosen once and kept across restarts */
  port?: number;
  /** `HOST`. @default 127.0.0.1 */
  host?: string;
  /** `KAFKA_TOPIC_PREFIX`. @default the process default (hothot) */
  topicPrefix?: string;
  /** `LOG_LEVEL`. @default the process default (info) */
  logLevel?: string;
  /** `ROLES`. @default the process default (api,relay,applier) */
  roles?: readonly RegionRole[];
  /** Any further variables (tuning knobs such as `HEARTBEAT_INTERVAL_MS`); override the above. */
  env?: Readonly<Record<string, string>>;
  /** File receiving stdout and stderr (pino JSON), appended to. @default `<tmpdir>/hothot-region-<region>-<port>.log` */
  logFile?: string;
  /**
   * Run in its own session, not tied to this process: it survives this process and Ctrl-C in this
   * terminal does not reach it. @default false
   */
  detached?: boolean;
  /** Deadline for `/readyz` to answer 200. @default 60000 */
  readyTimeoutMs?: number;
  /**
   * Entry point relative to the repository root: a `.ts` file runs through tsx, a `.js` file (the
   * compiled build, see compiledRegion.ts) with plain Node. @default services/region/main.ts
   */
  entry?: string;
  /** Extra Node options before the entry point. @default REGION_NODE_OPTIONS */
  nodeOptions?: readonly string[];
}

/**
 * Node options every region process gets (the Dockerfile's CMD has the same): young-generation
 * semi-spaces of 8 MB instead of V8's 16 MB lower the peak RSS under write load, and a heap growing
 * factor of 2 (V8 picks up to 4 for a small heap) lets the old generation grow to twice its live set
 * before a full collection instead of four times: a catch-up of ~76k events peaked at 148 MiB
 * instead of 198 MiB. Figures: docs/operations.md, "Running a region process".
 */
export const REGION_NODE_OPTIONS: readonly string[] = [
  '--max-semi-space-size=8',
  '--heap-growing-percent=100',
];

/** How the process ended, as Node reports it. */
export type RegionExit = ProcessExit;

/** A region process as plain data (the lab writes it into lab.json). */
export interface RegionProcessInfo {
  region: string;
  pid: number;
  port: number;
  url: string;
  /** `DATABASE_URL` with its password replaced by `***`. */
  databaseUrl: string;
  kafkaBrokers: string[];
  logFile: string;
  /** Entry point it runs (also what `stopPid` checks the pid's command line for). */
  entry: string;
}

/** Write a region's peers file in one step (a running region may read it at any moment). */
export function writePeersFile(file: string, peers: readonly string[]): void {
  writeFileSync(`${file}.tmp`, `${peers.join('\n')}\n`);
  renameSync(`${file}.tmp`, file);
}

export class RegionProcess {
  /** Base URL, e.g. `http://127.0.0.1:8081`. */
  readonly url: string;
  readonly port: number;
  readonly logFile: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly managed: ManagedProcess;

  private constructor(
    readonly options: Readonly<RegionProcessOptions>,
    port: number,
  ) {
    this.port = port;
    const host = options.host ?? LOOPBACK;
    this.url = `http://${host === '0.0.0.0' ? LOOPBACK : host}:${port}`;
    this.logFile = options.logFile ?? join(tmpdir(), `hothot-region-${options.region}-${port}.log`);
    this.managed = new ManagedProcess({
      name: `region ${options.region}`,
      logFile: this.logFile,
      detached: options.detached,
    });
    this.env = {
      ...process.env,
      REGION: options.region,
      ...(options.peersFile !== undefined
        ? { PEER_REGIONS_FILE: options.peersFile }
        : { PEER_REGIONS: options.peerRegions.join(',') }),
      DATABASE_URL: options.databaseUrl,
      KAFKA_BROKERS: options.kafkaBrokers.join(','),
      // The lab's broker takes record batches of up to this size (infra/kafka/server.properties).
      KAFKA_MESSAGE_MAX_BYTES: String(LAB_MESSAGE_MAX_BYTES),
      PORT: String(port),
      HOST: host,
      ...(options.topicPrefix !== undefined ? { KAFKA_TOPIC_PREFIX: options.topicPrefix } : {}),
      ...(options.logLevel !== undefined ? { LOG_LEVEL: options.logLevel } : {}),
      ...(options.roles !== undefined ? { ROLES: options.roles.join(',') } : {}),
      ...options.env,
    };
  }

  /** Spawn the process and wait until `/readyz` answers 200. On failure the process is killed. */
  static async start(options: RegionProcessOptions): Promise<RegionProcess> {
    const region = new RegionProcess(options, options.port ?? (await findFreePort()));
    if (options.peersFile !== undefined) writePeersFile(options.peersFile, options.peerRegions);
    region.spawn();
    try {
      await region.waitUntilReady();
    } catch (err) {
      await region.stop(2_000);
      throw err;
    }
    return region;
  }

  /**
   * Spawn without waiting for readiness (a test that wants to watch a failing start); call
   * {@link waitUntilReady} next.
   */
  static launch(options: RegionProcessOptions & { port: number }): RegionProcess {
    const region = new RegionProcess(options, options.port);
    if (options.peersFile !== undefined) writePeersFile(options.peersFile, options.peerRegions);
    region.spawn();
    return region;
  }

  get region(): string {
    return this.options.region;
  }

  /** Pid of the current incarnation (0 before the first spawn). */
  get pid(): number {
    return this.managed.pid;
  }

  /** How many API workers of the current incarnation logged `region started` (relay workers not counted). */
  private startedWorkers(): number {
    let log: Buffer;
    try {
      log = readFileSync(this.logFile);
    } catch {
      return 0;
    }
    // API workers only: a relay worker (RELAY_WORKER, its lines carry "worker":"relay") serves no
    // requests, and the API workers are the ones the probes must all reach.
    return log
      .subarray(this.logStartOffset)
      .toString('utf8')
      .split('\n')
      .filter((l) => l.includes('"msg":"region started"') && !l.includes('"worker":"relay"')).length;
  }

  /** Offset in {@link logFile} where the current incarnation's output starts. */
  get logStartOffset(): number {
    return this.managed.logStartOffset;
  }

  get info(): RegionProcessInfo {
    return {
      region: this.options.region,
      pid: this.managed.pid,
      port: this.port,
      url: this.url,
      databaseUrl: redactUrl(this.options.databaseUrl),
      kafkaBrokers: [...this.options.kafkaBrokers],
      logFile: this.logFile,
      entry: this.options.entry ?? REGION_MAIN,
    };
  }

  /** Whether the current incarnation is alive. */
  isRunning(): boolean {
    return this.managed.isRunning();
  }

  /** How the current incarnation ended, if it has. */
  get exitStatus(): RegionExit | undefined {
    return this.managed.exit;
  }

  /** Send `signal` (SIGKILL for a crash test; SIGTERM for a graceful stop). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.managed.kill(signal);
  }

  /** Resolves when the current incarnation exits (at once if it has). */
  waitForExit(): Promise<RegionExit> {
    return this.managed.waitForExit();
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    await this.managed.stop(graceMs);
  }

  /**
   * Start a new incarnation with the same environment and port (stopping the current one first if it
   * still runs) and wait until it is ready.
   */
  async restart(): Promise<void> {
    await this.stop();
    this.spawn();
    await this.waitUntilReady();
  }

  /**
   * Poll `/readyz` until every worker answers 200 ({@link READY_PROBES}) and every worker of this
   * incarnation has logged `region started`; fails early (with the log tail) if the process exits.
   * The log count is needed because the primary hands connections only to workers that listen: a
   * worker still loading its modules is invisible to the probes, then listens and answers 503
   * "starting" (CI met that right after `lab up`, with four probes in a row all answered by the
   * first worker).
   */
  async waitUntilReady(timeoutMs = this.options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    const url = `${this.url}/readyz`;
    const workers = Number(this.env.API_PROCESSES ?? 1);
    const allReady = async () => {
      if (workers > 1 && this.startedWorkers() < workers) return false;
      for (let i = 0; i < READY_PROBES; i++) if (!(await httpOk(url))) return false;
      return true;
    };
    await this.managed.waitUntilReady(allReady, {
      description: `region ${this.region} to answer ${this.url}/readyz with 200`,
      timeoutMs,
    });
  }

  /**
   * Stop a region process known only by pid (e.g. from lab.json): SIGTERM, SIGKILL after `graceMs`.
   * Skipped when the pid no longer runs `entry` (a reused pid).
   */
  static stopPid(pid: number, options: { entry?: string; graceMs?: number } = {}) {
    return terminatePid(pid, {
      graceMs: options.graceMs ?? DEFAULT_STOP_GRACE_MS,
      marker: options.entry ?? REGION_MAIN,
    });
  }

  private spawn(): void {
    const entry = this.options.entry ?? REGION_MAIN;
    const nodeOptions = this.options.nodeOptions ?? REGION_NODE_OPTIONS;
    const args = entry.endsWith('.ts')
      ? ['--import', import.meta.resolve('tsx'), ...nodeOptions, entry]
      : [...nodeOptions, entry];
    this.managed.spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: this.env,
      what: `region ${this.region} (${process.execPath} ${entry})`,
    });
  }
}

/**
 * Whether GET `url` (http) answers 200 within `timeoutMs`, asked over a connection of its own (no
 * keep-alive): a region with several workers answers `/readyz` per worker, and the primary hands
 * each new connection to the next one, so a poll over one kept-alive connection would ask the same
 * worker every time.
 */
export function httpOk(url: string, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const req = httpGet(url, { agent: false, timeout: timeoutMs }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    } catch {
      resolve(false); // not an http URL
    }
  });
}
