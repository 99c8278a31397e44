/**
 * Is this region's link to Kafka up? A cheap probe answers it within a few seconds, which kafkajs
 * itself cannot: under a cut link a publish only fails at its deadline (10 s by default) and a
 * blackholed send never fails at all.
 *
 * Every interval the monitor opens a fresh TCP connection to the bootstrap address — the region's
 * own proxy in the lab, the same path the producer and consumer use — (with TLS: completes a TLS
 * handshake, verifying the broker's certificate against the CA), sends one Kafka `ApiVersions`
 * request and waits for the matching answer under a short deadline. Kafka answers ApiVersions before
 * SASL authentication, so the probe needs no credentials. A fresh connection each time
 * means a stale or wedged socket can never make a healed link look cut, or a cut one look healed.
 * Two failures in a row make the link `down`; one answer, or an acknowledged publish, makes it `up`.
 */
import { EventEmitter } from 'node:events';
import { Socket, isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../logging/logger.js';

export const LinkState = { Unknown: 'unknown', Up: 'up', Down: 'down' } as const;
export type LinkState = (typeof LinkState)[keyof typeof LinkState];

/** Failed probes in a row that make the link `down`. */
export const DOWN_AFTER_FAILED_PROBES = 2;
const API_VERSIONS_KEY = 18;

/** What `/v1/status` shows about the broker link. */
export interface BrokerLinkSnapshot {
  readonly state: LinkState;
  /** When the state last changed (ISO), or null while unknown. */
  readonly since: string | null;
  readonly lastProbeOkAt: string | null;
  readonly lastProbeRttMs: number | null;
  readonly consecutiveProbeFailures: number;
  readonly lastProbeError: string | null;
  /** Last time Kafka acknowledged a publish of this process (ISO), or null. */
  readonly lastPublishOkAt: string | null;
}

export interface BrokerLinkEvents {
  stateChanged: [state: LinkState, previous: LinkState];
  probed: [result: { ok: boolean; rttMs: number; error?: string }];
}

export interface BrokerLinkMonitorOptions {
  /** Bootstrap addresses (`host:port`); the link is up when any answers. */
  readonly brokers: readonly string[];
  /** @default 1000 */
  readonly intervalMs?: number;
  /**
   * The interval while the link is down: short, so that a healed link is seen (and the relay and
   * applier woken from their backoff) within a fraction of a second. A probe is one TCP connect and
   * one ApiVersions round trip. @default 200, never more than `intervalMs`
   */
  readonly downIntervalMs?: number;
  /** Deadline of one probe (connect + answer). @default 1500 */
  readonly timeoutMs?: number;
  readonly clientId?: string;
  /** The broker speaks TLS: verify it against this CA (PEM). Absent: PLAINTEXT. */
  readonly tls?: ProbeTls;
  readonly log: Logger;
}

/** TLS of a probe: the CA certificate(s) the broker's certificate must chain to (PEM). */
export interface ProbeTls {
  readonly ca: string;
}

/**
 * One TLS context per CA, made at the first probe: parsing the CA for every probe cost ~3 ms of CPU
 * each (a catch-up's CPU profile, probing every 200 ms while the link was cut).
 */
const secureContexts = new WeakMap<ProbeTls, SecureContext>();

function secureContextOf(tls: ProbeTls): SecureContext {
  let context = secureContexts.get(tls);
  if (context === undefined) {
    context = createSecureContext({ ca: tls.ca });
    secureContexts.set(tls, context);
  }
  return context;
}

export class BrokerLinkMonitor extends EventEmitter<BrokerLinkEvents> {
  private state: LinkState = LinkState.Unknown;
  private since: number | undefined;
  private failures = 0;
  private lastOk: number | undefined;
  private lastRtt: number | undefined;
  private lastError: string | undefined;
  private lastPublishOk: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: BrokerLinkMonitorOptions) {
    super();
  }

  get linkState(): LinkState {
    return this.state;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.inFlight;
  }

  /** One probe now (also the deterministic step for tests). */
  async probeOnce(): Promise<boolean> {
    const started = performance.now();
    const timeoutMs = this.options.timeoutMs ?? 1500;
    const attempts = await Promise.allSettled(
      this.options.brokers.map((b) => probeBroker(b, timeoutMs, this.options.clientId, this.options.tls)),
    );
    const rttMs = Math.round(performance.now() - started);
    const ok = attempts.some((a) => a.status === 'fulfilled');
    if (ok) {
      this.failures = 0;
      this.lastOk = Date.now();
      this.lastRtt = rttMs;
      this.lastError = undefined;
      this.transition(LinkState.Up);
    } else {
      this.failures += 1;
      const reason: unknown = attempts.find(
        (a): a is PromiseRejectedResult => a.status === 'rejected',
      )?.reason;
      this.lastError = reason instanceof Error ? reason.message : String(reason);
      if (this.failures >= DOWN_AFTER_FAILED_PROBES) this.transition(LinkState.Down);
    }
    this.emit('probed', ok ? { ok, rttMs } : { ok, rttMs, error: this.lastError ?? 'failed' });
    return ok;
  }

  /** Kafka acknowledged a publish: the link works, whatever the last probe said. */
  recordPublishOk(): void {
    this.lastPublishOk = Date.now();
    this.failures = 0;
    this.transition(LinkState.Up);
  }

  snapshot(): BrokerLinkSnapshot {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    return {
      state: this.state,
      since: iso(this.since),
      lastProbeOkAt: iso(this.lastOk),
      lastProbeRttMs: this.lastRtt ?? null,
      consecutiveProbeFailures: this.failures,
      lastProbeError: this.lastError ?? null,
      lastPublishOkAt: iso(this.lastPublishOk),
    };
  }

  private transition(next: LinkState): void {
    if (next === this.state) return;
    const previous = this.state;
    this.state = next;
    this.since = Date.now();
    const data = { state: next, previous, brokers: this.options.brokers, error: this.lastError };
    if (next === LinkState.Down) this.options.log.warn(data, 'broker link down');
    else this.options.log.info(data, 'broker link up');
    this.emit('stateChanged', next, previous);
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.inFlight = this.probeOnce()
        .then(
          () => undefined,
          (err: unknown) => this.options.log.warn({ err }, 'broker probe failed unexpectedly'),
        )
        .finally(() => {
          this.inFlight = undefined;
          // After a failed probe, confirm at once rather than an interval later: a cut shows as down
          // within interval + two deadlines (the second probe starts as the first one's deadline ends).
          const confirming = this.failures > 0 && this.state !== LinkState.Down;
          const interval = this.options.intervalMs ?? 1000;
          const down = Math.min(interval, this.options.downIntervalMs ?? 200);
          this.schedule(confirming ? 0 : this.state === LinkState.Down ? down : interval);
        });
    }, delayMs);
    this.timer.unref();
  }
}

