/**
 * The Toxiproxy server process (the binary from toxiproxyBinary.ts), listening on 127.0.0.1 and
 * started once its HTTP API answers.
 */
import { ManagedServer, SERVER_STOP_GRACE_MS } from './managedServer.js';
import { LOOPBACK, findFreePort } from './ports.js';
import { terminatePid } from './processes.js';
import { ToxiproxyClient } from './toxiproxyClient.js';
import { ensureToxiproxy } from './toxiproxyBinary.js';

const DEFAULT_READY_TIMEOUT_MS = 20_000;

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

export class ToxiproxyServer extends ManagedServer<ToxiproxyServerInfo> {
  private constructor(info: ToxiproxyServerInfo, detached: boolean) {
    super(info, 'Toxiproxy', detached, info.binary);
  }

  /** Build if needed, start the server on 127.0.0.1 and wait until its API answers. */
  static async start(options: ToxiproxyServerOptions): Promise<ToxiproxyServer> {
    const binary = options.binary ?? (await ensureToxiproxy({ onBuildStart: options.onBuildStart }));
    const port = options.port ?? (await findFreePort());
    const server = new ToxiproxyServer(
      { pid: 0, port, url: `http://${LOOPBACK}:${port}`, binary, logFile: options.logFile },
      options.detached ?? false,
    );
    await server.launch(
      binary,
      ['-host', LOOPBACK, '-port', String(port)],
      () => new ToxiproxyClient(server.info.url).version().then(() => true),
      {
        description: `Toxiproxy to answer on ${server.info.url}`,
        timeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      },
    );
    return server;
  }

  /** Stop a server known only by pid (lab.json); `binary` guards against pid reuse. */
  static stopPid(pid: number, binary?: string, graceMs = SERVER_STOP_GRACE_MS) {
    return terminatePid(pid, { graceMs, marker: binary ?? 'server' });
  }
}
