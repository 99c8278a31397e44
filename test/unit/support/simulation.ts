/**
 * A model of N regions replicating a few items of each merge policy, built from the production
 * domain functions only (shared/domain). A region writes as services/api/useCases/writeItem.ts
 * does: it reads the item's current version, observes its stamp, stamps the write, bumps its own
 * entry of the vector and builds the new version with the policy's own `build`
 * (shared/domain/policies/); the row becomes that version and one event carrying it goes to every
 * peer. A peer applies an event as the applier does: it
 * observes the event's stamp, merges with `mergeItem` and stores the result when it changed, and
 * records the conflicts returned in its own conflict log.
 *
 * The network between regions is explicit: every write puts one delivery per peer in flight; a
 * schedule delivers them in any order, delivers some again (duplicates), holds some back and
 * redelivers them later (drop-then-redeliver), and cuts regions off (partition) until a heal. At the
 * end everything still outstanding is delivered in an arbitrary order, with duplicates.
 *
 * {@link checkWorld} then states what must hold of the final states and the conflict logs, against
 * an oracle computed from the set of writes alone.
 */
import fc from 'fast-check';
import { compareStamps, formatStamp, HybridLogicalClock, type HlcStamp } from '../../../shared/domain/hlc.js';
import {
  Causality,
  compareVectors,
  incrementVector,
  mergeVectors,
  type VersionVector,
} from '../../../shared/domain/versionVector.js';
import { Policy } from '../../../shared/domain/mergePolicy.js';
import {
  covers,
  isFieldsState,
  type Dot,
  type FieldEntry,
  type FieldsState,
} from '../../../shared/domain/policies/fieldsState.js';
import { counterVersion } from '../../../shared/domain/policies/counter.js';
import { fieldsVersion } from '../../../shared/domain/policies/fields.js';
import type { WriteOperation } from '../../../shared/domain/policies/policyRules.js';
import { POLICY_REGISTRY } from '../../../shared/domain/policies/registry.js';
import {
  mergeItem,
  type MergeResult,
  type PolicyConflict,
  type PolicyVersion,
} from '../../../shared/domain/mergeItem.js';

// ---------------------------------------------------------------------------------------------
// Schedules

/** Region ids, in the order regions are taken (2 to 4 of them). Not sorted, so id order ≠ index order. */
export const REGION_NAMES = ['us', 'eu', 'ap', 'sa'] as const;

export interface SimItem {
  /** `collection/key`. */
  readonly id: string;
  readonly policy: Policy;
}

/** One item per policy: few items, so that writes to one item race often. */
export const ITEMS = {
  lww: { id: 'notes/n1', policy: Policy.Lww },
  fields: { id: 'profiles/p1', policy: Policy.Fields },
  counter: { id: 'likes/c1', policy: Policy.Counter },
} as const satisfies Record<Policy, SimItem>;
const ITEM_LIST: readonly SimItem[] = Object.values(ITEMS);

/** Field names of `fields` items and of counters: few, so that writes of one field race often. */
export const FIELD_NAMES = ['a', 'b', 'c'] as const;
export const COUNTER_FIELDS = ['x', 'y'] as const;

export type Op =
  | { readonly op: 'put'; readonly value: unknown }
  | { readonly op: 'delete' }
  | { readonly op: 'patch'; readonly patch: Readonly<Record<string, unknown>> }
  | { readonly op: 'increment'; readonly field: string; readonly by: number };

export type Step =
  /** Region `region` (index modulo the region count) writes `item`. */
  | { readonly kind: 'write'; readonly item: string; readonly region: number; readonly op: Op }
  /** One in-flight delivery, chosen among those the partitions let through, arrives. */
  | { readonly kind: 'deliver'; readonly pick: number }
  /** Every in-flight delivery to region `to` the partitions let through arrives, oldest first. */
  | { readonly kind: 'flush'; readonly to: number }
  /** A delivery that already arrived arrives again. */
  | { readonly kind: 'duplicate'; readonly pick: number }
  /** An in-flight delivery is held back (lost for now); `redeliver` or the end brings it. */
  | { readonly kind: 'drop'; readonly pick: number }
  | { readonly kind: 'redeliver'; readonly pick: number }
  /** Region `region` is cut off: it neither receives nor sends until `heal`. */
  | { readonly kind: 'partition'; readonly region: number }
  | { readonly kind: 'heal' }
  /** Shared physical time moves (backwards too). */
  | { readonly kind: 'tick'; readonly by: number }
  /** One region's physical clock jumps to a new offset from shared time (NTP step, either way). */
  | { readonly kind: 'drift'; readonly region: number; readonly offset: number };

