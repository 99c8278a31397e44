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
import { claimOutbox, deleteOutbox, type OutboxRow } from '../../shared/db/queries/outbox.js';
import { safeBeforeMs } from '../../shared/db/queries/watermark.js';
import type { Heartbeats } from './heartbeats.js';
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
  /** Heartbeats to send with the passes (every partition, once the outbox is drained). */
  readonly heartbeats?: Heartbeats;
  /** Longest wait between attempts after failures. @default 5000 */
  readonly maxBackoffMs?: number;
}

export class OutboxRelay extends EventEmitter<OutboxRelayEvents> {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private pendingWake = false;
  private retryWake: (() => void) | undefined;
  private failures = 0;
  private lastOkAt: number | undefined;
  private lastFailure: { at: number; message: string } | undefined;
  private passStartedAt: number | undefined;

  constructor(private readonly options: OutboxRelayOptions) {
    super();
  }

  /** Consecutive failed passes; 0 once a pass succeeds. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** What `/v1/status` shows about the relay. */
  snapshot(): {
    running: boolean;
    consecutiveFailures: number;
    lastPublishOkAt: string | null;
    lastFailureAt: string | null;
    lastFailure: string | null;
    /** How long the pass in progress has been running (a publish waiting on Kafka), or null. */
    passRunningMs: number | null;
  } {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    return {
      running: this.running,
      consecutiveFailures: this.failures,
      lastPublishOkAt: iso(this.lastOkAt),
      lastFailureAt: iso(this.lastFailure?.at),
      lastFailure: this.lastFailure?.message ?? null,
      passRunningMs: this.passStartedAt === undefined ? null : Date.now() - this.passStartedAt,
    };
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
   * Cut a failure backoff short (the broker link just came back). Unlike {@link wake}, which only
   * ends an idle wait, so that a stream of commits during an outage cannot turn the backoff into a
   * busy loop.
   */
  retryNow(): void {
    this.retryWake?.();
  }

  /**
   * One pass: claim, publish, delete, commit. Returns the number of rows published. Throws when
   * the publish or the database failed (the rows stay for the next pass).
   */
  async drainOnce(): Promise<number> {
    const { pool, publisher, topic, batchSize, publishTimeoutMs, heartbeats } = this.options;
    const started = performance.now();
    let beatsSent = false;
    const count = await withTransaction(pool, async (client, tx) => {
      // Read the safe-before mark before claiming: every write committed before it is claimable now.
      // Both statements leave with the BEGIN (one round trip) and run in that order.
      const [safeBefore, rows] = await Promise.all([
        heartbeats?.mayBeDue() ? safeBeforeMs(client, 0) : undefined,
        claimOutbox(client, batchSize),
      ]);
      heartbeats?.noteClaimed(maxStampWall(rows));
      const beats =
        heartbeats !== undefined && safeBefore !== undefined
          ? await heartbeats.build(client, { drained: rows.length < batchSize, safeBefore })
          : [];
      if (rows.length === 0 && beats.length === 0) return 0;
      await publisher.publish(
        topic,
        [...rows.map((r) => ({ key: r.msgKey, value: Buffer.from(r.payload) })), ...beats],
        publishTimeoutMs,
      );
      await tx.commitWith(() =>
        deleteOutbox(
          client,
          rows.map((r) => r.id),
        ),
      );
      beatsSent = beats.length > 0;
      return rows.length;
    });
    if (beatsSent) heartbeats?.sent();
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
        this.passStartedAt = Date.now();
        const n = await this.drainOnce();
        this.passStartedAt = undefined;
        this.failures = 0;
        if (n > 0) this.lastOkAt = Date.now();
        if (n >= batchSize) continue; // more is waiting
      } catch (err) {
        this.passStartedAt = undefined;
        this.failures += 1;
        this.lastFailure = { at: Date.now(), message: err instanceof Error ? err.message : String(err) };
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
        this.retryWake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.retryWake = done;
      this.wakeUp = () => {
        if (wakeable || !this.running) done();
      };
      if (!this.running || (wakeable && this.pendingWake)) done();
    });
  }
}

/** Greatest HLC wall among the claimed rows' events, if any. */
function maxStampWall(rows: readonly OutboxRow[]): number | undefined {
  let max: number | undefined;
  for (const r of rows) {
    if (r.stampWall !== null && (max === undefined || r.stampWall > max)) max = r.stampWall;
  }
  return max;
}
