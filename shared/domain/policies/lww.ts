/**
 * The `lww` policy (the default): the whole item is one register and the last writer wins. A PUT
 * replaces the value, a PATCH applies a JSON Merge Patch to it, a DELETE leaves a tombstone; the
 * merge is resolve.ts's join (greatest HLC stamp), and every concurrent pair of versions is a
 * whole-item conflict. Pure.
 */
import { applyJsonMergePatch } from '../jsonMergePatch.js';
import { Policy } from '../mergePolicy.js';
import { resolve } from '../resolve.js';
import {
  WriteRefusedError,
  type MergeResult,
  type PolicyRules,
  type PolicyVersion,
  type WriteOperation,
  type WriteStamp,
} from './policyRules.js';

export const LWW_RULES: PolicyRules = {
  operations: ['put', 'patch', 'delete'],
  findOperationProblem: () => undefined,
  build: buildLwwVersion,
  merge: mergeLwwVersions,
  isState: (crdt) => crdt === undefined,
};

function buildLwwVersion(
  current: PolicyVersion | undefined,
  op: WriteOperation,
  { hlc, vv }: WriteStamp,
): PolicyVersion {
  const policy = Policy.Lww;
  if (op.kind === 'delete') return { policy, value: null, deleted: true, hlc, vv };
  if (op.kind === 'put') return { policy, value: op.value, deleted: false, hlc, vv };
  if (op.kind === 'patch') {
    const before = current === undefined || current.deleted ? undefined : current.value;
    const value = applyJsonMergePatch(before, op.patch);
    if (value === null)
      throw new WriteRefusedError('invalid_value', 'the patch would make the value null: use DELETE');
    return { policy, value, deleted: false, hlc, vv };
  }
  throw new Error(`unreachable: ${op.kind} on a ${policy} collection`);
}

function mergeLwwVersions(local: PolicyVersion, incoming: PolicyVersion): MergeResult {
  const r = resolve(local, incoming);
  return {
    outcome: r.outcome,
    result: r.changed ? { ...r.result, policy: Policy.Lww } : local,
    changed: r.changed,
    conflicts: r.conflict ? [r.conflict] : [],
  };
}
