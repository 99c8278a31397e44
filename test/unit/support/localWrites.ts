/**
 * Histories of local writes of one item, built as the write path builds them (the policy's `build`
 * in shared/domain/policies/): each write by some region, stamped above every stamp before it, with
 * the writer's entry of the vector bumped.
 */
import fc from 'fast-check';
import type { HlcStamp } from '../../../shared/domain/hlc.js';
import { Policy } from '../../../shared/domain/mergePolicy.js';
import type { PolicyVersion, WriteOperation } from '../../../shared/domain/policies/policyRules.js';
import { POLICY_REGISTRY } from '../../../shared/domain/policies/registry.js';
import { incrementVector } from '../../../shared/domain/versionVector.js';

const plain = { noNullPrototype: true } as const;
export const WRITER_REGIONS = ['us', 'eu', 'ap'] as const;
const NAMES = ['a', 'b', 'c'] as const;

const scalarArb = fc.oneof(fc.integer({ min: -50, max: 50 }), fc.string({ maxLength: 4 }), fc.boolean());
const objectArb = fc.dictionary(
  fc.constantFrom(...NAMES),
  fc.oneof(scalarArb, fc.dictionary(fc.constantFrom(...NAMES), scalarArb, plain)),
  plain,
);
/** A JSON Merge Patch: an object whose `null` members remove. */
const patchArb = fc.dictionary(fc.constantFrom(...NAMES), fc.oneof(scalarArb, fc.constant(null)), plain);

/** The operations a client may send to a collection of `policy` (values the API would accept). */
export function operationArb(policy: Policy): fc.Arbitrary<WriteOperation> {
  switch (policy) {
    case Policy.Lww:
      return fc.oneof(
        fc.record({ kind: fc.constant('put' as const), value: fc.oneof(scalarArb, objectArb) }),
        fc.record({ kind: fc.constant('patch' as const), patch: patchArb }),
        fc.constant({ kind: 'delete' as const }),
      );
    case Policy.Fields:
      return fc.oneof(
        fc.record({ kind: fc.constant('put' as const), value: objectArb }),
        fc.record({ kind: fc.constant('patch' as const), patch: patchArb }),
        fc.constant({ kind: 'delete' as const }),
      );
    case Policy.Counter:
      return fc.record({
        kind: fc.constant('increment' as const),
        field: fc.constantFrom(...NAMES),
        by: fc.integer({ min: -5, max: 10 }),
      });
  }
}

export interface WriteStep {
  readonly region: (typeof WRITER_REGIONS)[number];
  readonly op: WriteOperation;
}

export function localWritesArb(policy: Policy): fc.Arbitrary<WriteStep[]> {
  return fc.array(fc.record({ region: fc.constantFrom(...WRITER_REGIONS), op: operationArb(policy) }), {
    minLength: 1,
    maxLength: 12,
  });
}

export interface BuiltWrite {
  /** The version before the write (undefined: no row yet). */
  readonly before: PolicyVersion | undefined;
  readonly after: PolicyVersion;
  readonly region: string;
  readonly hlc: HlcStamp;
}

/** Apply `writes` in order to one item of `policy`, as one region after another writes it. */
export function buildWrites(policy: Policy, writes: readonly WriteStep[]): BuiltWrite[] {
  const out: BuiltWrite[] = [];
  let current: PolicyVersion | undefined;
  writes.forEach(({ region, op }, i) => {
    const hlc = { wall: 1_000 + i, logical: 0, region };
    const vv = incrementVector(current?.vv ?? {}, region);
    const after = POLICY_REGISTRY[policy].build(current, op, { hlc, vv, region });
    out.push({ before: current, after, region, hlc });
    current = after;
  });
  return out;
}
