/**
 * The outbox relay: moves committed outbox rows to this region's change topic.
 *
 * Each pass claims the oldest unpublished rows (`FOR UPDATE SKIP LOCKED`), publishes them with the
 * idempotent producer under its own deadline, and deletes them in the same transaction only after
 * Kafka acknowledged them. A failed or timed-out publish rolls back: the rows stay and are claimed
 * again (the broker may have written them anyway: peers apply idempotently). Nothing is remembered
 * between passes, so rows of transactions that commit out of id order are never skipped.
 *
 * Wake-up: an in-process `wake()` after each API commit, plus a short idle poll for rows written by
 * other processes. (LISTEN/NOTIFY was not used: a NOTIFY on every write serialises commits.)
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../../shared/logging/logger.js';
import type { Publisher } from '../../shared/kafka/publisher.js';
import { claimOutbox, deleteOutbox } from '../../shared/db/queries/outbox.js';
import { withTransaction } from '../../shared/db/withTransaction.js';

export interface OutboxRelayEvents {
  published: [info: { count: number; ms: number }];
  publishFailed: [err: unknown];
}

export interface OutboxRelayOptions {
  readonly pool: pg.Pool;
  readonly publisher: Publisher;
  readonly topic: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly publishTimeoutMs: number;
  readonly log: Logger;
  /** Longest wait between attempts after failures. @default 5000 */
  readonly maxBackoffMs?: number;
}

export class OutboxRelay extends EventEmitter<OutboxRelayEvents> {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private pendingWake = false;
  private failures = 0;

  constructor(private readonly options: OutboxRelayOptions) {
    super();
  }

  /** Consecutive failed passes; 0 once a pass succeeds. A rough "broker link" signal. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Ask for a pass now (after a commit in this process). Cheap; coalesces. */
  wake(): void {
    this.pendingWake = true;
    this.wakeUp?.();
  }

  /**
   * One pass: claim, publish, delete, commit. Returns the number of rows published. Throws when
   * the publish or the database failed (the rows stay for the next pass).
   */
  async drainOnce(): Promise<number> {
    const { pool, publisher, topic, batchSize, publishTimeoutMs } = this.options;
    const started = performance.now();
    const count = await withTransaction(pool, async (client) => {
      const rows = await claimOutbox(client, batchSize);
      if (rows.length === 0) return 0;
      await publisher.publish(
        topic,
        rows.map((r) => ({ key: r.msgKey, value: Buffer.from(JSON.stringify(r.payload)) })),
        publishTimeoutMs,
      );
      await deleteOutbox(
        client,
        rows.map((r) => r.id),
      );
      return rows.length;
    });
    if (count > 0) this.emit('published', { count, ms: performance.now() - started });
    return count;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { batchSize, pollIntervalMs, log } = this.options;
    const maxBackoff = this.options.maxBackoffMs ?? 5000;
    while (this.running) {
      this.pendingWake = false;
      let wait = pollIntervalMs;
      try {
        const n = await this.drainOnce();
        this.failures = 0;
        if (n >= batchSize) continue; // more is waiting
      } catch (err) {
        this.failures += 1;
        wait = Math.min(maxBackoff, pollIntervalMs * 2 ** Math.min(this.failures, 12));
        log.warn({ err, failures: this.failures, retryInMs: wait }, 'outbox relay pass failed');
        this.emit('publishFailed', err);
        await this.sleep(wait, false);
        continue;
      }
      await this.sleep(wait, true);
    }
  }

  /** Wait `ms`; `wake()` cuts the wait short only when `wakeable`, `stop()` always does. */
  private sleep(ms: number, wakeable: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = () => {
        if (wakeable || !this.running) done();
      };
      if (!this.running || (wakeable && this.pendingWake)) done();
    });
  }
}
