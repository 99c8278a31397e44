/**
 * What the lab console shows, polled from the running lab recorded in `<root>/lab.json`: each region's
 * process and readiness, its `/v1/status` (peers, broker link, outbox, conflicts, dead letters) and a
 * few rates from its `/metrics`, its broker link as Toxiproxy has it, the front door, the latest
 * conflicts (`/v1/conflicts`) and dead letters (the region's `dead_letter` table: no endpoint serves
 * them), and a history of per-peer state and lag and of the outbox backlog over the last minutes.
 *
 * Requests carry the lab's admin API key (the file lab.json names); nothing it keeps is a secret, so
 * snapshots can go to the page as they are. lab.json is read again on every poll: a region restarted
 * by `hothot lab restart` runs under a new pid.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { formatStamp, type HlcStamp } from '../../../shared/domain/hlc.js';
import { labDatabaseUrl } from '../lab.js';
import { readLabState, type LabState } from '../labState.js';
import { isPidAlive } from '../processes.js';
import { httpOk } from '../regionProcess.js';
import { BrokerLinkProxies, type BrokerLinkProxyState } from '../brokerLinkProxies.js';

/** How often the lab is polled. */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** How much history the charts get. */
export const DEFAULT_HISTORY_MS = 5 * 60_000;
const REQUEST_TIMEOUT_MS = 1_500;
const LATEST = 15;
/** Conflicts older than this when the console starts are not fetched. */
const CONFLICTS_LOOKBACK_MS = 60 * 60_000;

export interface PeerView {
  readonly region: string;
  readonly state: string;
  readonly lagMs: number | null;
}

/** One region as the console shows it. */
export interface RegionView {
  readonly region: string;
  readonly url: string;
  readonly pid: number;
  /** Its process exists. */
  readonly alive: boolean;
  /** `/readyz` answered 200. */
  readonly ready: boolean;
  /** Its broker link as Toxiproxy has it: `up`, `reset` or `blackhole` (cut), added latency. */
  readonly proxy: { readonly state: BrokerLinkProxyState['state']; readonly latencyMs: number } | null;
  /** Its broker link as the region itself reports it (`up`, `down`, `unknown`); null when it did not answer. */
  readonly brokerLink: string | null;
  readonly peers: readonly PeerView[];
  readonly outbox: { readonly rows: number; readonly oldestAgeMs: number; readonly heldRows: number } | null;
  readonly conflicts: number | null;
  readonly deadLetters: number | null;
  /** Per second since the previous poll, from `/metrics`. */
  readonly rates: {
    readonly requests: number;
    readonly published: number;
    readonly applied: number;
  } | null;
  /** Why `/v1/status` gave nothing (the region is down, slow, or refused the key). */
  readonly problem: string | null;
}

export interface ConflictView {
  readonly region: string;
  readonly id: string;
  readonly detectedAt: string;
  readonly collection: string;
  readonly key: string;
  readonly rule: string;
  readonly winner: string;
  readonly loser: string;
}

export interface DeadLetterView {
  readonly region: string;
  readonly id: string;
  readonly receivedAt: string;
  readonly code: string;
  readonly where: string;
  readonly reason: string;
}

/** One point of the charts. */
export interface HistoryPoint {
  readonly t: number;
  readonly regions: Readonly<
    Record<
      string,
      {
        readonly ready: boolean;
        readonly outboxRows: number | null;
        readonly peers: Readonly<Record<string, { readonly state: string; readonly lagMs: number | null }>>;
      }
    >
  >;
}

export interface LabSnapshot {
  readonly at: string;
  readonly root: string;
  readonly running: boolean;
  readonly regionNames: readonly string[];
  readonly frontDoor: { readonly url: string; readonly ready: boolean } | null;
  readonly regions: readonly RegionView[];
  readonly conflicts: readonly ConflictView[];
  readonly deadLetters: readonly DeadLetterView[];
  readonly point: HistoryPoint;
}

interface StatusBody {
  brokerLink: { state: string } | null;
  peers: { region: string; state: string; lagMs: number | null }[];
  outbox: { rows: number; oldestAgeMs: number; heldRows: number };
  conflicts: number;
  deadLetters: number;
}

interface ConflictBody {
  conflicts: {
    id: string;
    collection: string;
    key: string;
    rule: string;
    detectedAt: string;
    winner?: { hlc?: HlcStamp };
    loser?: { hlc?: HlcStamp };
  }[];
  next: string | null;
}

type Counters = { requests: number; published: number; applied: number; at: number };

export interface LabMonitorOptions {
  /** Directory of lab.json. */
  readonly root: string;
  readonly pollIntervalMs?: number;
  readonly historyMs?: number;
}

