/**
 * Write load for fault tests and the checks that follow it.
 *
 * {@link Workload} runs writers against every region (or a front door), in one of two modes:
 *
 * - `overwrite` (default): PUTs and some DELETEs on a key space the regions share, so writes overlap
 *   and conflict;
 * - `unique`: every PUT goes to a fresh key, and a DELETE only to a key the same writer created and
 *   had acknowledged, so no two writers ever touch one key and every acknowledged write must be
 *   found exactly: the key's last acknowledged operation is its final row, stamp and value.
 *
 * Every acknowledged write is recorded with the version (ETag) the region gave it, and every request
 * with its latency. {@link Workload.verify} then checks, on the converged rows, what the design
 * brief promises after heal and drain:
 *
 * - convergence: every region holds identical rows (values, stamps, vectors, tombstones);
 * - nothing acknowledged is lost: each acked write's key holds that version or a higher one, and the
 *   same version means the same value (a lower version means the write was lost);
 * - no resurrection: an acked delete is never followed by a live row with a lower version;
 * - in `unique` mode also: no row for a key never written (phantom), and no superseded final state.
 *
 * {@link StatusMonitor} samples every region's `/v1/status` during a fault, for the figures the
 * fault tests assert (link down, peer state, lag, backlog).
 */
import { compareStamps, formatStamp, parseStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { dumpItems, type StoredItem } from '../../shared/db/queries/item.js';
import type pg from 'pg';
import { expect } from 'vitest';
import { waitFor } from './harness.js';
import { compareConflictLogs, type ConflictLogComparison, type RegionUnderTest } from './twoRegions.js';
import { sleep } from '../../infra/lab/waitFor.js';

export interface AckedWrite {
  readonly region: string;
  readonly key: string;
  readonly kind: 'put' | 'delete';
  readonly value?: unknown;
  readonly stamp: HlcStamp;
  /** When the acknowledgement arrived (ms since the epoch). */
  readonly at: number;
}

/** One operation of a `unique`-mode writer on its own key, in the order it was sent. */
interface UniqueOp {
  readonly kind: 'put' | 'delete';
  /** The acknowledged write, or undefined when the request failed or got no answer. */
  acked?: AckedWrite;
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
  /** Slowest request (answered or not), ms, and what it was. */
  maxLatencyMs: number;
  slowest: string | null;
}

export type WorkloadMode = 'overwrite' | 'unique';

export interface WorkloadOptions {
  /** Target per writer group: region name → base URL (a front door may appear as its own "region"). */
  readonly targets: Readonly<Record<string, string>>;
  readonly collection: string;
  /** @default 'overwrite' */
  readonly mode?: WorkloadMode;
  /** Size of the shared key space (`overwrite` mode). @default 40 */
  readonly keys?: number;
  /** @default 2 */
  readonly writersPerTarget?: number;
  /** Share of operations that are deletes. @default 0.15 (`overwrite`), 0.1 (`unique`) */
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
  maxLatencyMs: 0,
  slowest: null,
});

function addInto(t: PhaseStats, p: PhaseStats): void {
  t.requests += p.requests;
  t.acked += p.acked;
  t.serverErrors += p.serverErrors;
  t.networkErrors += p.networkErrors;
  t.otherStatus += p.otherStatus;
  if (p.firstFailureMs !== null) t.firstFailureMs = Math.min(t.firstFailureMs ?? Infinity, p.firstFailureMs);
  if (p.lastFailureMs !== null) t.lastFailureMs = Math.max(t.lastFailureMs ?? -Infinity, p.lastFailureMs);
  if (p.maxLatencyMs > t.maxLatencyMs) {
    t.maxLatencyMs = p.maxLatencyMs;
    t.slowest = p.slowest;
  }
}

export class Workload {
  readonly acked: AckedWrite[] = [];
  /** Statistics per phase, all targets together. */
  readonly phases = new Map<string, PhaseStats>();
  /** The first few failures (5xx or no answer), for the test output. */
  readonly failureSamples: string[] = [];
  /** Every failure (5xx or no answer): target, when the request was sent and when it failed (ms since the epoch). */
  readonly failures: {
    readonly target: string;
    readonly sentAt: number;
    readonly at: number;
    readonly detail: string;
  }[] = [];
  /**
   * Label counted against from now on (e.g. `cut`); change it to split the statistics. A request
   * counts in the phase current when its answer (or failure) arrives.
   */
  phase = 'before';
  private running = false;
  private writers: Promise<void>[] = [];
  private readonly startedAt = Date.now();
  private seq = 0;
  /** Per target, per phase. */
  private readonly byTarget = new Map<string, Map<string, PhaseStats>>();
  /** `unique` mode: every key sent, with its operations in order. */
  private readonly uniqueOps = new Map<string, UniqueOp[]>();