export interface Schedule {
  readonly regions: readonly string[];
  readonly start: number;
  /** Initial offset of each region's physical clock from shared time. */
  readonly offsets: readonly number[];
  readonly steps: readonly Step[];
  /** Sort keys putting the final delivery of everything outstanding in an arbitrary order. */
  readonly finalOrder: readonly number[];
  /** Extra final deliveries (indices into every delivery ever made or outstanding): duplicates. */
  readonly finalDuplicates: readonly number[];
}

/** Largest clock offset and backward tick: every lead stays far below the HLC's maximum skew. */
export const MAX_OFFSET_MS = 3_000;
export const MAX_SKEW_MS = 60_000;

const plain = { noNullPrototype: true } as const;

const smallValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: 0, max: 9 }),
  fc.constantFrom('x', 'y'),
  fc.record(
    { n: fc.integer({ min: 0, max: 9 }), m: fc.integer({ min: 0, max: 9 }) },
    { ...plain, requiredKeys: [] },
  ),
);

/** A patch of one field: a value, `null` (remove the field), or a nested merge patch. */
const fieldPatch: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: smallValue },
  { weight: 1, arbitrary: fc.constant(null) },
  {
    weight: 1,
    arbitrary: fc.record(
      { n: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant(null)), m: fc.integer({ min: 0, max: 9 }) },
      { ...plain, requiredKeys: [] },
    ),
  },
);

const fieldsObject = (v: fc.Arbitrary<unknown>): fc.Arbitrary<Record<string, unknown>> =>
  fc.record({ a: v, b: v, c: v }, { ...plain, requiredKeys: [] });

const region = fc.nat(3);

const lwwWrite: fc.Arbitrary<Step> = fc.record({
  kind: fc.constant('write' as const),
  item: fc.constant(ITEMS.lww.id),
  region,
  op: fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('put' as const), value: smallValue }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const) }) },
  ),
});

const fieldsWrite: fc.Arbitrary<Step> = fc.record({
  kind: fc.constant('write' as const),
  item: fc.constant(ITEMS.fields.id),
  region,
  op: fc.oneof(
    { weight: 2, arbitrary: fc.record({ op: fc.constant('put' as const), value: fieldsObject(smallValue) }) },
    {
      weight: 4,
      arbitrary: fc.record({ op: fc.constant('patch' as const), patch: fieldsObject(fieldPatch) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const) }) },
  ),
});

const counterWrite: fc.Arbitrary<Step> = fc.record({
  kind: fc.constant('write' as const),
  item: fc.constant(ITEMS.counter.id),
  region,
  op: fc.record({
    op: fc.constant('increment' as const),
    field: fc.constantFrom(...COUNTER_FIELDS),
    by: fc.integer({ min: -3, max: 5 }),
  }),
});

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: lwwWrite },
  { weight: 4, arbitrary: fieldsWrite },
  { weight: 1, arbitrary: counterWrite },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const), to: region }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redeliver' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('partition' as const), region }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('heal' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      // Often 0, so that regions stamp equal walls.
      by: fc.oneof(fc.constant(0), fc.integer({ min: -50, max: 400 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('drift' as const),
      region,
      offset: fc.integer({ min: -MAX_OFFSET_MS, max: MAX_OFFSET_MS }),
    }),
  },
);

/** Prints one step per line, so a shrunk counterexample reads as a schedule. */
function withReadableToString(s: Schedule): Schedule {
  return Object.defineProperty({ ...s }, fc.toStringMethod, {
    value: () => formatSchedule(s),
    enumerable: false,
  });
}

export const scheduleArb = (
  options: { minSteps?: number; maxSteps?: number; minRegions?: number; maxRegions?: number } = {},
) =>
  fc
    .record({
      regionCount: fc.integer({ min: options.minRegions ?? 2, max: options.maxRegions ?? 4 }),
      start: fc.constant(1_700_000_000_000),
      // Often 0, so that regions stamp equal walls.
      offsets: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -MAX_OFFSET_MS, max: MAX_OFFSET_MS })), {
        minLength: 4,
        maxLength: 4,
      }),
      steps: fc.array(stepArb, {
        minLength: options.minSteps ?? 0,
        maxLength: options.maxSteps ?? 30,
        size: 'max',
      }),
      finalOrder: fc.array(fc.nat(999), { maxLength: 60, size: 'medium' }),
      finalDuplicates: fc.array(fc.nat(), { maxLength: 20 }),
    })
    .map(({ regionCount, offsets, ...rest }) =>
      withReadableToString({
        ...rest,
        regions: REGION_NAMES.slice(0, regionCount),
        offsets: offsets.slice(0, regionCount),
      }),
    );

