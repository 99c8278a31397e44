/**
 * The peer-event applier: consumes every peer region's change topic in this region's consumer
 * group and applies each batch in one PostgreSQL transaction. Offsets advance only after commit
 * (see KafkaBatchConsumer), so a crash re-delivers, and re-delivery is harmless.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../../shared/logging/logger.js';
import {
  LINK_DOWN_RESTART_MS,
  NotReadyForBatchesError,
  type BatchConsumer,
  type ConsumerSnapshot,
  type IncomingBatch,
} from '../../shared/kafka/consumer.js';
import type { NewConflict } from '../../shared/db/queries/conflict.js';
import type { DeadLetter } from '../../shared/db/queries/deadLetter.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import { DeadLetterCode, insertDeadLetters } from '../../shared/db/queries/deadLetter.js';
import { recordReplicationGap, type NewReplicationGap } from '../../shared/db/queries/replicationGap.js';
import { topicOrigin } from '../../shared/kafka/topics.js';
import { sqlState } from '../../shared/errors/pgErrors.js';
import { failureKind } from '../../shared/errors/failureKind.js';
import { retry, STOPPED } from '../../shared/lifecycle/retry.js';
import type { FetchedAt, IncomingMessage } from '../../shared/kafka/consumer.js';
import {
  applyBatch,
  authenticateBatch,
  deadLetterOf,
  emptyResult,
  mergeResults,
  type ApplyContext,
  type ApplyResult,
  type Authenticated,
  type Quarantined,
} from '../../shared/replication/applyBatch.js';

export interface PeerApplierEvents {
  applied: [
    result: ApplyResult & { topic: string; partition: number; lastOffset: string; fetchedAt?: FetchedAt },
  ];
  conflict: [conflict: NewConflict];
  deadLettered: [letter: DeadLetter];
  /** A message that failed authentication (also emitted as `deadLettered`, code `quarantined`). */
  quarantined: [quarantined: Quarantined];
  /** Events Kafka deleted before this region read them (recorded in `replication_gap`). */
  eventsLost: [gap: NewReplicationGap];
}

/**
 * Batches of up to this many messages have their signatures checked inline, larger ones on libuv's
 * thread pool: at ~0.1 ms a check, a few block the event loop less than the hops to the pool and back
 * delay the batch when the process is busy (stage histograms, bench/README.md).
 */
export const INLINE_SIGNATURE_CHECKS = 4;

export interface PeerApplierOptions extends ApplyContext {
  readonly pool: pg.Pool;
  readonly consumer: BatchConsumer;
  readonly log: Logger;
  /** Delay between attempts to join the group while Kafka is unreachable. @default 2000 */
  readonly startRetryMs?: number;
  /**
   * Why batches cannot be applied yet (the region awaits its initial snapshot), or undefined when
   * they can: a batch that comes meanwhile waits, its offsets uncommitted.
   */
  readonly notReadyReason?: () => string | undefined;
  /**
   * The region's broker link is known down: the group join is not retried meanwhile (only every
   * LINK_DOWN_RESTART_MS), and {@link PeerApplier.retryNow} retries it at once when the link is back.
   */
  readonly linkDown?: () => boolean;
}

/**
 * A fetched batch is applied in transactions of at most this many messages, in order. Each key
 * takes an advisory lock until commit, and PostgreSQL's lock table is shared and bounded
 * (max_locks_per_transaction × max_connections = 6,400 by default): a catch-up batch of small
 * events (kafkajs fetches up to 1 MB per partition, thousands of events) applied by two partitions
 * at once could exhaust it. Pipelining keeps the per-transaction cost at two round trips.
 */
const MAX_MESSAGES_PER_TRANSACTION = 1000;

/**
 * The first transaction of a partition's batch after it was idle this long (a heal, a restart, a
 * new region's catch-up) takes at most {@link FIRST_MESSAGES_AFTER_IDLE} messages, so that
 * replication is seen resuming (rows, progress, status) within a small transaction's time instead
 * of verifying and applying a thousand events first. One extra transaction per resume; in steady
 * state a partition sees a heartbeat every second and its batches are small anyway.
 */
const RESUME_AFTER_IDLE_MS = 2000;
const FIRST_MESSAGES_AFTER_IDLE = 100;

export class PeerApplier extends EventEmitter<PeerApplierEvents> {
  private running = false;
  private starting: Promise<void> | undefined;
  private joined = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  /** retryNow came between two joins: the next wait is skipped. */
  private skipJoinWait = false;
  /** `topic/partition` → when its last batch was applied (performance.now()). */
  private readonly lastBatchAt = new Map<string, number>();
  /** The failure retrying cannot cure that ended the group join, if one did. */
  private stoppedBy: string | undefined;

  constructor(private readonly options: PeerApplierOptions) {
    super();
  }