  constructor(readonly options: WorkloadOptions) {}

  get mode(): WorkloadMode {
    return this.options.mode ?? 'overwrite';
  }

  get collection(): string {
    return this.options.collection;
  }

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

  /** Statistics of one phase, of every target or of one (zeros if it never ran). */
  stats(phase: string, target?: string): PhaseStats {
    const map = target === undefined ? this.phases : this.byTarget.get(target);
    const p = map?.get(phase);
    if (p === undefined) return emptyPhase();
    const copy = emptyPhase();
    addInto(copy, p);
    return copy;
  }

  /** All phases summed, of every target or of one. */
  total(target?: string): PhaseStats {
    const t = emptyPhase();
    const map = target === undefined ? this.phases : this.byTarget.get(target);
    for (const p of map?.values() ?? []) addInto(t, p);
    return t;
  }

  /** Writes acknowledged by `target` whose acknowledgement arrived in [from, to]. */
  ackedBetween(target: string, from: number, to: number): number {
    return this.acked.filter((a) => a.region === target && a.at >= from && a.at <= to).length;
  }

  /** Check every acknowledged write against the converged rows (the mode's own rules). */
  verify(rows: readonly ReplicatedRow[]): Verdict {
    return this.mode === 'unique'
      ? verifyUnique(this.uniqueOps, rows, this.options.collection)
      : verifyAcked(this.acked, rows, this.options.collection);
  }

  private record(
    phase: string,
    target: string,
    outcome: 'acked' | 'server' | 'network' | 'other',
    sentAt: number,
    detail: string,
  ): void {
    const latencyMs = Date.now() - sentAt;
    if (outcome === 'server' || outcome === 'network')
      this.failures.push({ target, sentAt, at: Date.now(), detail });
    let targetPhases = this.byTarget.get(target);
    if (targetPhases === undefined) this.byTarget.set(target, (targetPhases = new Map<string, PhaseStats>()));
    const at = Date.now() - this.startedAt;
    for (const map of [this.phases, targetPhases]) {
      let p = map.get(phase);
      if (p === undefined) map.set(phase, (p = emptyPhase()));
      p.requests += 1;
      if (latencyMs > p.maxLatencyMs) {
        p.maxLatencyMs = latencyMs;
        p.slowest = `${detail} at +${at}ms took ${latencyMs}ms (${outcome})`;
      }
      if (outcome === 'acked') p.acked += 1;
      else if (outcome === 'other') p.otherStatus += 1;
      else {
        if (outcome === 'server') p.serverErrors += 1;
        else p.networkErrors += 1;
        p.firstFailureMs ??= at;
        p.lastFailureMs = at;
      }
    }
    if ((outcome === 'server' || outcome === 'network') && this.failureSamples.length < 5)
      this.failureSamples.push(`${phase} +${at}ms: ${detail}`);
  }

  /** The next operation of a writer: key and kind. */
  private next(target: string, w: number, own: string[]): { key: string; isDelete: boolean } {
    const { random } = this.options;
    if (this.mode === 'unique') {
      if (own.length > 0 && random() < (this.options.deleteRatio ?? 0.1)) {
        const [key] = own.splice(Math.floor(random() * own.length), 1);
        return { key: key!, isDelete: true };
      }
      return { key: `u-${target}-${w}-${this.seq + 1}`, isDelete: false };
    }
    const key = `k${Math.floor(random() * (this.options.keys ?? 40))}`;
    return { key, isDelete: random() < (this.options.deleteRatio ?? 0.15) };
  }

