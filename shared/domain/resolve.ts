/**
 * Conflict resolution for one item: the merge every region runs on a peer's version. Pure.
 *
 * The merged state is a join: the version with the greatest HLC stamp (total order) carries value
 * and stamp, and the vector is the pointwise maximum. That makes the merge commutative,
 * associative and idempotent, so duplicated, late or reordered delivery ends in the same state in
 * every region. The vector comparison classifies the step — fast-forward, stale/duplicate, or a
 * real conflict — and a conflict is reported with both versions, the winner and the rule.
 *
 * Because a region observes an item's stamp before stamping a new write to it, a dominating vector
 * always carries the greater stamp, so for causal updates the join is plain fast-forward.
 */
import { compareStamps, type HlcStamp } from './hlc.js';
import { Causality, compareVectors, mergeVectors, type VersionVector } from './versionVector.js';

/** One version of an item: what a row holds and an event carries. */
export interface ItemVersion {
  /** JSON value; `null` for a tombstone. */
  readonly value: unknown;
  readonly deleted: boolean;
  readonly hlc: HlcStamp;
  readonly vv: VersionVector;
}

export const ResolutionOutcome = {
  /** No local version: take the incoming one. */
  Insert: 'insert',
  /** Incoming dominates local: take it, no conflict. */
  FastForward: 'fast-forward',
  /** Local dominates or equals incoming: nothing changes. */
  Stale: 'stale',
  /** Neither dominates: resolved by the total order of stamps. */
  Conflict: 'conflict',
  /** Neither dominates, but the policy merged both without a conflict (fields, counters). */
  Merged: 'merged',
} as const;
export type ResolutionOutcome = (typeof ResolutionOutcome)[keyof typeof ResolutionOutcome];

/** Rule names recorded in the conflict log. */
export const ConflictRule = {
  /** Whole item: the version with the greater HLC stamp wins. */
  LwwHlc: 'lww-hlc',
  /** One field of a `fields` item: the field version with the greater HLC stamp wins. */
  FieldsLwwHlc: 'fields-lww-hlc',
} as const;
export type ConflictRule = (typeof ConflictRule)[keyof typeof ConflictRule];

export interface ConflictRecord {
  readonly winner: ItemVersion;
  readonly loser: ItemVersion;
  readonly rule: ConflictRule;
}

export interface Resolution {
  readonly outcome: ResolutionOutcome;
  /** The state to store. Equal to `local` (same object) when `changed` is false. */
  readonly result: ItemVersion;
  readonly changed: boolean;
  readonly conflict?: ConflictRecord;
}

/** Merge `incoming` into `local` (undefined = no row yet). */
export function resolve(local: ItemVersion | undefined, incoming: ItemVersion): Resolution {
  if (local === undefined) return { outcome: ResolutionOutcome.Insert, result: incoming, changed: true };

  const causality = compareVectors(incoming.vv, local.vv);
  const order = compareStamps(incoming.hlc, local.hlc);
  const winner = order > 0 ? incoming : local;
  const loser = winner === incoming ? local : incoming;
  const vv = mergeVectors(local.vv, incoming.vv);

  const outcome =
    causality === Causality.Concurrent
      ? ResolutionOutcome.Conflict
      : causality === Causality.After
        ? ResolutionOutcome.FastForward
        : // Equal vectors with different stamps cannot come from this system's writers; treat the
          // pair as concurrent so it is resolved by the total order and recorded, never hidden.
          causality === Causality.Equal && order !== 0
          ? ResolutionOutcome.Conflict
          : ResolutionOutcome.Stale;

  const unchanged = winner === local && vectorsEqual(vv, local.vv);
  const result = unchanged ? local : { value: winner.value, deleted: winner.deleted, hlc: winner.hlc, vv };
  return {
    outcome,
    result,
    changed: !unchanged,
    ...(outcome === ResolutionOutcome.Conflict
      ? { conflict: { winner, loser, rule: ConflictRule.LwwHlc } }
      : {}),
  };
}

function vectorsEqual(a: VersionVector, b: VersionVector): boolean {
  return compareVectors(a, b) === Causality.Equal;
}