  /** True once the consumer has joined its group. */
  get isConsuming(): boolean {
    return this.joined;
  }

  /**
   * The consumer's live state (joined, crashes, lag), when it reports one, with the failure that
   * stopped the group join, if one did.
   */
  consumerSnapshot(): ConsumerSnapshot | undefined {
    const snapshot = this.options.consumer.snapshot?.();
    if (snapshot === undefined || this.stoppedBy === undefined) return snapshot;
    return { ...snapshot, stoppedBy: snapshot.stoppedBy ?? this.stoppedBy };
  }

  /** Start consuming in the background; keeps retrying while Kafka is unreachable. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stoppedBy = undefined;
    this.starting = this.joinUntilRunning();
  }

  /** Apply one batch (the consumer's handler; also a deterministic step for tests). */
  async applyOnce(batch: IncomingBatch): Promise<ApplyResult> {
    const notReady = this.options.notReadyReason?.();
    if (notReady !== undefined) throw new NotReadyForBatchesError(notReady);
    const started = performance.now();
    if (batch.lost !== undefined) await this.recordLost(batch);
    let result = emptyResult();
    const partitionKey = `${batch.topic}/${batch.partition}`;
    const last = this.lastBatchAt.get(partitionKey);
    const size =
      last === undefined || started - last > RESUME_AFTER_IDLE_MS
        ? FIRST_MESSAGES_AFTER_IDLE
        : MAX_MESSAGES_PER_TRANSACTION;
    // The first transaction goes alone (the first apply after idle is not kept waiting), then the
    // messages of all the others are authenticated together: their chains
    // (shared/security/eventAuth.ts) are seen whole, not cut at transaction boundaries.
    const first = batch.messages.slice(0, size);
    if (first.length > 0) result = await this.applyIsolatingPoison(first);
    const rest = batch.messages.slice(size);
    const authenticated =
      rest.length > INLINE_SIGNATURE_CHECKS ? await authenticateBatch(rest, this.options) : undefined;
    for (let i = 0; i < rest.length; i += MAX_MESSAGES_PER_TRANSACTION) {
      const chunk = rest.slice(i, i + MAX_MESSAGES_PER_TRANSACTION);
      const checks = authenticated?.slice(i, i + MAX_MESSAGES_PER_TRANSACTION);
      result = mergeResults(result, await this.applyIsolatingPoison(chunk, checks));
    }
    this.lastBatchAt.set(partitionKey, performance.now());
    const lastOffset = batch.messages[batch.messages.length - 1]?.offset ?? '-1';
    if (result.deadLetters.length > 0) {
      const quarantined = new Set(result.quarantined.map((x) => x.letter));
      for (const x of result.quarantined) {
        const d = x.letter;
        this.options.log.error(
          { topic: d.topic, partition: d.partition, offset: d.offset, quarantine: x.kind, reason: d.reason },
          'quarantined peer event: it failed authentication and is not applied',
        );
        this.emit('quarantined', x);
      }
      for (const d of result.deadLetters) {
        if (!quarantined.has(d))
          this.options.log.error(
            { topic: d.topic, partition: d.partition, offset: d.offset, reason: d.reason },
            'dead-lettered peer event',
          );
        this.emit('deadLettered', d);
      }
    }
    for (const c of result.conflicts) this.emit('conflict', c);
    this.options.log.debug(
      {
        topic: batch.topic,
        partition: batch.partition,
        lastOffset,
        changes: result.changes,
        outcomes: result.outcomes,
        ms: Math.round(performance.now() - started),
      },
      'applied peer batch',
    );
    this.emit('applied', {
      ...result,
      topic: batch.topic,
      partition: batch.partition,
      lastOffset,
      ...(batch.fetchedAt !== undefined ? { fetchedAt: batch.fetchedAt } : {}),
    });
    return result;
  }

  /**
   * Kafka deleted events of this partition before they were applied here: recorded (before the batch
   * after them can commit its offset) so that status and metrics say this region is incomplete until
   * a re-bootstrap, and never claim it converged.
   */
  private async recordLost(batch: IncomingBatch): Promise<void> {
    const gap: NewReplicationGap = {
      topic: batch.topic,
      partition: batch.partition,
      origin: topicOrigin(this.options.topicPrefix, batch.topic) ?? batch.topic,
      fromOffset: batch.lost!.fromOffset,
      toOffset: batch.lost!.toOffset,
    };
    await recordReplicationGap(this.options.pool, gap);
    this.options.log.error(
      { ...gap, events: Number(BigInt(gap.toOffset) - BigInt(gap.fromOffset)) },
      'peer events lost to Kafka retention: this region is incomplete until re-bootstrapped (hothot lab rebootstrap)',
    );
    this.emit('eventsLost', gap);
  }

