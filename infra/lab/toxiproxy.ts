/**
 * Toxiproxy, the fault proxy between each region and Kafka: the server binary (built once from its Go
 * module with `go install` at a pinned version and cached outside the repository, like the Kafka
 * jars), the server process, a small client of its HTTP API, and the broker-link operations the lab
 * and the tests use (`partition`, `heal`, `latency`).
 *
 * One proxy per region, `kafka-<region>`, listens on the address the broker advertises to that
 * region's listener and forwards to the listener's real port. A region's processes bootstrap through
 * the proxy and the metadata they receive names the proxy again, so nothing a region does can reach
 * the broker around its proxy: cutting the proxy cuts the region.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabChild } from './childProcess.js';
import { REPO_ROOT, resolveCacheDir } from './paths.js';
import { LOOPBACK, findFreePort } from './ports.js';
import { run, signalPid, terminatePid } from './processes.js';

/** Pinned Toxiproxy version (v2.13 needs a newer Go than our machines have). */
export const TOXIPROXY_VERSION = '2.12.0';
export const TOXIPROXY_MODULE = 'github.com/Shopify/toxiproxy/v2';
const MARKER = '.complete';
const DEFAULT_READY_TIMEOUT_MS = 20_000;
/** Generous: removing a latency toxic waits for the delayed bytes of its connections. */
const API_TIMEOUT_MS = 20_000;

/** Directory of the cached build: `<cache>/toxiproxy-<version>`. */
export function toxiproxyDir(cacheDir = resolveCacheDir()): string {
  return join(cacheDir, `toxiproxy-${TOXIPROXY_VERSION}`);
}

/** Path of the server binary (whether or not it is built yet). `go install` names it `server`. */
export function toxiproxyBinary(cacheDir = resolveCacheDir()): string {
  return join(toxiproxyDir(cacheDir), 'server');
}

/** Whether the binary is cached completely (marker present and naming the pinned version). */
export function hasToxiproxy(cacheDir = resolveCacheDir()): boolean {
  try {
    return (
      readFileSync(join(toxiproxyDir(cacheDir), MARKER), 'utf8').trim() === TOXIPROXY_VERSION &&
      existsSync(toxiproxyBinary(cacheDir))
    );
  } catch {
    return false;
  }
}

export interface EnsureToxiproxyOptions {
  /** @default resolveCacheDir() */
  cacheDir?: string;
  /** Told once, before a build starts (not called when the cache is complete). */
  onBuildStart?: (message: string) => void;
  /** Build even if the cache looks complete. @default false */
  force?: boolean;
}

/**
 * Make sure the Toxiproxy server is built and cached. Builds with `go install` into a temporary
 * GOBIN and renames the binary into place, then writes the marker: an interrupted or concurrent build
 * never leaves a half binary behind a marker. A binary from an earlier build without a marker is
 * adopted once it runs (`-version`).
 */
export async function ensureToxiproxy(options: EnsureToxiproxyOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? resolveCacheDir();
  const dir = toxiproxyDir(cacheDir);
  const binary = toxiproxyBinary(cacheDir);
  if (options.force !== true && hasToxiproxy(cacheDir)) return binary;
  mkdirSync(dir, { recursive: true });

  if (options.force !== true && existsSync(binary)) {
    const adopted = await run(binary, ['-version'], { timeoutMs: 10_000 }).then(
      (r) => /toxiproxy-server version/.test(r.stdout + r.stderr),
      () => false,
    );
    if (adopted) {
      writeFileSync(join(dir, MARKER), `${TOXIPROXY_VERSION}\n`);
      return binary;
    }
  }

  options.onBuildStart?.(
    `building Toxiproxy ${TOXIPROXY_VERSION} with \`go install\` into ${dir} (first run, ~1 min)…`,
  );
  const tmpBin = join(dir, `bin.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmpBin, { recursive: true });
  try {
    await run(
      goBinary(),
      [
        'install',
        `-ldflags=-s -w -X ${TOXIPROXY_MODULE}.Version=${TOXIPROXY_VERSION}`,
        `${TOXIPROXY_MODULE}/cmd/server@v${TOXIPROXY_VERSION}`,
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, GOBIN: tmpBin, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
        timeoutMs: 15 * 60_000,
      },
    ).catch((err: unknown) => {
      throw new Error(
        `could not build Toxiproxy with \`go install\` (is Go >= 1.21 installed and the Go module proxy reachable?): ${
          err instanceof Error ? err.message : String(err)
        }`,
        { cause: err },
      );
    });
    const built = join(tmpBin, 'server');
    if (!existsSync(built)) throw new Error(`go install finished but ${built} is missing`);
    rmSync(join(dir, MARKER), { force: true });
    renameSync(built, binary);
    writeFileSync(join(dir, MARKER), `${TOXIPROXY_VERSION}\n`);
  } finally {
    rmSync(tmpBin, { recursive: true, force: true });
  }
  return binary;
}

