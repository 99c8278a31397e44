/**
 * The `counter` policy: per-field PN-counters (counterState.ts). The only write is an increment (of
 * the writing region's own entries); the merge is the pointwise maximum, so concurrent increments
 * add up and never conflict. Pure.
 */
import { maxStamp } from '../hlc.js';
import { Policy } from '../mergePolicy.js';
import { ResolutionOutcome, type ItemVersion } from '../resolve.js';
import { Causality } from '../versionVector.js';
import {
  EMPTY_COUNTERS,
  counterValue,
  incrementCounter,
  isCounterFieldExact,
  isCounterState,
  mergeCounters,
  type CounterState,
} from './counterState.js';
import { classifyMergeStep, outcomeOfMergeStep } from './mergeStep.js';
import {
  PolicyMismatchError,
  WriteRefusedError,
  type MergeResult,
  type PolicyRules,
  type PolicyVersion,
  type WriteOperation,
  type WriteStamp,
} from './policyRules.js';

export const COUNTER_RULES: PolicyRules = {
  operations: ['increment'],
  findOperationProblem: () => undefined,
  build: buildCounterVersion,
  merge: mergeCounterVersions,
  isState: isCounterState,
};

/** Build the stored version of a `counter` state stamped `hlc`. */
export function counterVersion(
  state: CounterState,
  hlc: ItemVersion['hlc'],
  vv: ItemVersion['vv'],
): PolicyVersion {
  return { policy: Policy.Counter, crdt: state, value: counterValue(state), deleted: false, hlc, vv };
}

function buildCounterVersion(
  current: PolicyVersion | undefined,
  op: WriteOperation,
  { hlc, vv, region }: WriteStamp,
): PolicyVersion {
  if (op.kind === 'increment') {
    const state = current !== undefined && isCounterState(current.crdt) ? current.crdt : EMPTY_COUNTERS;
    const next = incrementCounter(state, region, op.field, op.by);
    if (!isCounterFieldExact(next, op.field))
      throw new WriteRefusedError(
        'counter_overflow',
        `counter ${op.field} would pass ±${Number.MAX_SAFE_INTEGER} (2^53 − 1), past which it cannot be counted exactly: refused, nothing was changed`,
      );
    return counterVersion(next, hlc, vv);
  }
  throw new Error(`unreachable: ${op.kind} on a ${Policy.Counter} collection`);
}

function mergeCounterVersions(local: PolicyVersion, incoming: PolicyVersion): MergeResult {
  const a = local.crdt;
  const b = incoming.crdt;
  if (!isCounterState(a) || !isCounterState(b))
    throw new PolicyMismatchError('a counter item without its counters');
  const { causality, vv } = classifyMergeStep(local, incoming);
  if (causality === Causality.Before || causality === Causality.Equal) {
    return { outcome: ResolutionOutcome.Stale, result: local, changed: false, conflicts: [] };
  }
  const result = counterVersion(mergeCounters(a, b), maxStamp(local.hlc, incoming.hlc), vv);
  return { outcome: outcomeOfMergeStep(causality, false), result, changed: true, conflicts: [] };
}
