/**
 * Merge of one item under its collection's policy: the step every region runs on a peer's version.
 * Pure. For every policy the stored state is a join of the versions seen, so duplicated, late or
 * reordered delivery converges; the vector comparison classifies the step and the policy decides
 * what counts as a conflict (policies/: `lww`, `fields`, `counter`, one module each).
 */
import { ResolutionOutcome } from './resolve.js';
import { PolicyMismatchError, type MergeResult, type PolicyVersion } from './policies/policyRules.js';
import { POLICY_REGISTRY } from './policies/registry.js';

export {
  PolicyMismatchError,
  type MergeResult,
  type PolicyConflict,
  type PolicyVersion,
} from './policies/policyRules.js';

export function mergeItem(local: PolicyVersion | undefined, incoming: PolicyVersion): MergeResult {
  if (local === undefined)
    return { outcome: ResolutionOutcome.Insert, result: incoming, changed: true, conflicts: [] };
  if (local.policy !== incoming.policy) {
    throw new PolicyMismatchError(
      `stored item uses policy ${local.policy}, incoming version ${incoming.policy}`,
    );
  }
  return POLICY_REGISTRY[incoming.policy].merge(local, incoming);
}
