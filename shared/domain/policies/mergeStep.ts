/**
 * The step a merge of two versions of a join-based policy (`fields`, `counter`) takes: the vector
 * comparison classifies it, and a concurrent step is a conflict only when the policy found one. Pure.
 */
import type { ItemVersion } from '../resolve.js';
import { ResolutionOutcome } from '../resolve.js';
import { Causality, compareVectors, mergeVectors } from '../versionVector.js';

export function classifyMergeStep(
  local: ItemVersion,
  incoming: ItemVersion,
): { causality: Causality; vv: ItemVersion['vv'] } {
  return { causality: compareVectors(incoming.vv, local.vv), vv: mergeVectors(local.vv, incoming.vv) };
}

export function outcomeOfMergeStep(causality: Causality, hasConflicts: boolean): ResolutionOutcome {
  if (causality === Causality.After) return ResolutionOutcome.FastForward;
  if (causality === Causality.Concurrent)
    return hasConflicts ? ResolutionOutcome.Conflict : ResolutionOutcome.Merged;
  return ResolutionOutcome.Stale;
}