function goBinary(): string {
  const fromRoot = process.env.GOROOT !== undefined ? join(process.env.GOROOT, 'bin', 'go') : undefined;
  if (fromRoot !== undefined && existsSync(fromRoot)) return fromRoot;
  // Not always on a non-login PATH: the official tarball's default place.
  const onPath = (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'go')));
  return onPath || !existsSync('/usr/local/go/bin/go') ? 'go' : '/usr/local/go/bin/go';
}

// ---------------------------------------------------------------------------------------------------
// HTTP API client

/** A proxy as the API describes it. */
export interface ToxiproxyProxy {
  name: string;
  /** `host:port` it listens on. */
  listen: string;
  /** `host:port` it forwards to. */
  upstream: string;
  enabled: boolean;
  toxics: Toxic[];
}

export type ToxicStream = 'upstream' | 'downstream';

export interface Toxic {
  name: string;
  type: 'latency' | 'timeout' | 'reset_peer' | 'bandwidth' | 'slow_close' | 'slicer' | 'limit_data';
  stream: ToxicStream;
  /** Probability (0–1) that a connection gets the toxic. @default 1 */
  toxicity?: number;
  attributes: Record<string, number>;
}

/** The API answered with an error status. */
export class ToxiproxyApiError extends Error {
  override readonly name = 'ToxiproxyApiError';
  constructor(
    readonly status: number,
    readonly body: string,
    what: string,
  ) {
    super(`Toxiproxy ${what}: HTTP ${status} ${body.trim()}`);
  }
}

/** A minimal client of Toxiproxy's HTTP API (what the lab needs, nothing more). */
export class ToxiproxyClient {
  constructor(readonly url: string) {}

  async version(): Promise<string> {
    return (await this.request('GET', '/version', undefined, 'version')).trim();
  }

  async proxies(): Promise<Record<string, ToxiproxyProxy>> {
    return JSON.parse(await this.request('GET', '/proxies', undefined, 'list proxies')) as Record<
      string,
      ToxiproxyProxy
    >;
  }

  async proxy(name: string): Promise<ToxiproxyProxy> {
    return JSON.parse(
      await this.request('GET', `/proxies/${encodeURIComponent(name)}`, undefined, `proxy ${name}`),
    ) as ToxiproxyProxy;
  }

  /** Create the proxies, or update them to these addresses when they exist (`POST /populate`). */
  async populate(proxies: readonly { name: string; listen: string; upstream: string }[]): Promise<void> {
    await this.request(
      'POST',
      '/populate',
      proxies.map((p) => ({ ...p, enabled: true })),
      'populate',
    );
  }

  /** Enable (listen, forward) or disable (close the listener and every connection) a proxy. */
  async setEnabled(name: string, enabled: boolean): Promise<void> {
    await this.request('POST', `/proxies/${encodeURIComponent(name)}`, { enabled }, `update ${name}`);
  }

  /** Add a toxic, replacing one of the same name. */
  async setToxic(proxy: string, toxic: Toxic): Promise<void> {
    await this.removeToxic(proxy, toxic.name);
    await this.request(
      'POST',
      `/proxies/${encodeURIComponent(proxy)}/toxics`,
      { toxicity: 1, ...toxic },
      `add toxic ${toxic.name} to ${proxy}`,
    );
  }

