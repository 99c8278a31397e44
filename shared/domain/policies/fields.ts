/**
 * The `fields` policy: each top-level field of an object value keeps its own version
 * (fieldsState.ts). A PUT replaces every field, a PATCH writes the fields it names, a DELETE clears
 * them all. The merge is the join of the two states, and it records:
 * - one conflict per field written concurrently on both sides;
 * - one per field entry (value or removal) that a concurrent newer PUT or DELETE drops;
 * - a whole-item conflict when a write and a delete raced.
 * Concurrent edits of different fields merge silently. Pure.
 */
import { maxStamp } from '../hlc.js';
import { isJsonObject } from '../jsonObject.js';
import { Policy } from '../mergePolicy.js';
import { ConflictRule, ResolutionOutcome, type ItemVersion } from '../resolve.js';
import { Causality } from '../versionVector.js';
import {
  clearedFieldConflicts,
  deleteFields,
  existenceConflict,
  fieldConflicts,
  fieldsStamp,
  fieldsValue,
  isFieldsState,
  mergeFieldsStates,
  patchFields,
  putFields,
  type FieldsState,
} from './fieldsState.js';
import { classifyMergeStep, outcomeOfMergeStep } from './mergeStep.js';
import {
  PolicyMismatchError,
  type MergeResult,
  type PolicyConflict,
  type PolicyRules,
  type PolicyVersion,
  type WriteOperation,
  type WriteStamp,
} from './policyRules.js';

export const FIELDS_RULES: PolicyRules = {
  operations: ['put', 'patch', 'delete'],
  findOperationProblem: (op) =>
    op.kind === 'put' && !isJsonObject(op.value) ? 'its values must be JSON objects' : undefined,
  build: buildFieldsVersion,
  merge: mergeFieldsVersions,
  isState: isFieldsState,
};

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

function buildFieldsVersion(
  current: PolicyVersion | undefined,
  op: WriteOperation,
  { hlc, vv, region }: WriteStamp,
): PolicyVersion {
  // The write's dot: the writer and its entry of the vector after the write.
  const dot = { region, n: vv[region]! };
  const state = current !== undefined && isFieldsState(current.crdt) ? current.crdt : undefined;
  if (op.kind === 'delete') return fieldsVersion(deleteFields(hlc, dot), vv);
  // The values and patches are JSON objects: findOperationProblem and the API checked them.
  if (op.kind === 'put') return fieldsVersion(putFields(op.value as Record<string, unknown>, hlc, dot), vv);
  if (op.kind === 'patch')
    return fieldsVersion(patchFields(state, op.patch as Record<string, unknown>, hlc, dot), vv);
  throw new Error(`unreachable: ${op.kind} on a ${Policy.Fields} collection`);
}

function mergeFieldsVersions(local: PolicyVersion, incoming: PolicyVersion): MergeResult {
  const a = local.crdt;
  const b = incoming.crdt;
  if (!isFieldsState(a) || !isFieldsState(b))
    throw new PolicyMismatchError('a fields item without its field versions');
  const { causality, vv } = classifyMergeStep(local, incoming);
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
  return { outcome: outcomeOfMergeStep(causality, conflicts.length > 0), result, changed: true, conflicts };
}

function entryVersion(e: FieldsState['fields'][string], vv: ItemVersion['vv']): ItemVersion {
  return e.deleted === true
    ? { value: null, deleted: true, hlc: e.stamp, vv }
    : { value: e.value, deleted: false, hlc: e.stamp, vv };
}
