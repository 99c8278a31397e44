/**
 * Write load for fault tests and the checks that follow it.
 *
 * {@link Workload} runs writers against every region (or a front door): PUTs and some DELETEs on a
 * key space the regions share, so writes overlap and conflict. Every acknowledged write is recorded
 * with the version (ETag) the region gave it. {@link verifyAfterHeal} then checks, on the regions'
 * databases, what the design brief promises after heal and drain:
 *
 * - convergence: every region holds identical rows (values, stamps, vectors, tombstones);
 * - nothing acknowledged is lost: each acked write's key holds that version or a higher one, and the
 *   same version means the same value (a lower version means the write was lost);
 * - no resurrection: an acked delete is never followed by a live row with a lower version.
 */
import { compareStamps, parseStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { dumpItems, type StoredItem } from '../../shared/db/queries/item.js';
import type pg from 'pg';
import { waitFor } from './harness.js';

export interface AckedWrite {
  readonly region: string;
  readonly key: string;
  readonly kind: 'put' | 'delete';
  readonly value?: unknown;
  readonly stamp: HlcStamp;
}

export interface PhaseStats {
  requests: number;
  acked: number;
  /** 5xx answers. */
  serverErrors: number;
  /** No HTTP answer at all (connection refused or reset, timeout). */
  networkErrors: number;
  /** Other non-2xx answers (404 on deleting a missing key, 412…): expected, not failures. */
  otherStatus: number;
  /** First and last failure (5xx or network), ms since the workload started. */
  firstFailureMs: number | null;
  lastFailureMs: number | null;
}

export interface WorkloadOptions {
  /** Target per writer group: region name → base URL (a front door may appear as its own "region"). */
  readonly targets: Readonly<Record<string, string>>;
  readonly collection: string;
  /** Size of the shared key space. @default 40 */
  readonly keys?: number;
  /** @default 2 */
  readonly writersPerTarget?: number;
  /** Share of operations that are deletes. @default 0.15 */
  readonly deleteRatio?: number;
  readonly random: () => number;
  /** Per-request deadline. @default 10000 */
  readonly requestTimeoutMs?: number;
  /** Pause between a writer's requests. @default 0 */
  readonly thinkMs?: number;
}

const emptyPhase = (): PhaseStats => ({
  requests: 0,
  acked: 0,
  serverErrors: 0,
  networkErrors: 0,
  otherStatus: 0,
  firstFailureMs: null,
  lastFailureMs: null,
});

export class Workload {
  readonly acked: AckedWrite[] = [];
  readonly phases = new Map<string, PhaseStats>();
  /** The first few failures (5xx or no answer), for the test output. */
  readonly failureSamples: string[] = [];
  /**
   * Label counted against from now on (e.g. `cut`); change it to split the statistics. A request
   * counts in the phase current when its answer (or failure) arrives.
   */
  phase = 'before';
  private running = false;
  private writers: Promise<void>[] = [];
  private readonly startedAt = Date.now();
  private seq = 0;

  constructor(readonly options: WorkloadOptions) {}

  start(): void {
    this.running = true;
    for (const [target, url] of Object.entries(this.options.targets)) {
      for (let w = 0; w < (this.options.writersPerTarget ?? 2); w++)
        this.writers.push(this.writer(target, url, w));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.writers);
  }

  get totalAcked(): number {
    return this.acked.length;
  }

  /** Statistics of one phase (zeros if it never ran). */
  stats(phase: string): PhaseStats {
    return this.phases.get(phase) ?? emptyPhase();
  }

  /** All phases summed. */
  total(): PhaseStats {
    const t = emptyPhase();
    for (const p of this.phases.values()) {
      t.requests += p.requests;
      t.acked += p.acked;
      t.serverErrors += p.serverErrors;
      t.networkErrors += p.networkErrors;
      t.otherStatus += p.otherStatus;
    }
    return t;
  }

  private record(phase: string, outcome: 'acked' | 'server' | 'network' | 'other', detail?: string): void {
    let p = this.phases.get(phase);
    if (p === undefined) this.phases.set(phase, (p = emptyPhase()));
    p.requests += 1;
    if (outcome === 'acked') p.acked += 1;
    else if (outcome === 'other') p.otherStatus += 1;
    else {
      if (outcome === 'server') p.serverErrors += 1;
      else p.networkErrors += 1;
      const at = Date.now() - this.startedAt;
      if (this.failureSamples.length < 5) this.failureSamples.push(`${phase} +${at}ms: ${detail ?? outcome}`);
      p.firstFailureMs ??= at;
      p.lastFailureMs = at;
    }
  }

  private async writer(target: string, url: string, w: number): Promise<void> {
    const { collection, random } = this.options;
    const keys = this.options.keys ?? 40;
    while (this.running) {
      const key = `k${Math.floor(random() * keys)}`;
      const isDelete = random() < (this.options.deleteRatio ?? 0.15);
      const value = { by: target, w, seq: ++this.seq };
      try {
        const res = await fetch(`${url}/v1/items/${collection}/${key}`, {
          method: isDelete ? 'DELETE' : 'PUT',
          headers: isDelete ? {} : { 'content-type': 'application/json' },
          body: isDelete ? undefined : JSON.stringify(value),
          signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000),
        });
        await res.body?.cancel();
        const etag = res.headers.get('etag');
        if (res.status < 300 && etag !== null) {
          const stamp = parseStamp(etag.replace(/^"|"$/g, ''));
          if (stamp === undefined) throw new Error(`unparsable ETag ${etag}`);
          this.acked.push({
            region: target,
            key,
            kind: isDelete ? 'delete' : 'put',
            ...(isDelete ? {} : { value }),
            stamp,
          });
          this.record(this.phase, 'acked');
        } else {
          this.record(this.phase, res.status >= 500 ? 'server' : 'other', `HTTP ${res.status}`);
        }
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        this.record(
          this.phase,
          'network',
          `${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`,
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      if (this.options.thinkMs) await new Promise((r) => setTimeout(r, this.options.thinkMs));
    }
  }
}

/** Rows that must converge: everything but the region-local `updatedAt`. */
export type ReplicatedRow = Omit<StoredItem, 'updatedAt'>;

export async function replicatedRows(db: pg.Pool): Promise<ReplicatedRow[]> {
  return (await dumpItems(db)).map(({ updatedAt: _u, ...rest }) => rest);
}

async function outboxDrained(db: pg.Pool): Promise<boolean> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  return rows[0]!.n === 0;
}

/**
 * Wait until every region's outbox is empty and all hold identical rows; returns the rows and how
 * long it took. On timeout, fails naming the divergent keys.
 */
export async function waitForConvergence(
  dbs: Readonly<Record<string, pg.Pool>>,
  timeoutMs = 60_000,
): Promise<{ rows: ReplicatedRow[]; ms: number }> {
  const started = Date.now();
  let last: Record<string, ReplicatedRow[]> = {};
  try {
    const rows = await waitFor(
      'every region to drain its outbox and hold identical rows',
      async () => {
        const names = Object.keys(dbs);
        const drained = await Promise.all(names.map((n) => outboxDrained(dbs[n]!)));
        last = Object.fromEntries(
          await Promise.all(names.map(async (n) => [n, await replicatedRows(dbs[n]!)] as const)),
        );
        if (!drained.every(Boolean)) return undefined;
        return divergentKeys(last).length === 0 ? last[names[0]!] : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
    return { rows: rows, ms: Date.now() - started };
  } catch (err) {
    const keys = divergentKeys(last);
    throw new Error(
      `${(err as Error).message}; ${keys.length} divergent keys: ${keys.slice(0, 20).join(', ')}`,
      { cause: err },
    );
  }
}

/** `collection/key` of every row that differs between regions (or exists in only some). */
export function divergentKeys(states: Readonly<Record<string, readonly ReplicatedRow[]>>): string[] {
  const byKey = new Map<string, string[]>();
  const regions = Object.keys(states);
  regions.forEach((region, i) => {
    for (const row of states[region]!) {
      const id = `${row.collection}/${row.key}`;
      const list = byKey.get(id) ?? Array<string>(regions.length).fill('');
      list[i] = JSON.stringify(row);
      byKey.set(id, list);
    }
  });
  return [...byKey.entries()].filter(([, list]) => new Set(list).size > 1).map(([id]) => id);
}

export interface Verdict {
  acked: number;
  ackedDeletes: number;
  /** Acked writes whose key ends with a lower version, or the same version with another value. */
  lost: number;
  /** Acked deletes whose key ends alive with a lower version than the delete. */
  resurrected: number;
  /** Acked writes that are the final version of their key. */
  current: number;
  /** Acked writes overwritten by a higher version (later write, or conflict winner). */
  superseded: number;
  examples: string[];
}

/** Check every acked write of `collection` against the converged rows. */
export function verifyAcked(
  acked: readonly AckedWrite[],
  rows: readonly ReplicatedRow[],
  collection: string,
): Verdict {
  const final = new Map(rows.filter((r) => r.collection === collection).map((r) => [r.key, r]));
  const v: Verdict = {
    acked: acked.length,
    ackedDeletes: 0,
    lost: 0,
    resurrected: 0,
    current: 0,
    superseded: 0,
    examples: [],
  };
  for (const a of acked) {
    if (a.kind === 'delete') v.ackedDeletes += 1;
    const row = final.get(a.key);
    const describe = () =>
      `${a.kind} ${a.key}@${a.stamp.wall}.${a.stamp.logical}.${a.stamp.region} → ${row ? `${row.deleted ? 'tombstone' : 'live'}@${row.hlc.wall}.${row.hlc.logical}.${row.hlc.region}` : 'missing'}`;
    if (row === undefined) {
      v.lost += 1;
      if (v.examples.length < 10) v.examples.push(describe());
      continue;
    }
    const order = compareStamps(row.hlc, a.stamp);
    if (order > 0) {
      v.superseded += 1;
    } else if (
      order === 0 &&
      (a.kind === 'delete' ? row.deleted : !row.deleted && canonical(row.value) === canonical(a.value))
    ) {
      v.current += 1;
    } else {
      if (a.kind === 'delete' && !row.deleted) v.resurrected += 1;
      else v.lost += 1;
      if (v.examples.length < 10) v.examples.push(describe());
    }
  }
  return v;
}

/** JSON with object keys sorted (PostgreSQL's jsonb does not keep the client's key order). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : v,
  );
}

/** Duplicate or stale deliveries the regions applied as no-ops (from their metrics: since each process started). */
export async function staleDeliveries(urls: readonly string[]): Promise<number> {
  let total = 0;
  for (const url of urls) {
    try {
      const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3_000) })).text();
      for (const m of text.matchAll(
        /^hothot_applied_events_total\{[^}]*outcome="stale"[^}]*\} (\d+(?:\.\d+)?)$/gm,
      ))
        total += Number(m[1]);
    } catch {
      // a region that does not answer contributes nothing
    }
  }
  return total;
}

