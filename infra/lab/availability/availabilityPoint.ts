/**
 * One point of the availability study: on a running lab with a front door, steady reads and writes
 * through the door while a seeded chaos schedule (chaosSchedule.ts) SIGKILLs region processes and
 * restarts them, so each region is down a fraction P of the time. Measures the fraction of requests
 * served, failover times, the return after a total outage, and writes lost: after the run every region
 * is restarted and every acknowledged write must be present, with its value, in every region.
 *
 * A region is killed at the start of each of its scheduled outages and its restart begins early by
 * the restart time measured so far, so that it is ready about when the outage ends; what actually
 * happened (kill → ready again) is reported as the realized down time next to the scheduled one.
 */
import type { Lab } from '../lab.js';
import { seededRandom } from '../seededRandom.js';
import { sleep } from '../waitFor.js';
import { chaosSchedule, intersectAll, isDownAt, measure, merge, type Interval } from './chaosSchedule.js';
import { FrontDoorLoad } from './frontDoorLoad.js';

/**
 * Requests failing this long after a kill while another region was up (and before the killed one is
 * back, or all are down) count toward its failover.
 */
const FAILOVER_WINDOW_MS = 10_000;
/** First guess of how long a restart takes (kill → ready), before one is measured. */
const FIRST_RESTART_ESTIMATE_MS = 2_000;
const LIST_LIMIT = 1000;

export interface AvailabilityPointOptions {
  readonly p: number;
  readonly durationMs: number;
  readonly seed: number;
  /** @default 20 */
  readonly writesPerS?: number;
  /** @default 20 */
  readonly readsPerS?: number;
  /** Target length of one outage. @default 12000 */
  readonly outageMs?: number;
  /** Deadline for every acknowledged write to be in every region after the run. @default 120000 */
  readonly verifyTimeoutMs?: number;
  readonly log?: (message: string) => void;
}

