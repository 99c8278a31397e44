/**
 * PN-counters for the `counter` policy: per field, per region, a grow-only positive and negative
 * total. A region only ever raises its own entries, so the merge — pointwise maximum — never loses
 * an increment, and the value is the sum over regions. Pure.
 */
import { isJsonObject, setOwn } from '../jsonObject.js';

export interface PnEntry {
  readonly p: number;
  readonly n: number;
}

/** field → region → totals. */
export interface CounterState {
  readonly counters: Readonly<Record<string, Readonly<Record<string, PnEntry>>>>;
}

export const EMPTY_COUNTERS: CounterState = { counters: {} };

export function incrementCounter(
  state: CounterState,
  region: string,
  field: string,
  by: number,
): CounterState {
  const perRegion = own(state.counters, field) ?? {};
  const mine = own(perRegion, region) ?? { p: 0, n: 0 };
  const next = by >= 0 ? { p: mine.p + by, n: mine.n } : { p: mine.p, n: mine.n - by };
  return { counters: { ...state.counters, [field]: { ...perRegion, [region]: next } } };
}

/**
 * Whether `field` of `state` can still be stored and counted exactly: every entry and the field's
 * total within ±(2^53 − 1). An increment that would leave it otherwise is refused, never stored: a
 * total past it would round, and an entry past it is not a counter state at all.
 */
export function isCounterFieldExact(state: CounterState, field: string): boolean {
  const perRegion = own(state.counters, field);
  if (perRegion === undefined) return true;
  let total = 0;
  for (const e of Object.values(perRegion)) {
    if (!isCount(e.p) || !isCount(e.n)) return false;
    total += e.p - e.n;
  }
  return Number.isSafeInteger(total);
}

export function mergeCounters(a: CounterState, b: CounterState): CounterState {
  const counters: Record<string, Record<string, PnEntry>> = {};
  for (const field of sortedUnion(a.counters, b.counters)) {
    const fa = own(a.counters, field) ?? {};
    const fb = own(b.counters, field) ?? {};
    const merged: Record<string, PnEntry> = {};
    for (const region of sortedUnion(fa, fb)) {
      const x = own(fa, region) ?? { p: 0, n: 0 };
      const y = own(fb, region) ?? { p: 0, n: 0 };
      setOwn(merged, region, { p: Math.max(x.p, y.p), n: Math.max(x.n, y.n) });
    }
    setOwn(counters, field, merged);
  }
  return { counters };
}

/** `{ field: total }`. */
export function counterValue(state: CounterState): Record<string, number> {
  const out: Record<string, number> = {};
  for (const field of Object.keys(state.counters).sort()) {
    let total = 0;
    for (const e of Object.values(state.counters[field]!)) total += e.p - e.n;
    setOwn(out, field, total);
  }
  return out;
}

export function isCounterState(v: unknown): v is CounterState {
  if (!isJsonObject(v) || !isJsonObject(v.counters)) return false;
  return Object.values(v.counters).every(
    (perRegion) =>
      isJsonObject(perRegion) &&
      Object.values(perRegion).every((e) => isJsonObject(e) && isCount(e.p) && isCount(e.n)),
  );
}

function isCount(x: unknown): boolean {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function own<T>(o: Readonly<Record<string, T>>, k: string): T | undefined {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function sortedUnion(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
