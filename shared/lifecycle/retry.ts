/**
 * The one retry loop of the service: the relay's passes, the consumer's batches and restarts, the
 * applier's group join and the region's start-up all go through {@link retry}. It retries only what
 * the error taxonomy (shared/errors/failureKind.ts) marks transient, with a doubling backoff:
 *
 * - a transient failure is logged and tried again after the backoff;
 * - an error saying "not yet" (`retryable` with a `retryInMs`, e.g. a region waiting for its
 *   snapshot) is waited out quietly and does not count as a failure;
 * - a permanent failure is thrown to the caller at once, which holds, dead-letters or stops and
 *   says why;
 * - a programmer error crashes the process loudly (logged as fatal, then thrown uncaught), because
 *   a defect retried forever or filed as bad data hides itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { failureKind } from '../errors/failureKind.js';
import type { Logger } from '../logging/logger.js';

export interface Backoff {
  /** Wait after the first failure. */
  readonly firstMs: number;
  /** Longest wait. */
  readonly maxMs: number;
  /** Growth per consecutive failure: 2 doubles, 1 keeps it flat. @default 2 */
  readonly factor?: number;
}

/** The wait after the `failures`-th consecutive failure (1 is the first). */
export function backoffDelay(backoff: Backoff, failures: number): number {
  const n = Math.max(1, Math.floor(failures));
  const grown = backoff.firstMs * (backoff.factor ?? 2) ** Math.min(n - 1, 30);
  return Math.max(0, Math.min(backoff.maxMs, grown));
}

/** What {@link retry} resolves with when it stopped before the work succeeded. */
export const STOPPED: unique symbol = Symbol('stopped');

export interface RetryOptions {
  /** What is tried, for the log: "`<what>` failed; retrying". */
  readonly what: string;
  readonly log: Logger;
  readonly backoff: Backoff;
  /** Give up after this many failed attempts, throwing the last error. @default no limit */
  readonly attempts?: number;
  /** True once the component is stopping: no further attempt, {@link STOPPED} is returned. */
  readonly stopped?: () => boolean;
  /** How to wait between attempts (one the component can cut short). @default a timer */
  readonly wait?: (ms: number) => Promise<void>;
  /** Each transient failure, before its wait (status counters, events). */
  readonly onFailure?: (err: unknown, failures: number, delayMs: number) => void;
  /** Each "not yet" wait, with the reason the work gave. */
  readonly onNotYet?: (reason: string) => void;
  /** What a programmer error does after it is logged. @default {@link crashLoudly} */
  readonly onBug?: (err: unknown) => void;
  /** The log level of a transient failure. @default 'warn' */
  readonly level?: 'warn' | 'info' | 'debug';
}

/** An error that asks to be tried again after a given time, without counting as a failure. */
function notYetWait(err: unknown): number | undefined {
  const e = err as { retryable?: unknown; retryInMs?: unknown } | null;
  return e?.retryable === true && typeof e.retryInMs === 'number' ? e.retryInMs : undefined;
}

/**
 * Run `work` until it succeeds, retrying transient failures with backoff. Resolves with its result,
 * or {@link STOPPED} when `stopped()` turned true first; rejects with a permanent failure, a
 * programmer error (after crashing loudly), or the last transient failure once `attempts` ran out.
 */
export async function retry<T>(
  work: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T | typeof STOPPED> {
  const wait = options.wait ?? ((ms: number) => sleep(ms));
  let failures = 0;
  for (let attempt = 1; ; attempt++) {
    if (options.stopped?.()) return STOPPED;
    try {
      return await work(attempt);
    } catch (err) {
      if (options.stopped?.()) return STOPPED;
      const kind = failureKind(err);
      if (kind === 'bug') {
        options.log.fatal({ err }, `${options.what}: a programmer error; crashing`);
        (options.onBug ?? crashLoudly)(err);
        throw err;
      }
      if (kind === 'permanent') throw err;
      const notYet = notYetWait(err);
      if (notYet !== undefined) {
        failures = 0; // waiting is not failing: no backoff once it can go on
        options.onNotYet?.(err instanceof Error ? err.message : String(err));
        await wait(notYet);
        continue;
      }
      failures += 1;
      if (options.attempts !== undefined && failures >= options.attempts) throw err;
      const delayMs = backoffDelay(options.backoff, failures);
      options.log[options.level ?? 'warn'](
        { err, attempt: failures, retryInMs: delayMs },
        `${options.what} failed; retrying`,
      );
      options.onFailure?.(err, failures, delayMs);
      await wait(delayMs);
    }
  }
}

/**
 * End the process with `err` as an uncaught exception (after the caller logged it): a supervisor
 * (the cluster primary, Compose, systemd) restarts it, a test run reports it.
 */
export function crashLoudly(err: unknown): void {
  process.nextTick(() => {
    throw err;
  });
}