export interface Distribution {
  readonly count: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

export interface AvailabilityPoint {
  readonly n: number;
  readonly regions: readonly string[];
  readonly p: number;
  readonly seed: number;
  readonly durationMs: number;
  readonly scheduled: {
    readonly allDownFraction: number;
    readonly anyDownFraction: number;
    readonly outages: number;
  };
  readonly realized: {
    /** Per region: fraction of the run from kill to ready again. */
    readonly downFraction: Readonly<Record<string, number>>;
    readonly meanDownFraction: number;
    /** Fraction of the run during which no region process was up (killed or not yet ready). */
    readonly allDownFraction: number;
    readonly kills: number;
  };
  readonly requests: number;
  readonly served: number;
  readonly servedFraction: number;
  /** Not served while some region was up (failover) / while none was (total outage). */
  readonly unservedWhileSomeUp: number;
  readonly unservedWhileAllDown: number;
  /** Requests not served, by HTTP status or `timeout` / `network`. */
  readonly unservedBy: Readonly<Record<string, number>>;
  /** Per second of the run: requests sent and not served (the run's timeline). */
  readonly timeline: readonly { readonly s: number; readonly sent: number; readonly unserved: number }[];
  readonly writes: { readonly sent: number; readonly acked: number };
  readonly reads: { readonly sent: number; readonly served: number; readonly notFound: number };
  /** Per kill while another region was up: from the kill to the end of the last request it made fail. */
  readonly failoverMs: Distribution;
  /** Per total outage: from the first region ready again to the first request served. */
  readonly returnMs: Distribution;
  /** Start of a restart → ready (`/readyz` 200), per restart. */
  readonly restartMs: Distribution;
  readonly writesLost: number;
  /** After the run: until every acknowledged write was in every region. */
  readonly verifiedAfterMs: number;
  /** The two formulas at the scheduled P and at the realized mean P. */
  readonly model: {
    readonly anyUp: number;
    readonly allUp: number;
    readonly anyUpRealized: number;
    readonly allUpRealized: number;
    /** 1 − realized all-down fraction: the availability these very outages allow with instant failover. */
    readonly outagesAllow: number;
  };
}

export async function measureAvailabilityPoint(
  lab: Lab,
  options: AvailabilityPointOptions,
): Promise<AvailabilityPoint> {
  const log = options.log ?? (() => undefined);
  const regions = lab.state.regionNames;
  const door = lab.state.frontDoor?.url;
  if (door === undefined) throw new Error('the availability study needs the lab to run with its front door');
  const { p, durationMs, seed } = options;
  const schedule = chaosSchedule({
    seed,
    regions,
    p,
    durationMs,
    ...(options.outageMs !== undefined ? { outageMs: options.outageMs } : {}),
  });
  const collection = `avail-n${regions.length}-p${Math.round(p * 1000)}-s${seed}`;
  const authorization = `Bearer ${lab.adminKey.token}`;
  const load = new FrontDoorLoad({
    url: door,
    collection,
    authorization,
    writesPerS: options.writesPerS ?? 20,
    readsPerS: options.readsPerS ?? 20,
    random: seededRandom(seed ^ 0x5bd1e995),
  });

  const realized: Record<string, Interval[]> = Object.fromEntries(regions.map((r) => [r, []]));
  const kills: { region: string; at: number }[] = [];
  const restarts: number[] = [];
  let restartEstimateMs = FIRST_RESTART_ESTIMATE_MS;
  load.begin();
  const t0 = load.start;
  const now = () => Date.now() - t0;
  const until = async (ms: number) => {
    const wait = ms - now();
    if (wait > 0) await sleep(wait);
  };
  const stamp = () => `${(now() / 1000).toFixed(1).padStart(5)} s`;

  await Promise.all(
    regions.map(async (name) => {
      for (const outage of schedule.down[name]!) {
        await until(outage.from);
        const region = lab.region(name);
        const exited = region.waitForExit();
        region.kill('SIGKILL');
        const killAt = now();
        kills.push({ region: name, at: killAt });
        log(`${stamp()}  kill ${name} (down until ${(outage.to / 1000).toFixed(1)} s)`);
        await exited;
        if (outage.to >= durationMs) {
          realized[name]!.push({ from: killAt, to: durationMs });
          continue; // down until the end: restarted after the run
        }
        await until(Math.max(killAt, outage.to - restartEstimateMs));
        const restartAt = now();
        await region.restart();
        const readyAt = now();
        restarts.push(readyAt - restartAt);
        restartEstimateMs = (restartEstimateMs + (readyAt - restartAt)) / 2;
        realized[name]!.push({ from: killAt, to: readyAt });
        log(`${stamp()}  ${name} ready again (restart took ${((readyAt - restartAt) / 1000).toFixed(1)} s)`);
      }
    }),
  );
  await until(durationMs);
  await load.stop();
  log(`load stopped: ${load.records.length} requests; restarting what is down and checking every write`);

  for (const name of regions) {
    const region = lab.region(name);
    if (!region.isRunning()) {
      const t = Date.now();
      await region.restart();
      restarts.push(Date.now() - t);
    }
  }

  // Only requests sent within the run count (the load stops at durationMs); in send order.
  const records = load.records.filter((r) => r.sentAt < durationMs).sort((a, b) => a.sentAt - b.sentAt);
  const down = Object.fromEntries(regions.map((r) => [r, merge(clip(realized[r]!, durationMs))]));
  const allDown = intersectAll(regions.map((r) => down[r]!));
  const served = records.filter((r) => r.served).length;
  const unserved = records.filter((r) => !r.served);
  const whileAllDown = unserved.filter((r) => isDownAt(allDown, r.sentAt)).length;

  const failover: number[] = [];
  for (const kill of kills) {
    const othersUp = regions.some((r) => r !== kill.region && !isDownAt(down[r]!, kill.at));
    if (!othersUp) continue;
    const nextAllDown = allDown.find((i) => i.from > kill.at)?.from ?? durationMs;
    const back = down[kill.region]!.find((i) => i.from <= kill.at && kill.at < i.to)?.to ?? durationMs;
    const windowEnd = Math.min(kill.at + FAILOVER_WINDOW_MS, nextAllDown, back, durationMs);
    const failed = unserved.filter((r) => r.doneAt >= kill.at && r.sentAt < windowEnd);
    failover.push(failed.length === 0 ? 0 : Math.max(...failed.map((r) => r.doneAt)) - kill.at);
  }
  const returns: number[] = [];
  for (const outage of allDown) {
    if (outage.to >= durationMs) continue;
    const first = records.find((r) => r.served && r.sentAt >= outage.to);
    if (first !== undefined) returns.push(first.sentAt - outage.to);
  }

  const verified = await verifyWrites(lab, collection, load.acked, authorization, options.verifyTimeoutMs);
  log(
    `every acknowledged write checked in ${regions.join(', ')}: ${verified.lost} lost (${(verified.ms / 1000).toFixed(1)} s)`,
  );

  const downFraction = Object.fromEntries(regions.map((r) => [r, measure(down[r]!) / durationMs]));
  const meanDown = regions.reduce((s, r) => s + downFraction[r]!, 0) / regions.length;
  const n = regions.length;
  const writes = records.filter((r) => r.kind === 'write');
  const reads = records.filter((r) => r.kind === 'read');
  const allDownFraction = measure(allDown) / durationMs;
  return {
    n,
    regions,
    p,
    seed,
    durationMs,
    scheduled: {
      allDownFraction: schedule.allDownFraction,
      anyDownFraction: schedule.anyDownFraction,
      outages: Object.values(schedule.down).reduce((s, d) => s + d.length, 0),
    },
    realized: { downFraction, meanDownFraction: meanDown, allDownFraction, kills: kills.length },
    requests: records.length,
    served,
    servedFraction: records.length === 0 ? 0 : served / records.length,
    unservedWhileSomeUp: unserved.length - whileAllDown,
    unservedWhileAllDown: whileAllDown,
    unservedBy: countBy(unserved.map((r) => (r.status > 0 ? String(r.status) : (r.error ?? 'network')))),
    timeline: Array.from({ length: Math.ceil(durationMs / 1000) }, (_, s) => {
      const inSecond = records.filter((r) => Math.floor(r.sentAt / 1000) === s);
      return { s, sent: inSecond.length, unserved: inSecond.filter((r) => !r.served).length };
    }),
    writes: { sent: writes.length, acked: load.acked.size },
    reads: {
      sent: reads.length,
      served: reads.filter((r) => r.served).length,
      notFound: reads.filter((r) => r.status === 404).length,
    },
    failoverMs: distribution(failover),
    returnMs: distribution(returns),
    restartMs: distribution(restarts),
    writesLost: verified.lost,
    verifiedAfterMs: verified.ms,
    model: {
      anyUp: 1 - p ** n,
      allUp: (1 - p) ** n,
      anyUpRealized: 1 - meanDown ** n,
      allUpRealized: (1 - meanDown) ** n,
      outagesAllow: 1 - allDownFraction,
    },
  };
}

function countBy(values: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

function clip(intervals: readonly Interval[], end: number): Interval[] {
  return intervals.map((i) => ({ from: Math.max(0, i.from), to: Math.min(end, i.to) }));
}

/** p50 / p99 / max (nearest rank) of `values`. */
export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { count: 0, p50: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted.at(-1)! };
}

/**
 * Poll every region's listing of `collection` until each acknowledged write is there with its value,
 * or the deadline passes; the writes still missing somewhere then are lost.
 */
async function verifyWrites(
  lab: Lab,
  collection: string,
  acked: ReadonlyMap<string, { seq: number }>,
  authorization: string,
  timeoutMs = 120_000,
): Promise<{ lost: number; ms: number }> {
  const started = Date.now();
  let missing = acked.size;
  for (;;) {
    missing = 0;
    for (const name of lab.state.regionNames) {
      const items = await listCollection(lab.region(name).url, collection, authorization).catch(
        () => new Map<string, unknown>(),
      );
      for (const [key, value] of acked) {
        const have = items.get(key) as { seq?: number } | undefined;
        if (have?.seq !== value.seq) missing++;
      }
    }
    if (missing === 0 || Date.now() - started > timeoutMs) break;
    await sleep(500);
  }
  // A write counts once however many regions lack it: recount by key.
  if (missing > 0) {
    const lostKeys = new Set<string>();
    for (const name of lab.state.regionNames) {
      const items = await listCollection(lab.region(name).url, collection, authorization).catch(
        () => new Map<string, unknown>(),
      );
      for (const [key, value] of acked)
        if ((items.get(key) as { seq?: number } | undefined)?.seq !== value.seq) lostKeys.add(key);
    }
    missing = lostKeys.size;
  }
  return { lost: missing, ms: Date.now() - started };
}

async function listCollection(
  url: string,
  collection: string,
  authorization: string,
): Promise<Map<string, unknown>> {
  const items = new Map<string, unknown>();
  let after: string | null = '';
  while (after !== null) {
    const res = await fetch(
      `${url}/v1/items/${collection}?limit=${LIST_LIMIT}${after !== '' ? `&after=${encodeURIComponent(after)}` : ''}`,
      { headers: { authorization }, signal: AbortSignal.timeout(10_000) },
    );
    if (!res.ok) throw new Error(`listing ${collection}: HTTP ${res.status}`);
    const body = (await res.json()) as { items: { key: string; value: unknown }[]; next: string | null };
    for (const item of body.items) items.set(item.key, item.value);
    after = body.next;
  }
  return items;
}