// ---------------------------------------------------------------------------------------------
// The world

export interface WriteRecord {
  /** Index in {@link World.writes}; also the id of its event. */
  readonly id: number;
  readonly item: SimItem;
  readonly region: string;
  readonly op: Op;
  /** The version the writer stored and shipped. */
  readonly version: PolicyVersion;
  readonly dot: Dot;
}

interface Delivery {
  readonly event: WriteRecord;
  readonly to: number;
}

export interface LoggedConflict {
  /** Region whose conflict log holds the record. */
  readonly region: string;
  readonly item: string;
  readonly conflict: PolicyConflict;
}

export interface Replica {
  readonly region: string;
  readonly clock: HybridLogicalClock;
  readonly rows: Map<string, PolicyVersion>;
  readonly conflicts: LoggedConflict[];
}

export interface ApplyRecord {
  readonly at: string;
  readonly event: WriteRecord;
  readonly local: PolicyVersion | undefined;
  readonly merge: MergeResult;
}

export class World {
  readonly replicas: Replica[];
  readonly writes: WriteRecord[] = [];
  readonly refused: { region: string; item: string; op: Op }[] = [];
  /** What happened, one line per write or application: printed with a failure. */
  readonly trace: string[] = [];
  private now: number;
  private readonly offsets: number[];
  private pending: Delivery[] = [];
  private held: Delivery[] = [];
  private readonly delivered: Delivery[] = [];
  private readonly cut = new Set<number>();

  constructor(
    readonly schedule: Schedule,
    private readonly onApply: (r: ApplyRecord) => void = () => {},
    /** Keep {@link trace} (off by default: a failing schedule is replayed with it on). */
    private readonly tracing = false,
  ) {
    this.now = schedule.start;
    this.offsets = schedule.regions.map((_, i) => schedule.offsets[i] ?? 0);
    this.replicas = schedule.regions.map((region, i) => ({
      region,
      clock: new HybridLogicalClock(region, {
        physicalNow: () => this.now + this.offsets[i]!,
        maxSkewMs: MAX_SKEW_MS,
      }),
      rows: new Map(),
      conflicts: [],
    }));
  }

  private index(region: number): number {
    return region % this.replicas.length;
  }

  /** The writer's path (writeItem.ts): under the item's lock, read, observe, stamp, bump, build. */
  write(item: SimItem, regionIndex: number, op: Op): WriteRecord | undefined {
    const i = this.index(regionIndex);
    const r = this.replicas[i]!;
    const cur = r.rows.get(item.id);
    if (op.op === 'delete' && (cur === undefined || cur.deleted)) {
      // 404: a delete of a missing or deleted item is not a write.
      this.refused.push({ region: r.region, item: item.id, op });
      if (this.tracing) this.trace.push(`${r.region}: ${formatOp(item, op)} refused (404: no live item)`);
      return undefined;
    }
    if (cur !== undefined) r.clock.observe(cur.hlc);
    const hlc = r.clock.now();
    const vv = incrementVector(cur?.vv ?? {}, r.region);
    const dot: Dot = { region: r.region, n: vv[r.region]! };
    const version = POLICY_REGISTRY[item.policy].build(cur, operationOf(op), { hlc, vv, region: r.region });
    r.rows.set(item.id, version);
    const w: WriteRecord = { id: this.writes.length, item, region: r.region, op, version, dot };
    this.writes.push(w);
    this.replicas.forEach((_, to) => to !== i && this.pending.push({ event: w, to }));
    if (this.tracing)
      this.trace.push(`w${w.id} ${r.region}: ${formatOp(item, op)} → ${formatVersion(version)}`);
    return w;
  }