  /** Remove a toxic; no error when it does not exist. */
  async removeToxic(proxy: string, name: string): Promise<void> {
    try {
      await this.request(
        'DELETE',
        `/proxies/${encodeURIComponent(proxy)}/toxics/${encodeURIComponent(name)}`,
        undefined,
        `remove toxic ${name} from ${proxy}`,
      );
    } catch (err) {
      if (!(err instanceof ToxiproxyApiError && err.status === 404)) throw err;
    }
  }

  private async request(method: string, path: string, body: unknown, what: string): Promise<string> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(API_TIMEOUT_MS),
    });
    const text = await res.text();
    if (!res.ok) throw new ToxiproxyApiError(res.status, text, what);
    return text;
  }
}

// ---------------------------------------------------------------------------------------------------
// Broker links: one proxy per region

/** How a link is cut. */
export const PartitionMode = {
  /** Disable the proxy: every open connection is closed, new ones are refused. A clean, fast failure. */
  Reset: 'reset',
  /** `timeout` toxics with timeout 0 both ways: connections open, bytes vanish, nothing ever answers. */
  Blackhole: 'blackhole',
} as const;
export type PartitionMode = (typeof PartitionMode)[keyof typeof PartitionMode];
export const PARTITION_MODES: readonly PartitionMode[] = [PartitionMode.Reset, PartitionMode.Blackhole];

export const BLACKHOLE_TOXICS = ['blackhole-up', 'blackhole-down'] as const;
export const LATENCY_TOXICS = ['latency-up', 'latency-down'] as const;

/** Name of region `region`'s broker-link proxy. */
export function brokerProxyName(region: string): string {
  return `kafka-${region}`;
}

/** State of one broker link as the proxy sees it. */
export interface BrokerLinkState {
  region: string;
  proxy: string;
  listen: string;
  upstream: string;
  /** `up`, or how it is cut. */
  state: 'up' | PartitionMode;
  /** Added round-trip latency in ms (0 when none). */
  latencyMs: number;
}

/** Cut, heal and slow down broker links through Toxiproxy. */
export class BrokerLinks {
  readonly client: ToxiproxyClient;

  constructor(url: string) {
    this.client = new ToxiproxyClient(url);
  }

  /** Create (or re-point) one proxy per region: listen on its advertised address, forward to its listener. */
  async define(links: readonly { region: string; listen: string; upstream: string }[]): Promise<void> {
    await this.client.populate(
      links.map((l) => ({ name: brokerProxyName(l.region), listen: l.listen, upstream: l.upstream })),
    );
  }

  /** Cut `region`'s link. Switching modes heals the other mode first. */
  async partition(region: string, mode: PartitionMode = PartitionMode.Reset): Promise<void> {
    const proxy = brokerProxyName(region);
    if (mode === PartitionMode.Reset) {
      for (const t of BLACKHOLE_TOXICS) await this.client.removeToxic(proxy, t);
      await this.client.setEnabled(proxy, false);
      return;
    }
    await this.client.setEnabled(proxy, true);
    await this.client.setToxic(proxy, {
      name: BLACKHOLE_TOXICS[0],
      type: 'timeout',
      stream: 'upstream',
      attributes: { timeout: 0 },
    });
    await this.client.setToxic(proxy, {
      name: BLACKHOLE_TOXICS[1],
      type: 'timeout',
      stream: 'downstream',
      attributes: { timeout: 0 },
    });
  }

  /** Restore `region`'s link (added latency stays: see {@link latency}). */
  async heal(region: string): Promise<void> {
    const proxy = brokerProxyName(region);
    for (const t of BLACKHOLE_TOXICS) await this.client.removeToxic(proxy, t);
    await this.client.setEnabled(proxy, true);
  }

