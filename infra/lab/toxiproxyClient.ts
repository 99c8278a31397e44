/**
 * A minimal client of Toxiproxy's HTTP API: proxies and their toxics, what the lab needs and nothing
 * more (brokerLinkProxies.ts drives it).
 */

/** Generous: removing a latency toxic waits for the delayed bytes of its connections. */
const API_TIMEOUT_MS = 20_000;

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
