/**
 * What every merge policy provides, side by side: how it builds the new version of an item from a
 * write, and how it merges two versions of an item. One module per policy in this folder, listed in
 * registry.ts. Pure: no I/O, and no knowledge of HTTP (a refused write is a {@link WriteRefusedError}
 * the API turns into its answer).
 */
import type { HlcStamp } from '../hlc.js';
import type { Policy } from '../mergePolicy.js';
import type { ConflictRecord, ItemVersion, ResolutionOutcome } from '../resolve.js';
import type { VersionVector } from '../versionVector.js';
import type { CounterState } from './counterState.js';
import type { FieldsState } from './fieldsState.js';

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
  readonly retryable = false;
}

/** A write of one item, as a client asks for it. */
export type WriteOperation =
  | { readonly kind: 'put'; readonly value: unknown }
  | { readonly kind: 'patch'; readonly patch: unknown }
  | { readonly kind: 'delete' }
  | { readonly kind: 'increment'; readonly field: string; readonly by: number };

/** What a new write is stamped with: its HLC stamp, the item's vector after the write, the writer. */
export interface WriteStamp {
  readonly hlc: HlcStamp;
  /** The stored vector with the writer's entry bumped: `vv[region]` is the write's number. */
  readonly vv: VersionVector;
  readonly region: string;
}

/** A write the policy refuses; nothing is written. `code` is the error code the API answers with. */
export class WriteRefusedError extends Error {
  override readonly name = 'WriteRefusedError';
  readonly retryable = false;
  constructor(
    readonly code: 'invalid_value' | 'counter_overflow',
    message: string,
  ) {
    super(message);
  }
}

export interface PolicyRules {
  /** The operations a collection of this policy takes; any other is refused before anything is read. */
  readonly operations: readonly WriteOperation['kind'][];
  /**
   * What is wrong with `op` under this policy whatever the item holds, said of the collection
   * ("its values must be …"); undefined when nothing is. Checked before anything is read.
   */
  readonly findOperationProblem: (op: WriteOperation) => string | undefined;
  /**
   * The version a write of `op` makes of `current` (undefined: no row yet; it may be a tombstone).
   * Throws {@link WriteRefusedError} when the result cannot be stored.
   */
  readonly build: (
    current: PolicyVersion | undefined,
    op: WriteOperation,
    stamp: WriteStamp,
  ) => PolicyVersion;
  /**
   * Merge a peer's version into the stored one, both of this policy. A join: commutative,
   * associative and idempotent, so duplicated, late or reordered delivery converges.
   */
  readonly merge: (local: PolicyVersion, incoming: PolicyVersion) => MergeResult;
  /** Whether `crdt` is this policy's state as a version carries it (absent for a policy without one). */
  readonly isState: (crdt: unknown) => boolean;
}
