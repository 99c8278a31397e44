/**
 * Merge of one item under its collection's policy: the step every region runs on a peer's version.
 * Pure. For every policy the stored state is a join of the versions seen, so duplicated, late or
 * reordered delivery converges; the vector comparison classifies the step and the policy decides
 * what counts as a conflict:
 * - `lww`: whole-item conflicts (see resolve.ts);
 * - `fields`: one conflict per field written concurrently on both sides, one per field entry (value
 *   or removal) that a concurrent newer PUT or DELETE drops, and a whole-item conflict when a write
 *   and a delete raced; concurrent edits of different fields merge silently;
 * - `counter`: never a conflict: concurrent increments add up.
 */
import { counterValue, isCounterState, mergeCounters, type CounterState } from './counterState.js';
import {
  clearedFieldConflicts,
  existenceConflict,
  fieldConflicts,
  fieldsStamp,
  fieldsValue,
  isFieldsState,
  mergeFieldsStates,
  type FieldsState,
} from './fieldsState.js';
import { maxStamp } from './hlc.js';
import { Policy } from './mergePolicy.js';
import {
  ConflictRule,
  ResolutionOutcome,
  resolve,
  type ConflictRecord,
  type ItemVersion,
} from './resolve.js';
import { Causality, compareVectors, mergeVectors } from './versionVector.js';

/** A version of an item of any policy. `crdt` holds the policy's state (absent for `lww`). */
export interface PolicyVersion extends ItemVersion {
  readonly policy: Policy;
  readonly crdt?: FieldsState | CounterState | undefined;
}

export interface PolicyConflict extends ConflictRecord {
  /** The field, for a field-level conflict of the `fields` policy. */
  readonly field?: string;
}

export interface MergeResult {
  readonly outcome: ResolutionOutcome;
  readonly result: PolicyVersion;
  readonly changed: boolean;
  readonly conflicts: readonly PolicyConflict[];
}

export class PolicyMismatchError extends Error {
  override readonly name = 'PolicyMismatchError';
}

export function mergeItem(local: PolicyVersion | undefined, incoming: PolicyVersion): MergeResult {
  if (local === undefined)
    return { outcome: ResolutionOutcome.Insert, result: incoming, changed: true, conflicts: [] };
  if (local.policy !== incoming.policy) {
    throw new PolicyMismatchError(
      `stored item uses policy ${local.policy}, incoming version ${incoming.policy}`,
    );
  }
  switch (incoming.policy) {
    case Policy.Lww: {
      const r = resolve(local, incoming);
      return {
        outcome: r.outcome,
        result: r.changed ? { ...r.result, policy: Policy.Lww } : local,
        changed: r.changed,
        conflicts: r.conflict ? [r.conflict] : [],
      };
    }
    case Policy.Fields:
      return mergeFieldsItem(local, incoming);
    case Policy.Counter:
      return mergeCounterItem(local, incoming);
  }
}

/** Build the stored version of a `fields` state. */
export function fieldsVersion(state: FieldsState, vv: ItemVersion['vv']): PolicyVersion {
  const value = fieldsValue(state);
  return {
    policy: Policy.Fields,
    crdt: state,
    value: value ?? null,
    deleted: value === undefined,
    hlc: fieldsStamp(state),
    vv,
  };
}

/** Build the stored version of a `counter` state stamped `hlc`. */
export function counterVersion(
  state: CounterState,
  hlc: ItemVersion['hlc'],
  vv: ItemVersion['vv'],
): PolicyVersion {
  return { policy: Policy.Counter, crdt: state, value: counterValue(state), deleted: false, hlc, vv };
}

function classify(
  local: PolicyVersion,
  incoming: PolicyVersion,
): { causality: Causality; vv: ItemVersion['vv'] } {
  return { causality: compareVectors(incoming.vv, local.vv), vv: mergeVectors(local.vv, incoming.vv) };
}

function outcomeOf(causality: Causality, hasConflicts: boolean): ResolutionOutcome {
  if (causality === Causality.After) return ResolutionOutcome.FastForward;
  if (causality === Causality.Concurrent)
    return hasConflicts ? ResolutionOutcome.Conflict : ResolutionOutcome.Merged;
  return ResolutionOutcome.Stale;
}

function mergeFieldsItem(local: PolicyVersion, incoming: PolicyVersion): MergeResult {
  const a = local.crdt;
  const b = incoming.crdt;
  if (!isFieldsState(a) || !isFieldsState(b))
    throw new PolicyMismatchError('a fields item without its field versions');
  const { causality, vv } = classify(local, incoming);
  if (causality === Causality.Before || causality === Causality.Equal) {
    return { outcome: ResolutionOutcome.Stale, result: local, changed: false, conflicts: [] };
  }
  const result = fieldsVersion(mergeFieldsStates(a, b), vv);
  const conflicts: PolicyConflict[] = [];
  if (causality === Causality.Concurrent) {
    for (const c of fieldConflicts(a, local.vv, b, incoming.vv)) {
      conflicts.push({
        field: c.field,
        rule: ConflictRule.FieldsLwwHlc,
        winner: entryVersion(c.winner, c.winner === a.fields[c.field] ? local.vv : incoming.vv),
        loser: entryVersion(c.loser, c.loser === a.fields[c.field] ? local.vv : incoming.vv),
      });
    }
    for (const c of clearedFieldConflicts(a, local.vv, b, incoming.vv)) {
      const [loserVv, winnerVv] = c.loserSide === 'a' ? [local.vv, incoming.vv] : [incoming.vv, local.vv];
      conflicts.push({
        field: c.field,
        rule: ConflictRule.FieldsLwwHlc,
        winner: { value: null, deleted: true, hlc: c.clearedAt, vv: winnerVv },
        loser: entryVersion(c.loser, loserVv),
      });
    }
    if (existenceConflict(a, local.vv, b, incoming.vv)) {
      const incomingWins = maxStamp(a.exists.stamp, b.exists.stamp) === b.exists.stamp;
      const plain = (v: PolicyVersion): ItemVersion => ({
        value: v.value,
        deleted: v.deleted,
        hlc: v.hlc,
        vv: v.vv,
      });
      conflicts.push({
        rule: ConflictRule.LwwHlc,
        winner: plain(incomingWins ? incoming : local),
        loser: plain(incomingWins ? local : incoming),
      });
    }
  }
  return { outcome: outcomeOf(causality, conflicts.length > 0), result, changed: true, conflicts };
}

function entryVersion(e: FieldsState['fields'][string], vv: ItemVersion['vv']): ItemVersion {
  return e.deleted === true
    ? { value: null, deleted: true, hlc: e.stamp, vv }
    : { value: e.value, deleted: false, hlc: e.stamp, vv };
}

function mergeCounterItem(local: PolicyVersion, incoming: PolicyVersion): MergeResult {
  const a = local.crdt;
  const b = incoming.crdt;
  if (!isCounterState(a) || !isCounterState(b))
    throw new PolicyMismatchError('a counter item without its counters');
  const { causality, vv } = classify(local, incoming);
  if (causality === Causality.Before || causality === Causality.Equal) {
    return { outcome: ResolutionOutcome.Stale, result: local, changed: false, conflicts: [] };
  }
  const result = counterVersion(mergeCounters(a, b), maxStamp(local.hlc, incoming.hlc), vv);
  return { outcome: outcomeOf(causality, false), result, changed: true, conflicts: [] };
}