  /** The applier's path: observe the event's stamp, merge, store when changed, log conflicts. */
  apply(d: Delivery, how: string): void {
    const r = this.replicas[d.to]!;
    const item = d.event.item.id;
    const incoming = d.event.version;
    r.clock.observe(incoming.hlc);
    const local = r.rows.get(item);
    const merge = mergeItem(local, incoming);
    if (merge.changed) r.rows.set(item, merge.result);
    for (const conflict of merge.conflicts) r.conflicts.push({ region: r.region, item, conflict });
    if (this.tracing)
      this.trace.push(
        `  ${how} w${d.event.id} → ${r.region}: ${merge.outcome}${merge.changed ? ` → ${formatVersion(merge.result)}` : ''}` +
          merge.conflicts.map((c) => `\n      conflict ${formatConflict(c)}`).join(''),
      );
    this.onApply({ at: r.region, event: d.event, local, merge });
  }

  private open(d: Delivery): boolean {
    return !this.cut.has(d.to) && !this.cut.has(this.replicas.findIndex((r) => r.region === d.event.region));
  }

  step(s: Step): void {
    switch (s.kind) {
      case 'write': {
        const item = ITEM_LIST.find((it) => it.id === s.item);
        if (item === undefined) throw new Error(`no item ${s.item}`);
        this.write(item, s.region, s.op);
        break;
      }
      case 'deliver': {
        const open = this.pending.filter((d) => this.open(d));
        const d = open[s.pick % Math.max(1, open.length)];
        if (d === undefined) break;
        this.pending = this.pending.filter((x) => x !== d);
        this.delivered.push(d);
        this.apply(d, 'deliver');
        break;
      }
      case 'flush': {
        const to = this.index(s.to);
        const batch = this.pending.filter((d) => d.to === to && this.open(d));
        this.pending = this.pending.filter((d) => !batch.includes(d));
        for (const d of batch) {
          this.delivered.push(d);
          this.apply(d, 'flush');
        }
        break;
      }
      case 'duplicate': {
        const open = this.delivered.filter((d) => this.open(d));
        const d = open[s.pick % Math.max(1, open.length)];
        if (d !== undefined) this.apply(d, 'duplicate');
        break;
      }
      case 'drop': {
        const d = this.pending[s.pick % Math.max(1, this.pending.length)];
        if (d === undefined) break;
        this.pending = this.pending.filter((x) => x !== d);
        this.held.push(d);
        if (this.tracing)
          this.trace.push(`  drop w${d.event.id} → ${this.replicas[d.to]!.region} (held back)`);
        break;
      }
      case 'redeliver': {
        const open = this.held.filter((d) => this.open(d));
        const d = open[s.pick % Math.max(1, open.length)];
        if (d === undefined) break;
        this.held = this.held.filter((x) => x !== d);
        this.delivered.push(d);
        this.apply(d, 'redeliver');
        break;
      }
      case 'partition':
        this.cut.add(this.index(s.region));
        if (this.tracing) this.trace.push(`  partition ${this.replicas[this.index(s.region)]!.region}`);
        break;
      case 'heal':
        if (this.tracing && this.cut.size > 0) this.trace.push(`  heal`);
        this.cut.clear();
        break;
      case 'tick':
        this.now += s.by;
        break;
      case 'drift':
        this.offsets[this.index(s.region)] = s.offset;
        break;
    }
  }

  /** Heal, then deliver everything outstanding in the schedule's arbitrary order, with duplicates. */
  finish(): void {
    this.cut.clear();
    const outstanding = [...this.pending, ...this.held];
    this.pending = [];
    this.held = [];
    const everything = [...this.delivered, ...outstanding];
    const dups =
      everything.length === 0
        ? []
        : this.schedule.finalDuplicates.map((k) => everything[k % everything.length]!);
    const order = this.schedule.finalOrder;
    const all = [...outstanding, ...dups]
      // Keys repeat cyclically past the end of `finalOrder`, so every delivery gets a shuffled place.
      .map((d, j) => ({ d, key: order.length === 0 ? j : order[j % order.length]!, j }))
      .sort((a, b) => a.key - b.key || a.j - b.j);
    if (this.tracing) this.trace.push('  -- final delivery --');
    for (const { d } of all) {
      this.delivered.push(d);
      this.apply(d, 'final');
    }
  }

  run(): this {
    for (const s of this.schedule.steps) this.step(s);
    this.finish();
    return this;
  }

  conflictLog(): LoggedConflict[] {
    return this.replicas.flatMap((r) => r.conflicts);
  }
}