let correlation = 0;

/**
 * One Kafka `ApiVersions` (v0) round trip on a fresh connection to `address` — over TLS when `tls` is
 * given (the handshake and the certificate check count as part of the probe); resolves with the
 * round-trip time, rejects on refusal, reset, a TLS failure, a wrong answer or the deadline. Never
 * leaves a socket behind.
 */
export function probeBroker(
  address: string,
  timeoutMs: number,
  clientId = 'hothot-probe',
  tls?: ProbeTls,
): Promise<number> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  correlation = (correlation + 1) & 0x7fffffff;
  const id = correlation;
  const client = Buffer.from(clientId, 'utf8');
  // size, api_key, api_version, correlation_id, client_id (INT16 length + bytes); v0 has no body.
  const request = Buffer.alloc(4 + 2 + 2 + 4 + 2 + client.length);
  request.writeInt32BE(request.length - 4, 0);
  request.writeInt16BE(API_VERSIONS_KEY, 4);
  request.writeInt16BE(0, 6);
  request.writeInt32BE(id, 8);
  request.writeInt16BE(client.length, 12);
  client.copy(request, 14);

  const started = performance.now();
  return new Promise<number>((resolve, reject) => {
    const socket: Socket =
      tls === undefined
        ? new Socket()
        : tlsConnect({
            host,
            port,
            secureContext: secureContextOf(tls),
            // No SNI for an IP address (RFC 6066); the certificate is checked against `host` either way.
            ...(isIP(host) === 0 ? { servername: host } : {}),
          });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(performance.now() - started);
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer from Kafka at ${address} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('error', (err: Error) => finish(new Error(`Kafka at ${address}: ${err.message}`)));
    socket.once('close', () => finish(new Error(`Kafka at ${address} closed the connection`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4) return;
      const size = received.readInt32BE(0);
      if (received.length < 4 + Math.min(size, 6)) return;
      if (size < 6 || received.readInt32BE(4) !== id) {
        finish(new Error(`Kafka at ${address} sent an unexpected answer`));
        return;
      }
      const errorCode = received.readInt16BE(8);
      finish(errorCode === 0 ? undefined : new Error(`Kafka at ${address} answered error ${errorCode}`));
    });
    if (tls === undefined) socket.connect({ host, port }, () => socket.write(request));
    else socket.once('secureConnect', () => socket.write(request));
  });
}
