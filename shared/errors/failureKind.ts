/**
 * The error taxonomy every retry loop follows (shared/lifecycle/retry.ts): what a failure is and
 * so whether trying again can help.
 *
 * - `transient`: the dependency may answer next time (a lost connection, a broker moving a
 *   partition, a deadlock, a timeout): retried with backoff.
 * - `permanent`: the same attempt fails the same way (refused credentials, a value PostgreSQL
 *   rejects, an event over Kafka's limit): never retried; the caller holds, dead-letters or stops
 *   and says why.
 * - `bug`: a programmer error (TypeError, RangeError, ReferenceError, SyntaxError, a failed
 *   assertion): crashes loudly instead of looping or being filed as a dead letter.
 *
 * Our own errors say which they are with a `retryable` flag (AppError, the publisher's and the
 * domain's errors); PostgreSQL's by SQLSTATE (pgErrors.ts); kafkajs's by name and protocol type.
 */
import { isRetryablePgError, sqlState } from './pgErrors.js';

export type FailureKind = 'transient' | 'permanent' | 'bug';

/** An error that says itself whether a later attempt may succeed. */
export interface Classified {
  readonly retryable: boolean;
}

const PROGRAMMER_ERRORS: readonly (new (...args: never[]) => Error)[] = [
  TypeError,
  RangeError,
  ReferenceError,
  SyntaxError,
  EvalError,
];

/**
 * Kafka protocol errors no retry cures: refused credentials or permissions, a request the broker
 * will never take. Every other kafkajs error (connections, timeouts, leaders moving, rebalances,
 * retries exhausted on any of those) is transient: kafkajs's own `retriable` flag says whether *it*
 * retried inside one request, and marks group errors such as REBALANCE_IN_PROGRESS non-retriable
 * although the next join succeeds.
 */
const PERMANENT_KAFKA_TYPES: ReadonlySet<string> = new Set([
  'SASL_AUTHENTICATION_FAILED',
  'ILLEGAL_SASL_STATE',
  'UNSUPPORTED_SASL_MECHANISM',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
  'UNSUPPORTED_VERSION',
  'INVALID_CONFIG',
  'POLICY_VIOLATION',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_PARTITIONS',
  'INVALID_REQUEST',
  'INVALID_TOPIC_EXCEPTION',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
]);

const PERMANENT_KAFKA_NAMES: ReadonlySet<string> = new Set([
  'KafkaJSServerDoesNotSupportApiKey',
  'KafkaJSNotImplemented',
]);

/** What the broker says when it refuses a SASL login (wrong password, unknown user or mechanism). */
const BROKER_REFUSED_SASL =
  /invalid credentials|authentication failed during authentication|invalid server signature|unsupported sasl|SASL_AUTHENTICATION_FAILED|ILLEGAL_SASL_STATE/i;

/** Nested causes followed at most this deep (a cause chain is never a cycle worth following). */
const MAX_DEPTH = 5;

/** An error of a programmer-error type (TypeError, …), wherever it was raised. */
function hasProgrammerErrorType(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  // An error that classifies itself is not a defect (a library's TypeError subclass with a flag).
  if (typeof (err as Partial<Classified>).retryable === 'boolean') return false;
  return err.name === 'AssertionError' || PROGRAMMER_ERRORS.some((c) => err instanceof c);
}

/**
 * Whether the innermost frame of `err`'s stack is in a dependency (`node_modules`): kafkajs, for
 * one, raises TypeErrors from states it does not expect (`admin.listTopics` destructuring metadata
 * it has not loaded yet, right after a broker restart), which pass like any broker state.
 */
function raisedInDependency(err: Error): boolean {
  const frame = err.stack?.split('\n').find((line) => /^\s+at /.test(line));
  return frame !== undefined && /[\\/]node_modules[\\/]/.test(frame);
}

/**
 * Whether `err` is a programmer error of this code base: a defect, not a state of the world. The
 * same types raised inside a dependency are that dependency's state (see {@link raisedInDependency}).
 */
export function isProgrammerError(err: unknown): boolean {
  return hasProgrammerErrorType(err) && !raisedInDependency(err);
}

/** The kind of `err` (see the module comment). */
export function failureKind(err: unknown): FailureKind {
  return kindOf(err, 0);
}

function kindOf(err: unknown, depth: number): FailureKind {
  if (hasProgrammerErrorType(err)) return raisedInDependency(err) ? 'transient' : 'bug';
  if (typeof err !== 'object' || err === null) return 'permanent';
  const e = err as {
    name?: unknown;
    retryable?: unknown;
    type?: unknown;
    cause?: unknown;
    originalError?: unknown;
  };
  if (typeof e.retryable === 'boolean') return e.retryable ? 'transient' : 'permanent';
  if (sqlState(err) !== undefined || isRetryablePgError(err))
    return isRetryablePgError(err) ? 'transient' : 'permanent';
  const name = typeof e.name === 'string' ? e.name : '';
  const errors = (err as { errors?: unknown }).errors;
  if (Array.isArray(errors) && errors.length > 0) {
    // An aggregate (kafkajs, Promise.any): permanent if any part is, else transient.
    const kinds = errors.map((x) => (depth < MAX_DEPTH ? kindOf(x, depth + 1) : 'permanent'));
    return kinds.includes('permanent') ? 'permanent' : 'transient';
  }
  const inner = e.cause ?? e.originalError;
  const wrapped = inner !== undefined && inner !== err && depth < MAX_DEPTH ? inner : undefined;
  if (name.startsWith('KafkaJS')) {
    if (PERMANENT_KAFKA_NAMES.has(name)) return 'permanent';
    // kafkajs wraps *any* failure of the SASL exchange in this error, a connection lost halfway
    // ("SASL SCRAM SHA512 authentication failed: Not connected", seen when a link is cut) as well
    // as the broker's refusal: permanent only when the broker refused.
    if (name === 'KafkaJSSASLAuthenticationError')
      return BROKER_REFUSED_SASL.test(err instanceof Error ? err.message : '') ? 'permanent' : 'transient';
    if (typeof e.type === 'string' && PERMANENT_KAFKA_TYPES.has(e.type)) return 'permanent';
    // A wrapper (retries exhausted, a non-retriable envelope) is what it wraps; a TypeError from
    // inside kafkajs under a cut link is the library's state, not a defect of ours.
    const k = wrapped === undefined ? 'transient' : kindOf(wrapped, depth + 1);
    return k === 'bug' ? 'transient' : k;
  }
  // An error that wraps another with more context (a migration that failed, ...) is what it wraps.
  return wrapped === undefined ? 'permanent' : kindOf(wrapped, depth + 1);
}

/** An error of a state that passes (not started yet, not known yet): a later attempt may succeed. */
export class TransientError extends Error implements Classified {
  override readonly name: string = 'TransientError';
  readonly retryable = true;
}

/** True when a later attempt may succeed. */
export function isTransient(err: unknown): boolean {
  return failureKind(err) === 'transient';
}
