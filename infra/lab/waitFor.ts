/** Polling with a deadline: the lab's only way of waiting for something to become true. */

import { setTimeout as sleep } from 'node:timers/promises';

/** Node's own promise timer: the one `sleep` of the codebase (services import it the same way). */
export { sleep };

/** A wait ran past its deadline. `lastError` is the last failure of the probe, if it threw. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  constructor(
    readonly description: string,
    readonly timeoutMs: number,
    readonly lastError?: unknown,
  ) {
    const last = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
    super(`timed out after ${timeoutMs} ms waiting for ${description}${last}`);
  }
}

export interface WaitForOptions {
  /** What is awaited, for the error message ("Kafka to answer on 127.0.0.1:9092"). */
  description: string;
  timeoutMs: number;
  /** @default 200 */
  intervalMs?: number;
  /**
   * Called before each attempt; throw to give up at once (e.g. the process being awaited exited).
   */
  abortIf?: () => void;
}

/**
 * Call `probe` until it returns a value other than `undefined`/`false`, then return that value.
 * A probe that throws counts as "not yet"; the last error is reported on timeout.
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitForOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.abortIf?.();
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    options.abortIf?.();
    if (Date.now() >= deadline) throw new WaitTimeoutError(options.description, options.timeoutMs, lastError);
    await sleep(Math.min(options.intervalMs ?? 200, Math.max(0, deadline - Date.now())));
  }
}
