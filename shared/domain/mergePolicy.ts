/**
 * Merge policies, declared per collection in configuration that every region must share.
 *
 * - `lww` (default): whole-item last-writer-wins by HLC stamp.
 * - `fields`: each top-level field of an object value keeps its own version; concurrent edits of
 *   different fields both survive, concurrent edits of one field resolve by the stamp order.
 * - `counter`: per-region PN-counters; concurrent increments add up exactly.
 */
import { createHash } from 'node:crypto';

export const Policy = { Lww: 'lww', Fields: 'fields', Counter: 'counter' } as const;
export type Policy = (typeof Policy)[keyof typeof Policy];
export const POLICIES: readonly Policy[] = [Policy.Lww, Policy.Fields, Policy.Counter];

export function isPolicy(s: unknown): s is Policy {
  return typeof s === 'string' && (POLICIES as readonly string[]).includes(s);
}

/** Collection → policy; collections not named use `lww`. */
export type PolicyMap = Readonly<Record<string, Policy>>;

export function policyOf(policies: PolicyMap, collection: string): Policy {
  return Object.hasOwn(policies, collection) ? policies[collection]! : Policy.Lww;
}

/** Short stable digest of a policy map, for comparing regions' configurations at a glance. */
export function policyFingerprint(policies: PolicyMap): string {
  const canonical = Object.keys(policies)
    .sort()
    .filter((c) => policies[c] !== Policy.Lww)
    .map((c) => `${c}=${policies[c]}`)
    .join(',');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 12);
}

/** Collections whose policy differs between two maps (a collection absent from a map is `lww`). */
export function policyDifferences(a: PolicyMap, b: PolicyMap): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((c) => policyOf(a, c) !== policyOf(b, c)).sort();
}