  private async writer(target: string, url: string, w: number): Promise<void> {
    const { collection } = this.options;
    /** `unique` mode: this writer's keys whose last operation, a PUT, was acknowledged. */
    const own: string[] = [];
    while (this.running) {
      const { key, isDelete } = this.next(target, w, own);
      const value = { by: target, w, seq: ++this.seq };
      const kind = isDelete ? 'delete' : 'put';
      let op: UniqueOp | undefined;
      if (this.mode === 'unique') {
        op = { kind };
        const ops = this.uniqueOps.get(key);
        if (ops === undefined) this.uniqueOps.set(key, [op]);
        else ops.push(op);
      }
      const sentAt = Date.now();
      const what = `${isDelete ? 'DELETE' : 'PUT'} ${target} ${key}`;
      try {
        const res = await fetch(`${url}/v1/items/${collection}/${key}`, {
          method: isDelete ? 'DELETE' : 'PUT',
          headers: isDelete ? {} : { 'content-type': 'application/json' },
          body: isDelete ? undefined : JSON.stringify(value),
          signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 10_000),
        });
        await res.body?.cancel();
        const at = Date.now();
        const etag = res.headers.get('etag');
        if (res.status < 300 && etag !== null) {
          const stamp = parseStamp(etag.replace(/^"|"$/g, ''));
          if (stamp === undefined) throw new Error(`unparsable ETag ${etag}`);
          const write: AckedWrite = { region: target, key, kind, ...(isDelete ? {} : { value }), stamp, at };
          this.acked.push(write);
          if (op !== undefined) {
            op.acked = write;
            if (!isDelete) own.push(key);
          }
          this.record(this.phase, target, 'acked', sentAt, what);
        } else {
          // A 4xx (a DELETE of a key the answering region has not seen yet, through a front door)
          // did nothing: in unique mode the key's state is its earlier operations'.
          if (res.status < 500 && op !== undefined) this.uniqueOps.get(key)!.pop();
          this.record(
            this.phase,
            target,
            res.status >= 500 ? 'server' : 'other',
            sentAt,
            `${what}: HTTP ${res.status}`,
          );
        }
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        // Refused: the request never reached a server, so it did nothing (unique mode: as a 4xx).
        if (cause?.code === 'ECONNREFUSED' && op !== undefined) this.uniqueOps.get(key)!.pop();
        this.record(
          this.phase,
          target,
          'network',
          sentAt,
          `${what}: ${(err as Error).message}${cause ? ` (${cause.code ?? cause.message})` : ''}`,
        );
        await sleep(20);
      }
      if (this.options.thinkMs) await sleep(this.options.thinkMs);
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
  /** `unique` mode: rows of the collection whose key no writer ever sent. */
  phantom: number;
  /** `unique` mode: keys whose last operation got no answer, so only a lower bound is checked. */
  uncertainKeys: number;
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
    phantom: 0,
    uncertainKeys: 0,
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

/**
 * `unique` mode: each key belongs to one writer, which sent its operations one after another, so the
 * key's last acknowledged operation must be its final row exactly (same stamp, same value or a
 * tombstone) — unless a later operation got no answer, and then the row must be at least as new.
 * Every earlier acknowledged operation must be superseded by a greater stamp. A row for a key no
 * writer sent is a phantom.
 */
function verifyUnique(
  ops: ReadonlyMap<string, readonly UniqueOp[]>,
  rows: readonly ReplicatedRow[],
  collection: string,
): Verdict {
  const final = new Map(rows.filter((r) => r.collection === collection).map((r) => [r.key, r]));
  const v: Verdict = {
    acked: 0,
    ackedDeletes: 0,
    lost: 0,
    resurrected: 0,
    current: 0,
    superseded: 0,
    phantom: 0,
    uncertainKeys: 0,
    examples: [],
  };
  const fail = (a: AckedWrite, row: ReplicatedRow | undefined, why: string) => {
    if (a.kind === 'delete' && row !== undefined && !row.deleted) v.resurrected += 1;
    else v.lost += 1;
    if (v.examples.length < 10)
      v.examples.push(
        `${why}: ${a.kind} ${a.key}@${formatStamp(a.stamp)} → ${row ? `${row.deleted ? 'tombstone' : 'live'}@${formatStamp(row.hlc)}` : 'missing'}`,
      );
  };
  for (const [key, list] of ops) {
    const row = final.get(key);
    const lastAcked = list.findLastIndex((o) => o.acked !== undefined);
    const certain = lastAcked === list.length - 1;
    if (!certain) v.uncertainKeys += 1;
    list.forEach((op, i) => {
      const a = op.acked;
      if (a === undefined) return;
      v.acked += 1;
      if (a.kind === 'delete') v.ackedDeletes += 1;
      if (row === undefined) return fail(a, row, 'acknowledged, then missing');
      const order = compareStamps(row.hlc, a.stamp);
      const same =
        order === 0 &&
        (a.kind === 'delete' ? row.deleted : !row.deleted && canonical(row.value) === canonical(a.value));
      if (i === lastAcked && certain) {
        if (same) v.current += 1;
        else fail(a, row, 'last acknowledged operation is not the final row');
      } else if (order > 0) v.superseded += 1;
      else if (same && i === lastAcked) v.current += 1;
      else fail(a, row, 'final row older than an acknowledged operation');
    });
  }
  for (const key of final.keys()) {
    if (ops.has(key)) continue;
    v.phantom += 1;
    if (v.examples.length < 10) v.examples.push(`phantom row ${collection}/${key}`);
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

export interface PeerStatusView {
  region: string;
  state: 'up' | 'suspect' | 'down';
  heartbeatAgeMs: number | null;
  lagMs: number | null;
  lastChangeLagMs: number | null;
  appliedEvents: number;
}

export interface RegionStatusView {
  region: string;
  /** The region's clock when it answered (ISO). */
  time: string;
  peers: PeerStatusView[];
  brokerLink: { state: 'up' | 'down' | 'unknown'; since: string | null } | null;
  outbox: { rows: number; oldestAgeMs: number };
  relay: { running: boolean; consecutiveFailures: number; passRunningMs: number | null } | null;
  processes?: { leaderPid: number | null; answeredBy: { pid: number; leader: boolean } };
  applier: {
    consuming: boolean;
    crashes?: number;
    lagMessages?: number | null;
    waitingFor?: string | null;
  } | null;
  conflicts: number;
  deadLetters: number;
  tombstones?: {
    count: number;
    gcBlockedBy: string | null;
    collected: number;
    gcHorizon: string | null;
    lastGcRunAt: string | null;
  };
}

/** One answer of a region's `/v1/status`, with when it was asked and answered (this host's clock). */
export interface StatusSample {
  readonly region: string;
  readonly sentAt: number;
  readonly at: number;
  readonly status: RegionStatusView;
}

/**
 * Samples every region's `/v1/status` about every `intervalMs` (all regions at once) until stopped.
 * Failed polls (a killed region) are skipped. The fault tests read their timelines from it: when a
 * link was reported down, when a peer turned suspect and down, how lag and backlog moved.
 */
export class StatusMonitor {
  readonly samples: StatusSample[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly urls: Readonly<Record<string, string>>,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        await Promise.all(
          Object.entries(this.urls).map(async ([region, url]) => {
            const sentAt = Date.now();
            try {
              const status = await regionStatus(url);
              this.samples.push({ region, sentAt, at: Date.now(), status });
            } catch {
              // down or restarting: no sample
            }
          }),
        );
        await sleep(Math.max(10, this.intervalMs - (Date.now() - started)));
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Samples of `region` asked at or after `from` and answered at or before `to`, oldest first. */
  of(region: string, from = 0, to = Infinity): StatusSample[] {
    return this.samples.filter((s) => s.region === region && s.sentAt >= from && s.at <= to);
  }

  /** The first sample of `region` since `from` for which `predicate` holds. */
  first(region: string, from: number, predicate: (s: RegionStatusView) => boolean): StatusSample | undefined {
    return this.of(region, from).find((s) => predicate(s.status));
  }

  /** Wait until a sample of `region` since `from` satisfies `predicate`. */
  async waitFirst(
    what: string,
    region: string,
    from: number,
    predicate: (s: RegionStatusView) => boolean,
    timeoutMs: number,
  ): Promise<StatusSample> {
    return waitFor(what, () => this.first(region, from, predicate), { timeoutMs, intervalMs: 50 });
  }
}

/** `peer`'s entry in `status.peers`, or undefined. */
export function peerOf(status: RegionStatusView, peer: string): PeerStatusView | undefined {
  return status.peers.find((p) => p.region === peer);
}

/** Every version the workloads had acknowledged, as formatted stamps. */
export function ackedVersions(loads: readonly Workload[]): Set<string> {
  return new Set(loads.flatMap((l) => l.acked.map((a) => formatStamp(a.stamp))));
}

/** What {@link checkAfterFault} found. */
export interface FaultCheck {
  readonly rows: ReplicatedRow[];
  /** From the call until every outbox was empty and every region held identical rows. */
  readonly convergedMs: number;
  /** Per workload, by collection. */
  readonly verdicts: Readonly<Record<string, Verdict>>;
  readonly conflicts: ConflictLogComparison;
  /** Requests of the workloads that failed (5xx or no answer): their writes may exist unacknowledged. */
  readonly failedRequests: number;
  /** One line for the test output. */
  readonly summary: string;
}

/**
 * After a fault and the end of the load: wait for convergence, check every workload's acknowledged
 * writes, and compare the regions' conflict logs over the workloads' collections.
 */
export async function checkAfterFault(
  regions: readonly RegionUnderTest[],
  loads: readonly Workload[],
  timeoutMs = 90_000,
): Promise<FaultCheck> {
  const dbs = Object.fromEntries(regions.map((r) => [r.name, r.db]));
  const { rows, ms } = await waitForConvergence(dbs, timeoutMs);
  const verdicts = Object.fromEntries(loads.map((l) => [l.collection, l.verify(rows)]));
  const conflicts = await compareConflictLogs(regions, {
    collections: loads.map((l) => l.collection),
    knownVersions: ackedVersions(loads),
    finalRows: rows,
  });
  const failedRequests = loads.reduce((n, l) => {
    const t = l.total();
    return n + t.serverErrors + t.networkErrors;
  }, 0);
  const parts = loads.map((l) => {
    const v = verdicts[l.collection]!;
    return l.mode === 'unique'
      ? `unique: acked=${v.acked} (deletes ${v.ackedDeletes}) exact=${v.current} superseded=${v.superseded} lost=${v.lost} resurrected=${v.resurrected} phantom=${v.phantom} uncertainKeys=${v.uncertainKeys}`
      : `overwrite: acked=${v.acked} (deletes ${v.ackedDeletes}) current=${v.current} superseded=${v.superseded} lost=${v.lost} resurrected=${v.resurrected}`;
  });
  const counts = Object.entries(conflicts.counts)
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  const summary =
    `${parts.join('; ')}; divergentKeys=0 converged=${ms}ms; conflict logs: ${counts} ` +
    `(identical in all ${conflicts.common}, items ${conflicts.conflictedKeys}, unknown versions ${conflicts.unknownVersions}, problems ${conflicts.problems.length})`;
  return { rows, convergedMs: ms, verdicts, conflicts, failedRequests, summary };
}

/**
 * The invariants every fault test asserts on a {@link FaultCheck}: each workload had writes
 * acknowledged and lost none, resurrected none, and (unique mode) every key ends exactly at its last
 * acknowledged operation with no phantom; the conflict logs agree (see compareConflictLogs), unique
 * keys never conflict, and every logged version was acknowledged — or belongs to a failed request.
 */
export function expectSound(check: FaultCheck, loads: readonly Workload[]): void {
  for (const l of loads) {
    const v = check.verdicts[l.collection]!;
    expect(v.examples, `${l.collection}: examples`).toEqual([]);
    expect(v.acked, `${l.collection}: acked`).toBeGreaterThan(0);
    // Deletes among them, or "nothing resurrected" would be empty.
    expect(v.ackedDeletes, `${l.collection}: acked deletes`).toBeGreaterThan(0);
    // A key is uncertain only when its last operation failed.
    expect(v.uncertainKeys, `${l.collection}: uncertain keys`).toBeLessThanOrEqual(check.failedRequests);
    expect(v.lost, `${l.collection}: lost`).toBe(0);
    expect(v.resurrected, `${l.collection}: resurrected`).toBe(0);
    expect(v.phantom, `${l.collection}: phantom rows`).toBe(0);
    expect(v.current + v.superseded, `${l.collection}: current + superseded`).toBe(v.acked);
    const logged = check.conflicts.byCollection[l.collection] ?? {};
    if (l.mode === 'unique') {
      expect(v.current, `${l.collection}: exact keys`).toBeGreaterThan(0);
      for (const [region, n] of Object.entries(logged))
        expect(n, `${l.collection}: conflicts in ${region} on keys with one writer`).toBe(0);
    } else {
      // Shared keys written concurrently in several regions: every region logged conflicts.
      for (const region of Object.keys(check.conflicts.counts))
        expect(logged[region] ?? 0, `${l.collection}: conflicts in ${region}`).toBeGreaterThan(0);
    }
  }
  expect(check.conflicts.common).toBeLessThanOrEqual(Math.min(...Object.values(check.conflicts.counts)));
  expect(check.conflicts.problems).toEqual([]);
  expect(check.conflicts.unknownVersions).toBeLessThanOrEqual(check.failedRequests);
}