  /**
   * Apply the batch in one transaction. If PostgreSQL rejects it for a reason that retrying will
   * not cure (not a lost connection, deadlock or restart), apply the messages one by one and
   * dead-letter the one it rejects, so one bad event can never stall its partition.
   */
  private async applyIsolatingPoison(
    messages: readonly IncomingMessage[],
    checked?: Authenticated,
  ): Promise<ApplyResult> {
    const { pool } = this.options;
    // Signatures checked before the transaction (none stays open meanwhile), unless the caller did:
    // on the thread pool for a large batch; inline for a small one (applyBatch checks them before
    // its first statement), as a round trip through the pool costs more than the checks.
    const authenticated =
      checked ??
      (messages.length <= INLINE_SIGNATURE_CHECKS
        ? undefined
        : await authenticateBatch(messages, this.options));
    try {
      return await withTransaction(pool, (client, tx) =>
        applyBatch(client, messages, this.options, tx, authenticated),
      );
    } catch (err) {
      // Transient failures are the consumer's to retry; programmer errors crash; only a rejection
      // of the data itself is looked for message by message.
      if (failureKind(err) !== 'permanent' || messages.length === 0) throw err;
      this.options.log.warn(
        { err, messages: messages.length },
        'batch rejected by PostgreSQL; applying its messages one by one',
      );
    }
    const results: ApplyResult[] = [];
    for (const [i, m] of messages.entries()) {
      try {
        const one = authenticated === undefined ? undefined : [authenticated[i]];
        results.push(
          await withTransaction(pool, (client, tx) => applyBatch(client, [m], this.options, tx, one)),
        );
      } catch (err) {
        if (failureKind(err) !== 'permanent') throw err;
        // Not every error here is PostgreSQL's: say so only when it carries a SQLSTATE.
        const message = err instanceof Error ? err.message : String(err);
        const state = sqlState(err);
        const letter = deadLetterOf(
          m,
          state === undefined
            ? `could not be applied: ${message}`
            : `rejected by PostgreSQL: ${message} (SQLSTATE ${state})`,
          DeadLetterCode.Rejected,
        );
        await withTransaction(pool, (client) => insertDeadLetters(client, [letter]));
        results.push({ ...emptyResult(), deadLetters: [letter] });
      }
    }
    return results.reduce(mergeResults, emptyResult());
  }

  /** Consume these peer topics from now on (a peer joined or left the mesh). */
  async setTopics(topics: readonly string[]): Promise<void> {
    await this.options.consumer.setTopics?.(topics);
  }

  /**
   * The region's broker link came back: a group join waiting out its retry interval, and a crashed
   * consumer waiting out its restart backoff, go now instead of up to seconds after the heal.
   */
  retryNow(): void {
    if (this.wakeRetry !== undefined) this.wakeRetry();
    // Between waits (an attempt that began before the heal may still fail): its wait is skipped.
    else if (this.running && !this.joined) this.skipJoinWait = true;
    this.options.consumer.retryNow?.();
  }

  /** The wait between group joins, which {@link retryNow} and {@link stop} cut short. */
  private joinWait(ms: number): Promise<void> {
    if (this.skipJoinWait || !this.running) {
      this.skipJoinWait = false;
      return Promise.resolve();
    }
    const waitMs = this.options.linkDown?.() === true ? Math.max(ms, LINK_DOWN_RESTART_MS) : ms;
    return new Promise<void>((resolve) => {
      this.retryTimer = setTimeout(resolve, waitMs);
      this.wakeRetry = () => {
        clearTimeout(this.retryTimer);
        resolve();
      };
    }).finally(() => {
      this.wakeRetry = undefined;
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    await this.starting;
    await this.options.consumer.stop();
    this.joined = false;
  }

  private async joinUntilRunning(): Promise<void> {
    const delay = this.options.startRetryMs ?? 2000;
    try {
      const joined = await retry(
        () => this.options.consumer.start((batch) => this.applyOnce(batch).then(() => undefined)),
        {
          what: 'applier group join',
          log: this.options.log,
          backoff: { firstMs: delay, maxMs: delay },
          stopped: () => !this.running,
          // stop() and retryNow() cut the wait short.
          wait: (ms) => this.joinWait(ms),
        },
      );
      if (joined === STOPPED) return;
      this.joined = true;
      this.options.log.info('applier consuming peer topics');
    } catch (err) {
      // Permanent (Kafka refuses this region's principal the group or the topics): joining again
      // cannot succeed; the status says why. (A programmer error crashes the process.)
      if (failureKind(err) === 'bug') return;
      this.stoppedBy = err instanceof Error ? err.message : String(err);
      this.options.log.error(
        { err },
        'applier cannot join its consumer group and retrying cannot cure it; fix the cause and restart the region',
      );
    }
  }
}
