/**
 * The front door: HAProxy in front of every region, run natively from the Debian package as a
 * foreground child process (`haproxy -db -f <generated config>`), never as the system service.
 *
 * The configuration is infra/haproxy/haproxy.cfg (the compose one) with the lab's addresses put in:
 * its `bind` line becomes the lab's loopback port and its `server` lines become one line per region.
 * Balancing, health checks, timeouts and retries therefore have one source of truth.
 */
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabChild } from './childProcess.js';
import { REPO_ROOT } from './paths.js';
import { LOOPBACK } from './ports.js';
import { run, signalPid, terminatePid } from './processes.js';

export const HAPROXY_CONFIG_TEMPLATE = join(REPO_ROOT, 'infra', 'haproxy', 'haproxy.cfg');
/** Weight of a region without an explicit one (HAProxy's range is 0–256). */
export const DEFAULT_WEIGHT = 100;
const DEFAULT_READY_TIMEOUT_MS = 20_000;

export interface FrontDoorServer {
  /** Region id; the HAProxy server name. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** 0–256; 0 keeps the region out of rotation. @default 100 */
  readonly weight?: number;
}

export interface FrontDoorConfigInput {
  readonly bindHost?: string;
  readonly bindPort: number;
  readonly servers: readonly FrontDoorServer[];
}

/** Parse `us=2,eu=1` into weights; throws on a malformed entry. */
export function parseWeights(text: string): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const entry of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const m = /^([a-z][a-z0-9-]*)=(\d{1,3})$/.exec(entry);
    if (m === null || Number(m[2]) > 256)
      throw new Error(`weight ${JSON.stringify(entry)}: expected <region>=<0-256>, e.g. us=2`);
    weights[m[1]!] = Number(m[2]);
  }
  return weights;
}

/**
 * The config text: the template with its `bind` lines replaced by the lab's address and its `server`
 * lines replaced by `servers` (each with `weight`).
 */
export function renderFrontDoorConfig(
  input: FrontDoorConfigInput,
  template: string = readFileSync(HAPROXY_CONFIG_TEMPLATE, 'utf8'),
): string {
  if (input.servers.length === 0) throw new Error('the front door needs at least one region');
  for (const s of input.servers) {
    const w = s.weight ?? DEFAULT_WEIGHT;
    if (!Number.isInteger(w) || w < 0 || w > 256) throw new Error(`weight of ${s.name}: expected 0-256`);
  }
  const out: string[] = [];
  let binds = 0;
  let serversPlaced = false;
  for (const line of template.split('\n')) {
    const indentOf = /^\s*/.exec(line)![0];
    if (/^\s*bind\s/.test(line)) {
      binds += 1;
      out.push(`${indentOf}bind ${input.bindHost ?? LOOPBACK}:${input.bindPort}`);
    } else if (/^\s*server\s/.test(line)) {
      if (!serversPlaced) {
        serversPlaced = true;
        for (const s of input.servers)
          out.push(`${indentOf}server ${s.name} ${s.host}:${s.port} weight ${s.weight ?? DEFAULT_WEIGHT}`);
      }
    } else {
      out.push(line);
    }
  }
  if (binds !== 1 || !serversPlaced)
    throw new Error(`${HAPROXY_CONFIG_TEMPLATE} must have one bind line and at least one server line`);
  return out.join('\n');
}

/** The `haproxy` binary: `HOTHOT_HAPROXY_BIN`, else /usr/sbin/haproxy (Debian), else `haproxy` on PATH. */
export function haproxyBinary(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HOTHOT_HAPROXY_BIN !== undefined && env.HOTHOT_HAPROXY_BIN !== '') return env.HOTHOT_HAPROXY_BIN;
  if (existsSync('/usr/sbin/haproxy')) return '/usr/sbin/haproxy';
  return 'haproxy';
}

/**
 * The binary {@link haproxyBinary} names, resolved to an executable file (a bare name through PATH),
 * or undefined when there is none: HAProxy is not installed (or HOTHOT_HAPROXY_BIN points nowhere).
 */
export function findHaproxy(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const binary = haproxyBinary(env);
  if (binary.includes('/')) return isExecutableFile(binary) ? binary : undefined;
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir !== '' && isExecutableFile(join(dir, binary))) return join(dir, binary);
  }
  return undefined;
}