/**
 * Duplicate or stale deliveries applied as no-ops during a scenario, from the regions' metrics,
 * sampled every 250 ms so that a region restarted meanwhile (its counters start again at 0) is
 * still counted: at most the last 250 ms before a kill are missed.
 */
export class StaleDeliveryCounter {
  private readonly last = new Map<string, number>();
  private readonly base = new Map<string, number>();
  private readonly start = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();

  constructor(private readonly urls: readonly string[]) {}

  async begin(): Promise<void> {
    for (const url of this.urls) {
      const v = await staleDeliveries([url]);
      this.start.set(url, v);
      this.last.set(url, v);
      this.base.set(url, 0);
    }
    this.timer = setInterval(() => {
      this.sampling = this.sampling.then(() => this.sample());
    }, 250);
  }

  /** Stop sampling; the number of stale deliveries since {@link begin}. */
  async end(): Promise<number> {
    clearInterval(this.timer);
    await this.sampling;
    await this.sample();
    let total = 0;
    for (const url of this.urls) total += this.base.get(url)! + this.last.get(url)! - this.start.get(url)!;
    return total;
  }

  private async sample(): Promise<void> {
    for (const url of this.urls) {
      let text: string;
      try {
        text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
      } catch {
        continue; // down (killed, restarting): keep the last value
      }
      let v = 0;
      for (const m of text.matchAll(
        /^hothot_applied_events_total\{[^}]*outcome="stale"[^}]*\} (\d+(?:\.\d+)?)$/gm,
      ))
        v += Number(m[1]);
      const last = this.last.get(url)!;
      if (v < last) this.base.set(url, this.base.get(url)! + last); // restarted: its counter began again
      this.last.set(url, v);
    }
  }
}

/** GET `${url}/v1/status` as loose JSON. */
export async function regionStatus(url: string): Promise<RegionStatusView> {
  const res = await fetch(`${url}/v1/status`, { signal: AbortSignal.timeout(3_000) });
  if (res.status !== 200) throw new Error(`GET ${url}/v1/status answered ${res.status}`);
  return (await res.json()) as RegionStatusView;
}

export interface RegionStatusView {
  region: string;
  peers: {
    region: string;
    state: 'up' | 'suspect' | 'down';
    heartbeatAgeMs: number | null;
    lagMs: number | null;
  }[];
  brokerLink: { state: 'up' | 'down' | 'unknown' } | null;
  outbox: { rows: number; oldestAgeMs: number };
  relay: { consecutiveFailures: number; passRunningMs: number | null } | null;
  applier: { consuming: boolean; crashes?: number; lagMessages?: number | null } | null;
}