  /**
   * Add `ms` of round-trip latency to `region`'s link (half each way, ±`jitterMs` each way); 0
   * removes it. WAN simulation: the kernel here has no netem, so latency comes from the proxy.
   */
  async latency(region: string, ms: number, jitterMs = 0): Promise<void> {
    const proxy = brokerProxyName(region);
    if (ms <= 0) {
      for (const t of LATENCY_TOXICS) await this.client.removeToxic(proxy, t);
      return;
    }
    const half = Math.round(ms / 2);
    for (const [name, stream] of [
      [LATENCY_TOXICS[0], 'upstream'],
      [LATENCY_TOXICS[1], 'downstream'],
    ] as const) {
      await this.client.setToxic(proxy, {
        name,
        type: 'latency',
        stream,
        attributes: { latency: half, jitter: Math.round(jitterMs) },
      });
    }
  }

  /** State of every broker link (proxies named `kafka-<region>`). */
  async states(): Promise<BrokerLinkState[]> {
    const proxies = await this.client.proxies();
    return Object.values(proxies)
      .filter((p) => p.name.startsWith('kafka-'))
      .map((p): BrokerLinkState => {
        const blackholed = p.toxics.some((t) => (BLACKHOLE_TOXICS as readonly string[]).includes(t.name));
        const latencyMs = p.toxics
          .filter((t) => (LATENCY_TOXICS as readonly string[]).includes(t.name))
          .reduce((sum, t) => sum + (t.attributes.latency ?? 0), 0);
        return {
          region: p.name.slice('kafka-'.length),
          proxy: p.name,
          listen: p.listen,
          upstream: p.upstream,
          state: !p.enabled ? PartitionMode.Reset : blackholed ? PartitionMode.Blackhole : 'up',
          latencyMs,
        };
      })
      .sort((a, b) => a.region.localeCompare(b.region));
  }
}

// ---------------------------------------------------------------------------------------------------
// The server process

export interface ToxiproxyServerOptions {
  /** API port. @default a free port */
  port?: number;
  /** stdout/stderr of the server. */
  logFile: string;
  /** @default {@link ensureToxiproxy} */
  binary?: string;
  /** Own session, not tied to this process (the lab). @default false */
  detached?: boolean;
  onBuildStart?: (message: string) => void;
  /** @default 20000 */
  readyTimeoutMs?: number;
}

/** A started server as plain data (the lab writes it into lab.json). */
export interface ToxiproxyServerInfo {
  pid: number;
  port: number;
  /** API base URL, e.g. `http://127.0.0.1:8283`. */
  url: string;
  binary: string;
  logFile: string;
}

export class ToxiproxyServer {
  private readonly process: LabChild;

  private constructor(
    readonly info: ToxiproxyServerInfo,
    detached: boolean,
  ) {
    this.process = new LabChild('Toxiproxy', info.logFile, detached);
  }

  /** Build if needed, start the server on 127.0.0.1 and wait until its API answers. */
  static async start(options: ToxiproxyServerOptions): Promise<ToxiproxyServer> {
    const binary = options.binary ?? (await ensureToxiproxy({ onBuildStart: options.onBuildStart }));
    const port = options.port ?? (await findFreePort());
    const server = new ToxiproxyServer(
      { pid: 0, port, url: `http://${LOOPBACK}:${port}`, binary, logFile: options.logFile },
      options.detached ?? false,
    );
    server.info.pid = server.process.spawn(binary, ['-host', LOOPBACK, '-port', String(port)]);
    await server.process.waitUntilReady(
      () => new ToxiproxyClient(server.info.url).version().then(() => true),
      {
        description: `Toxiproxy to answer on ${server.info.url}`,
        timeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
        stop: () => server.stop(),
      },
    );
    return server;
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
    await ToxiproxyServer.stopPid(this.info.pid, this.info.binary, graceMs);
  }

  /** Stop a server known only by pid (lab.json); `binary` guards against pid reuse. */
  static stopPid(pid: number, binary?: string, graceMs = 5_000) {
    return terminatePid(pid, { graceMs, marker: binary ?? 'server' });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    signalPid(this.info.pid, signal);
  }
}
