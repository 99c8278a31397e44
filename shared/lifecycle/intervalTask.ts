/**
 * A job run every `intervalMs`, never two runs at once (a run still going when the next is due is
 * skipped), a failed run logged and the next one tried (a programmer error crashes instead): the
 * timer loop of maintenance and anti-entropy. `stop()` waits for the run in progress.
 */
import type { Logger } from '../logging/logger.js';
import { failureKind } from '../errors/failureKind.js';
import { crashLoudly } from './retry.js';

export class IntervalTask {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> | undefined;

  constructor(
    private readonly options: {
      readonly intervalMs: number;
      readonly run: () => Promise<unknown>;
      readonly log: Logger;
      /** The log message of a failed run. */
      readonly failure: string;
    },
  ) {}

  /** Start the timer (nothing when already started or when `intervalMs` is 0 or less). */
  start(): void {
    if (this.timer || this.options.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      if (this.inFlight) return;
      this.inFlight = this.options
        .run()
        .catch((err: unknown) => {
          // A programmer error crashes loudly (as in every retry loop: shared/lifecycle/retry.ts);
          // anything else is the world's state, and the next run tries again.
          if (failureKind(err) !== 'bug') return this.options.log.warn({ err }, this.options.failure);
          this.options.log.fatal({ err }, `${this.options.failure}: a programmer error; crashing`);
          crashLoudly(err);
        })
        .finally(() => (this.inFlight = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
