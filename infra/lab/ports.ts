/** TCP ports for lab components: free-port discovery and reachability checks, all on 127.0.0.1. */
import { createConnection, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** Whether nothing listens on `port` (by trying to bind it on 127.0.0.1). */
export function isPortFree(port: number, host = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => {
      server.close(() => resolve(true));
    });
  });
}

/** A port the kernel considers free right now. Another process may take it before it is used. */
export function findFreePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

/**
 * Hands out distinct ports: `preferred` when it is free and not handed out yet, else any free port.
 * With `strict`, a busy preferred port is an error instead (the user asked for that exact port).
 */
export class PortAllocator {
  private readonly taken = new Set<number>();

  constructor(private readonly strict = false) {}

  async allocate(preferred?: number, what = 'a component'): Promise<number> {
    if (preferred !== undefined && preferred > 0) {
      if (!this.taken.has(preferred) && (await isPortFree(preferred))) return this.take(preferred);
      if (this.strict) {
        throw new Error(
          `port ${preferred} for ${what} is in use: choose another --base-port or stop what uses it`,
        );
      }
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await findFreePort();
      if (!this.taken.has(port)) return this.take(port);
    }
    throw new Error(`could not find a free port for ${what}`);
  }

  private take(port: number): number {
    this.taken.add(port);
    return port;
  }
}

/** Whether a TCP connection to host:port succeeds within `timeoutMs`. */
export function canConnect(port: number, host = LOOPBACK, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