/** The operation a client sends for `op`. */
function operationOf(op: Op): WriteOperation {
  const { op: kind, ...rest } = op;
  return { kind, ...rest } as WriteOperation;
}

// ---------------------------------------------------------------------------------------------
// What must hold at the end

/** Fields a write to a `fields` item names: a PUT's keys, a PATCH's top-level keys. */
export function touchedFields(w: WriteRecord): string[] {
  if (w.op.op === 'put' && w.item.policy === Policy.Fields) return Object.keys(w.op.value as object).sort();
  if (w.op.op === 'patch') return Object.keys(w.op.patch).sort();
  return [];
}

/** True when write `w` changes field `f` of a `fields` item: patches it, or replaces/clears all. */
function affects(w: WriteRecord, f: string): boolean {
  return w.op.op === 'put' || w.op.op === 'delete' || (w.op.op === 'patch' && Object.hasOwn(w.op.patch, f));
}

/** `later` saw `earlier` (its vector covers `earlier`'s dot) and is not `earlier`. */
function saw(later: WriteRecord, earlier: WriteRecord): boolean {
  return later !== earlier && covers(later.version.vv, earlier.dot);
}

function maxBy<T>(xs: readonly T[], stamp: (x: T) => HlcStamp): T | undefined {
  return xs.reduce<T | undefined>(
    (m, x) => (m === undefined || compareStamps(stamp(x), stamp(m)) > 0 ? x : m),
    undefined,
  );
}

const sameStamp = (a: HlcStamp, b: HlcStamp) => compareStamps(a, b) === 0;
const sameDot = (a: Dot, b: Dot) => a.region === b.region && a.n === b.n;

/** What the final state of `item` must be, computed from the set of writes alone. */
export function oracle(item: SimItem, writes: readonly WriteRecord[]): PolicyVersion | undefined {
  const ws = writes.filter((w) => w.item === item);
  const last = maxBy(ws, (w) => w.version.hlc);
  if (last === undefined) return undefined;
  const vv = ws.map((w) => w.version.vv).reduce(mergeVectors, {});
  switch (item.policy) {
    case Policy.Lww:
      return {
        policy: Policy.Lww,
        value: last.version.value,
        deleted: last.version.deleted,
        hlc: last.version.hlc,
        vv,
      };
    case Policy.Fields: {
      // Field by field, the write with the greatest stamp among those that change the field decides.
      const fields: Record<string, FieldEntry> = {};
      for (const f of [...new Set(ws.flatMap(touchedFields))].sort()) {
        const decider = maxBy(
          ws.filter((w) => affects(w, f)),
          (w) => w.version.hlc,
        )!;
        const entry = (decider.version.crdt as FieldsState).fields[f];
        if (decider.op.op !== 'delete' && entry !== undefined && Object.hasOwn(decisionFields(decider), f))
          fields[f] = entry;
      }
      const clearing = maxBy(
        ws.filter((w) => w.op.op === 'put' || w.op.op === 'delete'),
        (w) => w.version.hlc,
      );
      const state: FieldsState = {
        exists: (last.version.crdt as FieldsState).exists,
        clearedAt: clearing?.version.hlc ?? null,
        fields,
      };
      return fieldsVersion(state, vv);
    }
    case Policy.Counter: {
      const counters: Record<string, Record<string, { p: number; n: number }>> = {};
      for (const w of ws) {
        if (w.op.op !== 'increment') continue;
        const perRegion = (counters[w.op.field] ??= {});
        const e = (perRegion[w.region] ??= { p: 0, n: 0 });
        if (w.op.by >= 0) e.p += w.op.by;
        else e.n -= w.op.by;
      }
      return counterVersion({ counters }, last.version.hlc, vv);
    }
  }
}

/** The fields a PUT or PATCH itself wrote (not those it carried over from the state it patched). */
function decisionFields(w: WriteRecord): Record<string, unknown> {
  if (w.op.op === 'put') return w.op.value as Record<string, unknown>;
  if (w.op.op === 'patch') return w.op.patch;
  return {};
}

export interface Stats {
  runs: number;
  writes: number;
  refused: number;
  /** Merge outcomes of every application. */
  outcomes: Record<string, number>;
  lwwConflicts: number;
  fieldConflicts: number;
  existenceConflicts: number;
  equalWallConflicts: number;
  /** Writes (of a field, or whole lww items) absent from the final state but recorded as losers. */
  recordedLosers: number;
  /** Deletes after every other write of their item (the no-resurrection case applies). */
  lastDeletes: number;
  /** Deletes of a `fields` item that a concurrent PATCH or PUT outlived. */
  deletesOutlived: number;
  partitions: number;
  /** lww conflict records whose loser is a write the winner saw (the loser state held more). */
  lwwRecordsOfCausalPair: number;
}

