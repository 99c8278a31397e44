/**
 * A model of N regions holding one item: each region writes as the real writer does (observe the
 * row's stamp, stamp, increment the vector), ships every write as an event, and applies peers'
 * events with `resolve`. Schedules (writes, deliveries in any order with duplicates, physical
 * clock moves) come from fast-check.
 */
import fc from 'fast-check';
import { HybridLogicalClock } from '../../../shared/domain/hlc.js';
import { incrementVector } from '../../../shared/domain/versionVector.js';
import { resolve, type ItemVersion, type Resolution } from '../../../shared/domain/resolve.js';
import { regionArb } from './arbitraries.js';

export interface ChangeEvent {
  readonly id: number;
  readonly origin: string;
  readonly version: ItemVersion;
}

export type Step =
  /** Region `region` (index, modulo the region count) writes a value, or deletes. */
  | { readonly kind: 'write'; readonly region: number; readonly del: boolean }
  /** Event `event` (index, modulo the events so far) reaches region `to`. */
  | { readonly kind: 'deliver'; readonly event: number; readonly to: number }
  /** Shared physical time moves, backwards too. */
  | { readonly kind: 'tick'; readonly by: number }
  /** One region's physical clock jumps to a new offset from the shared time (NTP step, either way). */
  | { readonly kind: 'drift'; readonly region: number; readonly offset: number };

export interface Scenario {
  readonly regions: readonly string[];
  readonly start: number;
  readonly offsets: readonly number[];
  readonly steps: readonly Step[];
  /** Extra deliveries (pair indices) mixed into the final exchange: duplicates. */
  readonly extra: readonly number[];
  /** Sort keys that put the final exchange in an arbitrary order. */
  readonly orderKeys: readonly number[];
  /** Whether the applier also observes applied peer stamps (the writer always observes the row). */
  readonly applierObserves: boolean;
}

/** Offsets and backwards ticks stay well inside the default 60 s skew limit. */
const MAX_OFFSET = 5_000;

export const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('write' as const), region: fc.nat(7), del: fc.boolean() }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('deliver' as const), event: fc.nat(), to: fc.nat(7) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      by: fc.oneof(fc.constant(0), fc.integer({ min: -100, max: 1000 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('drift' as const),
      region: fc.nat(7),
      offset: fc.integer({ min: -MAX_OFFSET, max: MAX_OFFSET }),
    }),
  },
);

export const scenarioArb = (options: { maxSteps?: number; minRegions?: number; maxRegions?: number } = {}) =>
  fc.record({
    regions: fc.uniqueArray(regionArb, {
      minLength: options.minRegions ?? 2,
      maxLength: options.maxRegions ?? 4,
    }),
    start: fc.oneof(fc.constant(1_700_000_000_000), fc.integer({ min: 100_000, max: 4_000_000_000_000 })),
    // Offsets are often 0, so regions often stamp equal wall clocks.
    offsets: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -MAX_OFFSET, max: MAX_OFFSET })), {
      minLength: 8,
      maxLength: 8,
    }),
    steps: fc.array(stepArb, { maxLength: options.maxSteps ?? 40 }),
    extra: fc.array(fc.nat(), { maxLength: 30 }),
    orderKeys: fc.array(fc.nat(), { maxLength: 200 }),
    applierObserves: fc.boolean(),
  });

export interface ApplyRecord {
  readonly at: string;
  readonly local: ItemVersion | undefined;
  readonly event: ChangeEvent;
  readonly resolution: Resolution;
}

export interface Replica {
  readonly region: string;
  readonly clock: HybridLogicalClock;
  state: ItemVersion | undefined;
}

export class World {
  readonly replicas: Replica[];
  readonly events: ChangeEvent[] = [];
  private now: number;
  private readonly offsets: number[];
  private writes = 0;

  constructor(
    readonly scenario: Scenario,
    private readonly onApply: (r: ApplyRecord) => void = () => {},
  ) {
    this.now = scenario.start;
    this.offsets = scenario.regions.map((_, i) => scenario.offsets[i] ?? 0);
    this.replicas = scenario.regions.map((region, i) => ({
      region,
      clock: new HybridLogicalClock(region, { physicalNow: () => this.now + this.offsets[i]! }),
      state: undefined,
    }));
  }

  /** The writer's path: observe the row's stamp, stamp, increment the vector, store, ship. */
  write(i: number, del: boolean, value?: unknown): ChangeEvent {
    const r = this.replicas[i % this.replicas.length]!;
    const local = r.state;
    if (local !== undefined) r.clock.observe(local.hlc);
    const n = ++this.writes;
    const version: ItemVersion = {
      value: del ? null : (value ?? { by: r.region, n }),
      deleted: del,
      hlc: r.clock.now(),
      vv: incrementVector(local?.vv ?? {}, r.region),
    };
    const resolution = resolve(local, version);
    const event: ChangeEvent = { id: this.events.length, origin: r.region, version };
    this.onApply({ at: r.region, local, event, resolution });
    r.state = resolution.result;
    this.events.push(event);
    return event;
  }

  /** The applier's path for one peer event (own events are not consumed). */
  deliver(event: ChangeEvent, to: number): void {
    const r = this.replicas[to % this.replicas.length]!;
    if (event.origin === r.region) return;
    if (this.scenario.applierObserves) r.clock.observe(event.version.hlc);
    const local = r.state;
    const resolution = resolve(local, event.version);
    this.onApply({ at: r.region, local, event, resolution });
    r.state = resolution.result;
  }

  step(s: Step): void {
    switch (s.kind) {
      case 'write':
        this.write(s.region, s.del);
        break;
      case 'deliver':
        if (this.events.length > 0) this.deliver(this.events[s.event % this.events.length]!, s.to);
        break;
      case 'tick':
        this.now += s.by;
        break;
      case 'drift':
        this.offsets[s.region % this.offsets.length] = s.offset;
        break;
    }
  }

  runSteps(): void {
    for (const s of this.scenario.steps) this.step(s);
  }

  /** Every event to every other region, in the scenario's arbitrary order, with duplicates. */
  exchangeAll(): void {
    const pairs: [ChangeEvent, number][] = [];
    for (const e of this.events)
      this.replicas.forEach((r, to) => r.region !== e.origin && pairs.push([e, to]));
    if (pairs.length === 0) return;
    const all = [...pairs, ...this.scenario.extra.map((k) => pairs[k % pairs.length]!)];
    const keyed = all.map((p, j) => ({ p, key: this.scenario.orderKeys[j] ?? j, j }));
    keyed.sort((a, b) => a.key - b.key || a.j - b.j);
    for (const { p } of keyed) this.deliver(p[0], p[1]);
  }

  /** Every version ever written. */
  written(): ItemVersion[] {
    return this.events.map((e) => e.version);
  }
}