/** Polls the lab; `onSnapshot` listeners get every new snapshot. */
export class LabMonitor {
  private readonly pollIntervalMs: number;
  private readonly historyMs: number;
  private readonly listeners = new Set<(s: LabSnapshot) => void>();
  private readonly points: HistoryPoint[] = [];
  private readonly counters = new Map<string, Counters>();
  private readonly conflictCursor = new Map<string, string | undefined>();
  private conflicts: ConflictView[] = [];
  private readonly deadLetterCount = new Map<string, number>();
  private deadLetters: DeadLetterView[] = [];
  private readonly pools = new Map<string, pg.Pool>();
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private latestSnapshot: LabSnapshot | undefined;
  private stopped = false;

  constructor(private readonly options: LabMonitorOptions) {
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    this.historyMs = options.historyMs ?? DEFAULT_HISTORY_MS;
  }

  get latest(): LabSnapshot | undefined {
    return this.latestSnapshot;
  }

  get history(): readonly HistoryPoint[] {
    return this.points;
  }

  onSnapshot(listener: (s: LabSnapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Poll once now, then every interval. */
  async start(): Promise<void> {
    await this.pollNow();
    const loop = () => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        void this.pollNow().finally(loop);
      }, this.pollIntervalMs);
    };
    loop();
  }

  /** One poll (a poll already under way is awaited instead of starting another). */
  pollNow(): Promise<void> {
    this.running ??= this.poll()
      .catch(() => undefined)
      .finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await Promise.allSettled([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
  }

  private async poll(): Promise<void> {
    const state = readLabState(this.options.root);
    const snapshot = state === undefined ? this.emptySnapshot() : await this.observe(state);
    this.points.push(snapshot.point);
    const horizon = Date.now() - this.historyMs;
    while (this.points.length > 0 && this.points[0]!.t < horizon) this.points.shift();
    this.latestSnapshot = snapshot;
    for (const l of this.listeners) l(snapshot);
  }

  private emptySnapshot(): LabSnapshot {
    return {
      at: new Date().toISOString(),
      root: this.options.root,
      running: false,
      regionNames: [],
      frontDoor: null,
      regions: [],
      conflicts: this.conflicts,
      deadLetters: this.deadLetters,
      point: { t: Date.now(), regions: {} },
    };
  }

  private async observe(state: LabState): Promise<LabSnapshot> {
    const key = readKey(state.adminKeyFile);
    const links =
      state.toxiproxy !== undefined
        ? await new BrokerLinkProxies(state.toxiproxy.url).states().catch(() => [] as BrokerLinkProxyState[])
        : [];
    const [regions, frontDoorReady] = await Promise.all([
      Promise.all(state.regionNames.map((name) => this.observeRegion(state, name, key, links))),
      state.frontDoor !== undefined ? httpOk(`${state.frontDoor.url}/readyz`, REQUEST_TIMEOUT_MS) : false,
    ]);
    await Promise.all([
      ...state.regionNames.map((name) => this.fetchConflicts(state, name, key)),
      ...regions.map((r) => this.fetchDeadLetters(state, r)),
    ]);
    const t = Date.now();
    return {
      at: new Date(t).toISOString(),
      root: this.options.root,
      running: true,
      regionNames: state.regionNames,
      frontDoor: state.frontDoor !== undefined ? { url: state.frontDoor.url, ready: frontDoorReady } : null,
      regions,
      conflicts: this.conflicts,
      deadLetters: this.deadLetters,
      point: {
        t,
        regions: Object.fromEntries(
          regions.map((r) => [
            r.region,
            {
              ready: r.ready,
              outboxRows: r.outbox?.rows ?? null,
              peers: Object.fromEntries(r.peers.map((p) => [p.region, { state: p.state, lagMs: p.lagMs }])),
            },
          ]),
        ),
      },
    };
  }

  private async observeRegion(
    state: LabState,
    name: string,
    key: string | undefined,
    links: readonly BrokerLinkProxyState[],
  ): Promise<RegionView> {
    const info = state.regions[name]!;
    const alive = info.pid > 0 && isPidAlive(info.pid);
    const link = links.find((l) => l.region === name);
    const headers = key !== undefined ? { authorization: `Bearer ${key}` } : undefined;
    const [ready, status, metrics] = await Promise.all(
      [
        alive ? httpOk(`${info.url}/readyz`, REQUEST_TIMEOUT_MS) : false,
        alive
          ? getJson<StatusBody>(`${info.url}/v1/status`, headers)
          : Promise.reject(new Error('not running')),
        alive ? getText(`${info.url}/metrics`, headers) : Promise.reject(new Error('not running')),
      ].map((p) => Promise.resolve(p).then(ok, fail)) as [
        Promise<Outcome<boolean>>,
        Promise<Outcome<StatusBody>>,
        Promise<Outcome<string>>,
      ],
    );
    const s = status.ok ? status.value : undefined;
    return {
      region: name,
      url: info.url,
      pid: info.pid,
      alive,
      ready: ready.ok && ready.value,
      proxy: link !== undefined ? { state: link.state, latencyMs: link.latencyMs } : null,
      brokerLink: s?.brokerLink?.state ?? null,
      peers: (s?.peers ?? []).map((p) => ({ region: p.region, state: p.state, lagMs: p.lagMs })),
      outbox:
        s !== undefined
          ? { rows: s.outbox.rows, oldestAgeMs: s.outbox.oldestAgeMs, heldRows: s.outbox.heldRows }
          : null,
      conflicts: s?.conflicts ?? null,
      deadLetters: s?.deadLetters ?? null,
      rates: metrics.ok ? this.rates(name, metrics.value) : null,
      problem: status.ok ? null : status.error,
    };
  }

  /** Per-second rates since the previous poll of this region's counters (null on the first). */
  private rates(region: string, text: string): RegionView['rates'] {
    const now: Counters = {
      requests: sumMetric(text, 'hothot_http_requests_total'),
      published: sumMetric(text, 'hothot_outbox_published_total'),
      applied: sumMetric(text, 'hothot_applied_events_total'),
      at: Date.now(),
    };
    const before = this.counters.get(region);
    this.counters.set(region, now);
    if (before === undefined || now.at <= before.at) return null;
    const per = (a: number, b: number) => Math.max(0, ((a - b) * 1000) / (now.at - before.at));
    return {
      requests: per(now.requests, before.requests),
      published: per(now.published, before.published),
      applied: per(now.applied, before.applied),
    };
  }

  /** New conflicts of `name` since the last poll (from an hour before the console started). */
  private async fetchConflicts(state: LabState, name: string, key: string | undefined): Promise<void> {
    const url = state.regions[name]!.url;
    const headers = key !== undefined ? { authorization: `Bearer ${key}` } : undefined;
    try {
      for (let page = 0; page < 20; page++) {
        const cursor = this.conflictCursor.get(name);
        const query =
          cursor !== undefined
            ? `after=${cursor}`
            : `since=${new Date(this.startedAt - CONFLICTS_LOOKBACK_MS).toISOString()}`;
        const body = await getJson<ConflictBody>(`${url}/v1/conflicts?${query}&limit=1000`, headers);
        const last = body.conflicts.at(-1);
        if (last !== undefined) this.conflictCursor.set(name, last.id);
        else if (cursor === undefined) this.conflictCursor.set(name, '0');
        this.conflicts = [
          ...body.conflicts.slice(-LATEST).map((c): ConflictView => ({
            region: name,
            id: c.id,
            detectedAt: c.detectedAt,
            collection: c.collection,
            key: c.key,
            rule: c.rule,
            winner: c.winner?.hlc !== undefined ? formatStamp(c.winner.hlc) : '?',
            loser: c.loser?.hlc !== undefined ? formatStamp(c.loser.hlc) : '?',
          })),
          ...this.conflicts,
        ]
          .sort((a, b) => b.detectedAt.localeCompare(a.detectedAt))
          .slice(0, LATEST);
        if (body.next === null) return;
      }
    } catch {
      // The region is down: its conflicts come on a later poll.
    }
  }

  /** The latest dead letters of a region whose count changed (read from its database). */
  private async fetchDeadLetters(state: LabState, region: RegionView): Promise<void> {
    const count = region.deadLetters;
    if (count === null || count === (this.deadLetterCount.get(region.region) ?? 0)) return;
    try {
      let pool = this.pools.get(region.region);
      if (pool === undefined) {
        pool = new pg.Pool({
          connectionString: labDatabaseUrl(state, region.region),
          max: 1,
          application_name: 'hothot-lab-console',
        });
        pool.on('error', () => undefined);
        this.pools.set(region.region, pool);
      }
      const { rows } = await pool.query<{
        id: string;
        topic: string;
        partition: number;
        offset: string;
        reason: string;
        code: string;
        receivedAt: Date;
      }>(
        `SELECT id, topic, partition, "offset", reason, code, received_at AS "receivedAt"
           FROM dead_letter ORDER BY id DESC LIMIT $1`,
        [LATEST],
      );
      this.deadLetterCount.set(region.region, count);
      this.deadLetters = [
        ...rows.map((r): DeadLetterView => ({
          region: region.region,
          id: String(r.id),
          receivedAt: r.receivedAt.toISOString(),
          code: r.code,
          where: `${r.topic}[${r.partition}]@${r.offset}`,
          reason: r.reason.slice(0, 300),
        })),
        ...this.deadLetters.filter((d) => d.region !== region.region),
      ]
        .sort((a, b) => b.receivedAt.localeCompare(a.receivedAt))
        .slice(0, LATEST);
    } catch {
      // Its database is down: next poll.
    }
  }
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Outcome<T> => ({ ok: true, value });
const fail = (e: unknown): Outcome<never> => ({
  ok: false,
  error: e instanceof Error ? e.message : String(e),
});

function readKey(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

async function getText(url: string, headers: Record<string, string> | undefined): Promise<string> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${new URL(url).pathname}: HTTP ${res.status}`);
  return text;
}

async function getJson<T>(url: string, headers: Record<string, string> | undefined): Promise<T> {
  return JSON.parse(await getText(url, headers)) as T;
}

/** Sum of every sample of `name` in a Prometheus text exposition. */
export function sumMetric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}