export function emptyStats(): Stats {
  return {
    runs: 0,
    writes: 0,
    refused: 0,
    outcomes: {},
    lwwConflicts: 0,
    fieldConflicts: 0,
    existenceConflicts: 0,
    equalWallConflicts: 0,
    recordedLosers: 0,
    lastDeletes: 0,
    deletesOutlived: 0,
    partitions: 0,
    lwwRecordsOfCausalPair: 0,
  };
}

/**
 * Every property the replicated state must have at the end of a schedule; returns the violations
 * (empty when all hold).
 */
export function checkWorld(world: World, stats: Stats = emptyStats()): string[] {
  const out: string[] = [];
  const log = world.conflictLog();
  stats.writes += world.writes.length;
  stats.refused += world.refused.length;
  stats.partitions += world.schedule.steps.filter((s) => s.kind === 'partition').length;

  for (const item of ITEM_LIST) {
    const writes = world.writes.filter((w) => w.item === item);
    const rows = world.replicas.map((r) => r.rows.get(item.id));
    const first = rows[0];

    // 1. Every replica holds the same version (value, deleted, stamp, vector, policy state) ...
    world.replicas.forEach((r, i) => {
      const row = rows[i];
      if (!deepEqual(core(row), core(first)))
        out.push(
          `1 ${item.id}: ${r.region} holds ${fmt(row)}, ${world.replicas[0]!.region} holds ${fmt(first)}`,
        );
      else if (
        row !== undefined &&
        first !== undefined &&
        JSON.stringify(row.vv) !== JSON.stringify(first.vv)
      )
        out.push(
          `1 ${item.id}: vector bytes differ (${JSON.stringify(row.vv)} vs ${JSON.stringify(first.vv)})`,
        );
    });
    // ... and it is the one the set of writes determines.
    const expected = oracle(item, world.writes);
    if (!deepEqual(core(first), core(expected)))
      out.push(`1 ${item.id}: final ${fmt(first)}, but the writes determine ${fmt(expected)}`);
    if (first === undefined) continue;
    const final = first;
    const itemLog = log.filter((c) => c.item === item.id);

    // 2. Every acknowledged write is present, superseded by a write that saw it, or a recorded loser.
    const supersededBy = (w: WriteRecord, f?: string) =>
      writes.some((later) => saw(later, w) && (f === undefined || affects(later, f)));
    switch (item.policy) {
      case Policy.Lww:
        for (const w of writes) {
          if (sameStamp(final.hlc, w.version.hlc) || supersededBy(w)) continue;
          if (
            itemLog.some(
              (c) => c.conflict.field === undefined && sameStamp(c.conflict.loser.hlc, w.version.hlc),
            )
          ) {
            stats.recordedLosers += 1;
            continue;
          }
          out.push(
            `2 w${w.id} (${w.region} ${formatOp(item, w.op)}) is lost: not the final version, not seen by a later write, not a recorded loser`,
          );
        }
        break;
      case Policy.Fields: {
        const crdt = final.crdt as FieldsState;
        const recordedOn = (w: WriteRecord, f: string) =>
          itemLog.some((c) => c.conflict.field === f && sameStamp(c.conflict.loser.hlc, w.version.hlc));
        /** `w`'s change of `f` is in the final state: its entry, or for a removal no value of `f`. */
        const present = (w: WriteRecord, f: string) => {
          const e = crdt.fields[f];
          return w.op.op === 'patch' && w.op.patch[f] === null
            ? e === undefined || e.deleted === true
            : e !== undefined && sameDot(e.dot, w.dot);
        };
        for (const w of writes) {
          for (const f of touchedFields(w)) {
            if (present(w, f) || supersededBy(w, f)) continue;
            if (recordedOn(w, f)) {
              stats.recordedLosers += 1;
              continue;
            }
            out.push(
              `2 w${w.id} (${w.region} ${formatOp(item, w.op)}): field ${f} is lost: not in the final state, ` +
                `not seen by a later write of the field, not a recorded loser of a conflict on ${f}`,
            );
          }
          // The item's existence: a DELETE outlived by a PUT or PATCH, or a PUT or PATCH outlived by
          // a DELETE, was seen by a later write or is the loser of a recorded item-level conflict.
          const deletes = w.op.op === 'delete';
          if (deletes === final.deleted) continue;
          if (deletes) stats.deletesOutlived += 1;
          if (supersededBy(w)) continue;
          const recorded = itemLog.some(
            (c) =>
              c.conflict.field === undefined &&
              c.conflict.loser.deleted === deletes &&
              sameStamp(c.conflict.loser.hlc, w.version.hlc),
          );
          if (!recorded)
            out.push(
              `2 w${w.id} (${w.region} ${formatOp(item, w.op)}) is lost: the item is ${final.deleted ? 'deleted' : 'alive'}, ` +
                `no later write saw this one, and no item-level conflict records it as the loser`,
            );
        }
        break;
      }
      case Policy.Counter: {
        // Counters: the exact sum of every increment, in every replica; never a conflict.
        const value = final.value as Record<string, number>;
        for (const f of COUNTER_FIELDS) {
          const sum = writes.reduce(
            (s, w) => s + (w.op.op === 'increment' && w.op.field === f ? w.op.by : 0),
            0,
          );
          const made = writes.some((w) => w.op.op === 'increment' && w.op.field === f);
          if (made ? value[f] !== sum : Object.hasOwn(value, f))
            out.push(`2 ${item.id}.${f} = ${value[f]}, increments add up to ${sum}`);
        }
        if (itemLog.length > 0)
          out.push(`2 ${item.id}: a counter recorded a conflict: ${formatConflict(itemLog[0]!.conflict)}`);
        break;
      }
    }

    // 3. No resurrection: a delete that saw every other write of its item leaves it deleted.
    for (const d of writes) {
      if (d.op.op !== 'delete' || !writes.every((w) => w === d || covers(d.version.vv, w.dot))) continue;
      stats.lastDeletes += 1;
      if (!final.deleted)
        out.push(
          `3 ${item.id} came back: w${d.id} deleted it after every other write, yet it is ${fmt(final)}`,
        );
    }
  }

  // 4. Conflict records: the greater stamp wins, the two are concurrent, and every region that
  //    records a pair names the same winner.
  const winners = new Map<string, string>();
  const byStamp = new Map(world.writes.map((w) => [formatStamp(w.version.hlc), w]));
  for (const { region, item, conflict: c } of log) {
    if (c.field === undefined && item !== ITEMS.fields.id) stats.lwwConflicts += 1;
    else if (c.field === undefined) stats.existenceConflicts += 1;
    else stats.fieldConflicts += 1;
    if (c.winner.hlc.wall === c.loser.hlc.wall) stats.equalWallConflicts += 1;
    if (compareStamps(c.winner.hlc, c.loser.hlc) <= 0)
      out.push(`4 ${region} ${item}: ${formatConflict(c)}: the winner's stamp is not the greater`);
    if (compareVectors(c.winner.vv, c.loser.vv) !== Causality.Concurrent)
      out.push(`4 ${region} ${item}: ${formatConflict(c)}: the two versions are not concurrent`);
    // Both sides name writes; for `fields` those writes are concurrent (neither saw the other). An
    // lww record compares whole states, so its loser may be a write the winner saw: counted only.
    const ww = byStamp.get(formatStamp(c.winner.hlc));
    const wl = byStamp.get(formatStamp(c.loser.hlc));
    if (ww === undefined || wl === undefined)
      out.push(`4 ${region} ${item}: ${formatConflict(c)}: names a version no write made`);
    else if (saw(ww, wl) || saw(wl, ww)) {
      if (item === ITEMS.fields.id)
        out.push(`4 ${region} ${item}: ${formatConflict(c)}: one side saw the other`);
      else stats.lwwRecordsOfCausalPair += 1;
    }
    const pair = [formatStamp(c.winner.hlc), formatStamp(c.loser.hlc)].sort().join(' ');
    const key = `${item} ${c.field ?? '*'} ${pair}`;
    const w = formatStamp(c.winner.hlc);
    const seen = winners.get(key);
    if (seen !== undefined && seen !== w)
      out.push(`4 ${key}: one region names ${seen} the winner, ${region} names ${w}`);
    winners.set(key, w);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Printing

function core(v: PolicyVersion | undefined) {
  return v && { policy: v.policy, value: v.value, deleted: v.deleted, hlc: v.hlc, vv: v.vv, crdt: v.crdt };
}

/** Structural equality of JSON-like data (key order ignored, absent ≡ undefined). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) =>
      Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

const json = (v: unknown) => JSON.stringify(v);

export function formatOp(item: SimItem, op: Op): string {
  switch (op.op) {
    case 'put':
      return `PUT ${item.id} ${json(op.value)}`;
    case 'delete':
      return `DELETE ${item.id}`;
    case 'patch':
      return `PATCH ${item.id} ${json(op.patch)}`;
    case 'increment':
      return `INCREMENT ${item.id} ${op.field} by ${op.by}`;
  }
}

function formatVv(vv: VersionVector): string {
  return `{${Object.entries(vv)
    .map(([r, n]) => `${r}:${n}`)
    .join(',')}}`;
}

export function formatVersion(v: PolicyVersion): string {
  const head = `${v.deleted ? 'deleted' : json(v.value)} @${formatStamp(v.hlc)} ${formatVv(v.vv)}`;
  if (v.policy !== Policy.Fields || !isFieldsState(v.crdt)) return head;
  const s = v.crdt;
  const fields = Object.entries(s.fields)
    .map(
      ([f, e]) =>
        `${f}=${e.deleted === true ? '✗' : json(e.value)}@${formatStamp(e.stamp)}/${e.dot.region}${e.dot.n}`,
    )
    .join(' ');
  return (
    `${head} [${s.exists.alive ? 'alive' : 'dead'}@${formatStamp(s.exists.stamp)}/${s.exists.dot.region}${s.exists.dot.n}` +
    `${s.clearedAt ? ` cleared@${formatStamp(s.clearedAt)}` : ''}${fields ? ` ${fields}` : ''}]`
  );
}

function fmt(v: PolicyVersion | undefined): string {
  return v === undefined ? 'nothing' : formatVersion(v);
}

export function formatConflict(c: PolicyConflict): string {
  const side = (v: PolicyConflict['winner']) =>
    `${v.deleted ? 'deleted' : json(v.value)} @${formatStamp(v.hlc)} ${formatVv(v.vv)}`;
  return `${c.field === undefined ? 'item' : `field ${c.field}`} (${c.rule}): winner ${side(c.winner)}, loser ${side(c.loser)}`;
}

export function formatStep(s: Step, regions: readonly string[]): string {
  const r = (i: number) => regions[i % regions.length]!;
  switch (s.kind) {
    case 'write': {
      const item = ITEM_LIST.find((it) => it.id === s.item)!;
      return `${r(s.region)} writes ${formatOp(item, s.op)}`;
    }
    case 'deliver':
      return `deliver in-flight #${s.pick}`;
    case 'flush':
      return `flush everything in flight to ${r(s.to)}`;
    case 'duplicate':
      return `duplicate delivered #${s.pick}`;
    case 'drop':
      return `drop (hold back) in-flight #${s.pick}`;
    case 'redeliver':
      return `redeliver held #${s.pick}`;
    case 'partition':
      return `partition ${r(s.region)}`;
    case 'heal':
      return 'heal';
    case 'tick':
      return `time ${s.by >= 0 ? '+' : ''}${s.by} ms`;
    case 'drift':
      return `${r(s.region)} clock offset → ${s.offset} ms`;
  }
}

export function formatSchedule(s: Schedule): string {
  return [
    `regions ${s.regions.join(', ')}; clock offsets ${s.offsets.join(', ')} ms; start ${s.start}`,
    ...s.steps.map((step, i) => `  ${String(i + 1).padStart(2)}. ${formatStep(step, s.regions)}`),
    `  final delivery: order keys [${s.finalOrder.join(',')}], duplicates [${s.finalDuplicates.join(',')}]`,
  ].join('\n');
}

/** Schedule, trace and violations, for a failure message. */
export function report(world: World, violations: readonly string[]): string {
  return [
    'schedule:',
    formatSchedule(world.schedule),
    'what happened:',
    ...world.trace.map((l) => `  ${l}`),
    'final states:',
    ...world.replicas.flatMap((r) =>
      [...r.rows].map(([item, v]) => `  ${r.region} ${item}: ${formatVersion(v)}`),
    ),
    'violations:',
    ...violations.map((v) => `  ${v}`),
  ].join('\n');
}