/** Why there is no HAProxy to run, and the command that fixes it (as printed by `lab up` and kept in lab.json). */
export function missingHaproxy(env: NodeJS.ProcessEnv = process.env): { reason: string; fix: string } {
  if (env.HOTHOT_HAPROXY_BIN !== undefined && env.HOTHOT_HAPROXY_BIN !== '') {
    return {
      reason: `HOTHOT_HAPROXY_BIN=${env.HOTHOT_HAPROXY_BIN} is not an executable`,
      fix: 'unset HOTHOT_HAPROXY_BIN or point it at an haproxy binary',
    };
  }
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  return {
    reason: 'HAProxy is not installed (no /usr/sbin/haproxy, no haproxy on PATH)',
    fix: `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends haproxy`,
  };
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export interface FrontDoorOptions extends FrontDoorConfigInput {
  /** Where the generated config goes. */
  configFile: string;
  logFile: string;
  /** Own session, not tied to this process (the lab). @default false */
  detached?: boolean;
  /** @default {@link haproxyBinary} */
  binary?: string;
  /** Wait until at least one region is in rotation (GET /readyz through the front door answers 200). @default true */
  waitForBackend?: boolean;
  /** @default 20000 */
  readyTimeoutMs?: number;
}

/** A started front door as plain data (the lab writes it into lab.json). */
export interface FrontDoorInfo {
  pid: number;
  port: number;
  url: string;
  configFile: string;
  logFile: string;
  binary: string;
  weights: Record<string, number>;
}

export class FrontDoor {
  private readonly process: LabChild;

  private constructor(
    readonly info: FrontDoorInfo,
    detached: boolean,
  ) {
    this.process = new LabChild('HAProxy', info.logFile, detached);
  }

  /** Render the config, check it (`haproxy -c`), start HAProxy in the foreground mode, wait until it serves. */
  static async start(options: FrontDoorOptions): Promise<FrontDoor> {
    const binary = options.binary ?? haproxyBinary();
    writeFileSync(options.configFile, renderFrontDoorConfig(options));
    await run(binary, ['-c', '-q', '-f', options.configFile], { timeoutMs: 20_000 }).catch((err: unknown) => {
      throw new Error(
        `HAProxy refused ${options.configFile} (is HAProxy installed? Debian: apt-get install haproxy): ${
          err instanceof Error ? err.message : String(err)
        }`,
        { cause: err },
      );
    });
    const host = options.bindHost ?? LOOPBACK;
    const door = new FrontDoor(
      {
        pid: 0,
        port: options.bindPort,
        url: `http://${host === '0.0.0.0' ? LOOPBACK : host}:${options.bindPort}`,
        configFile: options.configFile,
        logFile: options.logFile,
        binary,
        weights: Object.fromEntries(options.servers.map((s) => [s.name, s.weight ?? DEFAULT_WEIGHT])),
      },
      options.detached ?? false,
    );
    // -db: stay in the foreground (no daemon, no master-worker), log to stdout.
    door.info.pid = door.process.spawn(binary, ['-db', '-f', options.configFile]);
    await door.process.waitUntilReady(
      async () => {
        if (options.waitForBackend === false) return canReach(door.info.url);
        const res = await fetch(`${door.info.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        return res.status === 200;
      },
      {
        description: `the front door ${door.info.url} to route to a ready region`,
        timeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
        stop: () => door.stop(),
      },
    );
    return door;
  }

  get url(): string {
    return this.info.url;
  }

  get pid(): number {
    return this.info.pid;
  }

  isRunning(): boolean {
    return this.process.isRunning(this.info.pid);
  }

  async stop(graceMs = 5_000): Promise<void> {
    await FrontDoor.stopPid(this.info.pid, this.info.configFile, graceMs);
  }

  /** Stop a front door known only by pid (lab.json); its config path guards against pid reuse. */
  static stopPid(pid: number, configFile?: string, graceMs = 5_000) {
    // SIGUSR1 would be a soft stop; SIGTERM stops at once, which is what a lab wants.
    return terminatePid(pid, { graceMs, marker: configFile ?? 'haproxy' });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    signalPid(this.info.pid, signal);
  }
}

async function canReach(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return true;
  } catch {
    return false;
  }
}
