/**
 * Steady reads and writes through the front door, open loop: requests go out on schedule whether or
 * not earlier ones answered (a closed loop would slow down during an outage and hide it). Every write
 * creates its own key (`w<seq>`) with a value naming it, so "is this acknowledged write in that
 * region" is one lookup; reads ask for a key whose write was acknowledged.
 *
 * A request is served when it gets an answer below 500 within the timeout (a read answered 404 — the
 * write has not reached that region yet — is served, and counted apart). Not served: 5xx (HAProxy's
 * 503 when no region is up, 502 when a region died mid-request), a network error, or the timeout.
 */
export interface RequestRecord {
  readonly kind: 'write' | 'read';
  /** ms since the load started. */
  readonly sentAt: number;
  readonly doneAt: number;
  /** HTTP status, or 0 for a network error or timeout. */
  readonly status: number;
  /** Without a status: whether the client gave up (timeout) or the connection failed. */
  readonly error?: 'timeout' | 'network';
  readonly served: boolean;
}

export interface FrontDoorLoadOptions {
  readonly url: string;
  readonly collection: string;
  /** `Authorization` header value (the lab's admin key as a bearer token). */
  readonly authorization: string;
  readonly writesPerS: number;
  readonly readsPerS: number;
  /** @default 3000 */
  readonly timeoutMs?: number;
  readonly random: () => number;
}

const TICK_MS = 5;
/** Above this many requests in flight new ones are recorded as not served (the client, not the service, is stuck). */
const MAX_IN_FLIGHT = 500;

export class FrontDoorLoad {
  readonly records: RequestRecord[] = [];
  /** Acknowledged writes: key → the value written. */
  readonly acked = new Map<string, { seq: number }>();
  private readonly ackedKeys: string[] = [];
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private writes = 0;
  private reads = 0;

  constructor(private readonly options: FrontDoorLoadOptions) {}

  /** Wall-clock time (Date.now()) at which the load started. */
  get start(): number {
    return this.startedAt;
  }

  begin(): void {
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  /** Stop sending; wait for what is in flight. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
  }

  private tick(): void {
    const elapsed = Date.now() - this.startedAt;
    while (this.writes < (elapsed * this.options.writesPerS) / 1000) this.send('write', this.writes++);
    while (this.reads < (elapsed * this.options.readsPerS) / 1000) {
      this.reads++;
      if (this.ackedKeys.length > 0) this.send('read', -1);
    }
  }

  private send(kind: 'write' | 'read', seq: number): void {
    const sentAt = Date.now() - this.startedAt;
    if (this.inFlight.size >= MAX_IN_FLIGHT) {
      this.records.push({ kind, sentAt, doneAt: sentAt, status: 0, served: false });
      return;
    }
    const key =
      kind === 'write'
        ? `w${seq}`
        : this.ackedKeys[Math.floor(this.options.random() * this.ackedKeys.length)]!;
    const url = `${this.options.url}/v1/items/${this.options.collection}/${key}`;
    const init: RequestInit = {
      method: kind === 'write' ? 'PUT' : 'GET',
      headers: {
        authorization: this.options.authorization,
        ...(kind === 'write' ? { 'content-type': 'application/json' } : {}),
      },
      ...(kind === 'write' ? { body: JSON.stringify({ seq }) } : {}),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 3_000),
    };
    const done = fetch(url, init)
      .then(async (res) => {
        await res.body?.cancel();
        return { status: res.status };
      })
      .catch((e: unknown) => ({
        status: 0,
        error: (e as Error).name === 'TimeoutError' ? ('timeout' as const) : ('network' as const),
      }))
      .then(({ status, error }: { status: number; error?: 'timeout' | 'network' }) => {
        const served = status > 0 && status < 500;
        const doneAt = Date.now() - this.startedAt;
        this.records.push({
          kind,
          sentAt,
          doneAt,
          status,
          served,
          ...(error !== undefined ? { error } : {}),
        });
        if (kind === 'write' && status >= 200 && status < 300) {
          this.acked.set(key, { seq });
          this.ackedKeys.push(key);
        }
      });
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
  }
}
