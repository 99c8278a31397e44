/**
 * The front door: HAProxy in front of every region, run natively from the Debian package as a
 * foreground child process (`haproxy -db -f <generated config>`), never as the system service.
 *
 * The configuration is infra/haproxy/haproxy.cfg (the compose one) with the lab's addresses put in:
 * its `bind` line becomes the lab's loopback port, its `server` lines become one line per region and
 * its `balance` line the mode asked for (`--balance`, default roundrobin as in the file). Health
 * checks, timeouts and retries therefore have one source of truth.
 */
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedServer, SERVER_STOP_GRACE_MS } from './managedServer.js';
import { REPO_ROOT } from './paths.js';
import { LOOPBACK } from './ports.js';
import { run, terminatePid } from './processes.js';

export const HAPROXY_CONFIG_TEMPLATE = join(REPO_ROOT, 'infra', 'haproxy', 'haproxy.cfg');
/** Weight of a region without an explicit one (HAProxy's range is 0–256). */
export const DEFAULT_WEIGHT = 100;
const DEFAULT_READY_TIMEOUT_MS = 20_000;

/**
 * How the front door spreads requests over the regions (`hothot lab up --balance`):
 * - `roundrobin`: each region in turn (HAProxy `balance roundrobin`), equal weights;
 * - `random`: a region drawn at random for each request (HAProxy `balance random(1)`: one draw —
 *   the default `random` draws two and takes the less loaded, which is not what "random" promises),
 *   in proportion to the weights if any are given;
 * - `weighted`: in turn, in proportion to `--weights` (HAProxy's roundrobin honours `weight`).
 */
export const Balance = { RoundRobin: 'roundrobin', Random: 'random', Weighted: 'weighted' } as const;
export type Balance = (typeof Balance)[keyof typeof Balance];
export const BALANCE_MODES: readonly Balance[] = [Balance.RoundRobin, Balance.Random, Balance.Weighted];
export const DEFAULT_BALANCE: Balance = Balance.RoundRobin;

/** The HAProxy `balance` algorithm of a mode. */
export function haproxyBalance(balance: Balance): string {
  return balance === Balance.Random ? 'random(1)' : 'roundrobin';
}

/** Parse a `--balance` value; throws naming the choices. */
export function parseBalance(text: string): Balance {
  const b = BALANCE_MODES.find((m) => m === text.trim().toLowerCase());
  if (b === undefined)
    throw new Error(`balance ${JSON.stringify(text)}: expected one of ${BALANCE_MODES.join(', ')}`);
  return b;
}

/**
 * The balancing a lab runs with, from `--balance` and `--weights`: weights alone mean `weighted`
 * (what `--weights` did before `--balance` existed); `weighted` needs weights; `roundrobin` refuses
 * them (it would not be round-robin); `random` takes them as draw probabilities.
 */
export function resolveBalancing(
  balance: Balance | undefined,
  weights: Readonly<Record<string, number>> | undefined,
): { balance: Balance; weights: Readonly<Record<string, number>> } {
  const given = weights !== undefined && Object.keys(weights).length > 0;
  const mode = balance ?? (given ? Balance.Weighted : DEFAULT_BALANCE);
  if (mode === Balance.Weighted && !given)
    throw new Error('--balance weighted needs --weights, e.g. --weights us=3,eu=1');
  if (mode === Balance.RoundRobin && given)
    throw new Error(
      '--balance roundrobin gives every region the same turn: drop --weights, or use --balance weighted',
    );
  return { balance: mode, weights: weights ?? {} };
}

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
  /** @default roundrobin */
  readonly balance?: Balance;
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
    if (/^\s*balance\s/.test(line)) {
      out.push(`${indentOf}balance ${haproxyBalance(input.balance ?? DEFAULT_BALANCE)}`);
    } else if (/^\s*bind\s/.test(line)) {
      binds += 1;
      out.push(`${indentOf}bind ${input.bindHost ?? LOOPBACK}:${input.bindPort}`);
    } else if (/^\s*server\s/.test(line)) {
      if (!serversPlaced) {
        serversPlaced = true;
        const weights = renderedWeights(input);
        for (const s of input.servers)
          out.push(`${indentOf}server ${s.name} ${s.host}:${s.port} weight ${weights.get(s)!}`);
      }
    } else {
      out.push(line);
    }
  }
  if (binds !== 1 || !serversPlaced)
    throw new Error(`${HAPROXY_CONFIG_TEMPLATE} must have one bind line and at least one server line`);
  return out.join('\n');
}

/**
 * The weights written into the config. For `random` they are scaled so the largest is 256: HAProxy
 * draws on a consistent-hash ring with 16 points per unit of weight, and with small weights the ring
 * has so few points that the arcs are uneven and the shares stray far from the ratio (a measured
 * case: bench/README.md, "Figures quoted from code comments"); at 256 the ring has thousands of
 * points and the shares follow the ratio. Round-robin uses the weights exactly as given.
 */
function renderedWeights(input: FrontDoorConfigInput): Map<FrontDoorServer, number> {
  const given = input.servers.map((s) => s.weight ?? DEFAULT_WEIGHT);
  const max = Math.max(...given);
  const scale = input.balance === Balance.Random && max > 0 ? 256 / max : 1;
  return new Map(input.servers.map((s, i) => [s, Math.round(given[i]! * scale)]));
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
  /** The config template. @default the text of {@link HAPROXY_CONFIG_TEMPLATE} */
  template?: string;
}

/** A started front door as plain data (the lab writes it into lab.json). */
export interface FrontDoorInfo {
  pid: number;
  port: number;
  url: string;
  configFile: string;
  logFile: string;
  binary: string;
  /** Absent in lab.json files written before `--balance` existed: roundrobin. */
  balance?: Balance;
  weights: Record<string, number>;
}

export class FrontDoor extends ManagedServer<FrontDoorInfo> {
  private constructor(info: FrontDoorInfo, detached: boolean) {
    super(info, 'HAProxy', detached, info.configFile);
  }

  /** Render the config, check it (`haproxy -c`), start HAProxy in the foreground mode, wait until it serves. */
  static async start(options: FrontDoorOptions): Promise<FrontDoor> {
    const binary = options.binary ?? haproxyBinary();
    writeFileSync(options.configFile, renderFrontDoorConfig(options, options.template));
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
        balance: options.balance ?? DEFAULT_BALANCE,
        weights: Object.fromEntries(options.servers.map((s) => [s.name, s.weight ?? DEFAULT_WEIGHT])),
      },
      options.detached ?? false,
    );
    // -db: stay in the foreground (no daemon, no master-worker), log to stdout.
    await door.launch(
      binary,
      ['-db', '-f', options.configFile],
      async () => {
        if (options.waitForBackend === false) return canReach(door.info.url);
        const res = await fetch(`${door.info.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        return res.status === 200;
      },
      {
        description: `the front door ${door.info.url} to route to a ready region`,
        timeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      },
    );
    return door;
  }

  /**
   * Stop a front door known only by pid (lab.json); its config path guards against pid reuse.
   * SIGUSR1 would be a soft stop; SIGTERM stops at once, which is what a lab wants.
   */
  static stopPid(pid: number, configFile?: string, graceMs = SERVER_STOP_GRACE_MS) {
    return terminatePid(pid, { graceMs, marker: configFile ?? 'haproxy' });
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
