import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { mergeItem } from '../../shared/domain/mergeItem.js';
import { POLICIES, Policy } from '../../shared/domain/mergePolicy.js';
import { EMPTY_COUNTERS, incrementCounter } from '../../shared/domain/policies/counterState.js';
import { counterVersion } from '../../shared/domain/policies/counter.js';
import { WriteRefusedError, type PolicyVersion } from '../../shared/domain/policies/policyRules.js';
import { POLICY_REGISTRY } from '../../shared/domain/policies/registry.js';
import { ResolutionOutcome } from '../../shared/domain/resolve.js';
import { seeded } from './support/fc.js';
import { buildWrites, localWritesArb } from './support/localWrites.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

const at = (wall: number, region = 'us') => ({ wall, logical: 0, region });

describe.each(POLICIES)('the %s policy (build)', (policy) => {
  const rules = POLICY_REGISTRY[policy];

  it('when a region writes, then the version is of the policy, with its state, the stamp and the vector of the write', () => {
    fc.assert(
      fc.property(localWritesArb(policy), (writes) => {
        for (const w of buildWrites(policy, writes)) {
          expect(w.after.policy).toBe(policy);
          expect(rules.isState(w.after.crdt)).toBe(true);
          expect(w.after.hlc).toEqual(w.hlc);
          expect(w.after.deleted).toBe(w.after.value === null);
        }
      }),
      fcRuns.params(200),
    );
  });

  it('when a write is merged into the version it was built on, then it fast-forwards to it as built; merged the other way, nothing changes', () => {
    fc.assert(
      fc.property(localWritesArb(policy), (writes) => {
        for (const { before, after } of buildWrites(policy, writes)) {
          if (before === undefined) continue;
          const forward = mergeItem(before, after);
          expect(forward.outcome).toBe(ResolutionOutcome.FastForward);
          expect(forward.changed).toBe(true);
          expect(forward.conflicts).toEqual([]);
          expect(forward.result).toEqual(after);
          const back = mergeItem(after, before);
          expect(back.outcome).toBe(ResolutionOutcome.Stale);
          expect(back.changed).toBe(false);
          expect(back.result).toBe(after);
        }
      }),
      fcRuns.params(200),
    );
  });

  it('when an operation is not among the policy’s operations, then the registry says so', () => {
    const kinds = ['put', 'patch', 'delete', 'increment'] as const;
    const taken = kinds.filter((k) => rules.operations.includes(k));
    expect(taken).toEqual(policy === Policy.Counter ? ['increment'] : ['put', 'patch', 'delete']);
  });
});

describe('policy refusals', () => {
  const stamp = { hlc: at(1), vv: { us: 1 }, region: 'us' };

  it('when a PUT of a fields collection is not an object, then the policy names the problem before any read', () => {
    expect(POLICY_REGISTRY.fields.findOperationProblem({ kind: 'put', value: [1] })).toBe(
      'its values must be JSON objects',
    );
    expect(POLICY_REGISTRY.fields.findOperationProblem({ kind: 'put', value: { a: 1 } })).toBeUndefined();
    expect(POLICY_REGISTRY.lww.findOperationProblem({ kind: 'put', value: [1] })).toBeUndefined();
  });

  it('when an lww PATCH would leave null, then it is refused as invalid_value', () => {
    // Only a non-object patch replaces the value: the API refuses those, the policy still guards.
    const refusal = (() => {
      try {
        POLICY_REGISTRY.lww.build(undefined, { kind: 'patch', patch: null }, stamp);
      } catch (e) {
        return e;
      }
    })();
    expect(refusal).toBeInstanceOf(WriteRefusedError);
    expect(refusal).toMatchObject({ code: 'invalid_value' });
  });

  it('when an increment would take a counter past 2^53 − 1, then it is refused as counter_overflow', () => {
    const current: PolicyVersion = counterVersion(
      incrementCounter(EMPTY_COUNTERS, 'us', 'n', Number.MAX_SAFE_INTEGER),
      at(1),
      { us: 1 },
    );
    const next = { hlc: at(2), vv: { us: 2 }, region: 'us' };
    expect(() =>
      POLICY_REGISTRY.counter.build(current, { kind: 'increment', field: 'n', by: 1 }, next),
    ).toThrow(WriteRefusedError);
    expect(
      POLICY_REGISTRY.counter.build(current, { kind: 'increment', field: 'n', by: -1 }, next).value,
    ).toEqual({ n: Number.MAX_SAFE_INTEGER - 1 });
  });
});
