/**
 * Version vectors: region → number of writes that region made to one item. Pure.
 *
 * A missing entry counts as 0, and entries equal to 0 are never stored, so two vectors that mean
 * the same thing have the same canonical form.
 */

export type VersionVector = Readonly<Record<string, number>>;

/**
 * `region`'s count in `v`. Reads own entries only: a legal region id such as `constructor` must not
 * pick up an `Object.prototype` member (which would make a missing entry compare as NaN, not 0).
 */
function countOf(v: VersionVector, region: string): number {
  return Object.hasOwn(v, region) ? (v[region] ?? 0) : 0;
}

/** How vector `a` relates to vector `b`. */
export const Causality = {
  /** Same history. */
  Equal: 'equal',
  /** `a` happened before `b` (b dominates). */
  Before: 'before',
  /** `a` happened after `b` (a dominates). */
  After: 'after',
  /** Neither dominates: concurrent writes. */
  Concurrent: 'concurrent',
} as const;
export type Causality = (typeof Causality)[keyof typeof Causality];

export function compareVectors(a: VersionVector, b: VersionVector): Causality {
  let aAhead = false;
  let bAhead = false;
  for (const region of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = countOf(a, region);
    const y = countOf(b, region);
    if (x > y) aAhead = true;
    else if (y > x) bAhead = true;
    if (aAhead && bAhead) return Causality.Concurrent;
  }
  if (aAhead) return Causality.After;
  if (bAhead) return Causality.Before;
  return Causality.Equal;
}

/** Pointwise maximum, with keys in sorted order (canonical form). */
export function mergeVectors(a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = {};
  for (const region of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const n = Math.max(countOf(a, region), countOf(b, region));
    if (n > 0) out[region] = n;
  }
  return out;
}

/** `v` with `region`'s count raised by one. */
export function incrementVector(v: VersionVector, region: string): VersionVector {
  return mergeVectors(v, { [region]: countOf(v, region) + 1 });
}

/** Sorted, zero-free copy: the form stored and sent. */
export function canonicalVector(v: VersionVector): VersionVector {
  return mergeVectors(v, {});
}

/** True when `v` is a plain object of region → positive safe integer. */
export function isVersionVector(v: unknown): v is VersionVector {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  return Object.values(v as Record<string, unknown>).every(
    (n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0,
  );
}
