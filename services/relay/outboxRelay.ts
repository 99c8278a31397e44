/**
 * The outbox relay: moves committed outbox rows to this region's change topic.
 *
 * Each pass claims the oldest unpublished rows (`FOR UPDATE SKIP LOCKED`), publishes them with the
 * idempotent producer under its own deadline, and deletes them in the same transaction only after
 * Kafka acknowledged them. A failed or timed-out publish rolls back: the rows stay and are claimed
 * again (the broker may have written them anyway: peers apply idempotently). Nothing is remembered
 * between passes, so rows of transactions that commit out of id order are never skipped. When more
 * is waiting, a pass's COMMIT carries the next pass's BEGIN and claim in the same write (no round
 * trip between two passes; the server still runs them in order).
 *
 * Wake-up: an in-process `wake()` after each API commit, plus a short idle poll for rows written by
 * other processes. (LISTEN/NOTIFY was not used: a NOTIFY on every write serialises commits.)
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Logger } from '../../shared/logging/logger.js';
import { chunkBySize, fitsInOneBatch, recordBytes } from '../../shared/kafka/messageSize.js';
import {
  keyPartition,
  MessageTooLargeError,
  type OutgoingMessage,
  type Publisher,
} from '../../shared/kafka/publisher.js';
import { claimOutbox, deleteOutbox, holdOutboxRow, type OutboxRow } from '../../shared/db/queries/outbox.js';
import type { EventSigner } from '../../shared/security/eventAuth.js';
import { safeBeforeMs } from '../../shared/db/queries/pgStatActivity.js';
import type { RelaySnapshot } from '../../shared/status/liveStatus.js';
import type { Heartbeats } from './heartbeats.js';
import { rollBackFailed, sendTogether } from '../../shared/db/withTransaction.js';
import { failureKind, TransientError } from '../../shared/errors/failureKind.js';
import { retry, STOPPED } from '../../shared/lifecycle/retry.js';

/**
 * Chunks of up to this many messages are signed inline, larger ones on libuv's thread pool. At
 * ~0.06 ms a signature, 64 block the event loop for ~4 ms; on a busy process the pool's round trip
 * costs more, as its completions wait behind the API's requests: at 500 writes/s claimed → sent
 * p50 20–23 ms with 8, 9 ms with 64, and the lag's p50 125–140 → 100–109 ms (three interleaved
 * quick runs each, docs/architecture.md). Past 64 (a backlog) the pool signs in parallel.
 */
export const INLINE_SIGNATURES = 64;

/** An outbox row the relay set aside because Kafka will not take it. */
export interface HeldEvent {
  readonly id: string;
  readonly msgKey: string;
  readonly bytes: number;
  readonly limitBytes: number;
  readonly reason: string;
}

/**
 * When the changes of one pass went through the relay's stages (the replication-stage metrics):
 * times from `performance.now()` but the two wall clocks, which compare with the write's HLC stamp.
 */
export interface RelayTiming {
  /** Each published change's HLC wall: when it was written in this region, ms since the epoch. */
  readonly writtenAtMs: readonly number[];
  /** Aligned with writtenAtMs: when its chunk was handed to the producer, and acknowledged. */
  readonly sentMono: readonly number[];
  readonly ackedMono: readonly number[];
  /** When the claim returned: wall clock (ms since the epoch) and `performance.now()`. */
  readonly claimedWallMs: number;
  readonly claimedMono: number;
  /** When the relay's transaction (the rows deleted) committed. */
  readonly committedMono: number;
}

export interface OutboxRelayEvents {
  published: [info: { count: number; ms: number; timing: RelayTiming }];
  publishFailed: [err: unknown];
  held: [info: HeldEvent];
}

/** A pass's transaction: BEGIN and the claim sent on `client`; `first` is what they return. */
interface Begun {
  readonly client: pg.PoolClient;
  readonly first: Promise<[safeBefore: number | undefined, rows: OutboxRow[]]>;
}

/** A message on its way out, with the outbox row it comes from (none for a heartbeat). */
interface Pending extends OutgoingMessage {
  readonly rowId?: string;
  readonly valueBytes: number;
}

export interface OutboxRelayOptions {
  readonly pool: pg.Pool;
  readonly publisher: Publisher;
  readonly topic: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  readonly publishTimeoutMs: number;
  /** The largest record batch Kafka takes (see MessageLimit): publishes are split by it. */
  readonly messageLimit: { readonly bytes: number };
  readonly log: Logger;
  /** Heartbeats to send with the passes (every partition, once the outbox is drained). */
  readonly heartbeats?: Heartbeats;
  /**
   * Signs every message (changes and heartbeats) in publish order, each attempt afresh: a retried
   * publish carries new sequence numbers. Absent: published unsigned (SECURITY_MODE=insecure-dev).
   */
  readonly signer?: EventSigner;
  /**
   * Partitions of the topic (undefined until known): a signed message names its partition, so the
   * relay places keyed messages itself (as the producer would) and waits until this is known.
   */
  readonly partitions?: () => number | undefined;
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
  /** The permanent failure that stopped the relay, if one did (start() clears it). */
  private stoppedBy: { at: number; message: string } | undefined;
  private passStartedAt: number | undefined;
  private heldTotal = 0;
  /** The next pass's transaction, begun with the last pass's COMMIT (see drainOnce). */
  private chained: Begun | undefined;

  constructor(private readonly options: OutboxRelayOptions) {
    super();
  }

  /** Consecutive failed passes; 0 once a pass succeeds. */
  get consecutiveFailures(): number {
    return this.failures;
  }

  /** What `/v1/status` shows about the relay. */
  snapshot(): RelaySnapshot {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    return {
      running: this.running,
      consecutiveFailures: this.failures,
      lastPublishOkAt: iso(this.lastOkAt),
      lastFailureAt: iso(this.lastFailure?.at),
      lastFailure: this.lastFailure?.message ?? null,
      passRunningMs: this.passStartedAt === undefined ? null : Date.now() - this.passStartedAt,
      heldByThisProcess: this.heldTotal,
      stoppedBy: this.stoppedBy?.message ?? null,
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
   *
   * The claimed rows are published in order, in chunks that fit the broker's limit (a single
   * send() puts all of a partition's messages in one record batch, refused whole when too large). A
   * row that can never fit (the limit was lowered after it was written) is moved to `outbox_held` in
   * the same transaction, loudly, so that it does not block the rows behind it.
   */
  async drainOnce(): Promise<number> {
    const { pool, heartbeats } = this.options;
    // A signed message names its partition: until the topic's partition count is known (start-up,
    // or Kafka unreachable since), nothing is claimed; the idle poll comes back for it.
    if (this.options.signer !== undefined && this.options.partitions?.() === undefined) {
      this.pendingWake = false;
      await this.endChained();
      return 0;
    }
    const started = performance.now();
    let beatsSent = false;
    let heldNow: HeldEvent[] = [];
    let timing: Omit<RelayTiming, 'committedMono'> | undefined;
    // The transaction the previous pass began with its COMMIT, or a new one.
    const begun = this.chained ?? this.begin(await pool.connect());
    this.chained = undefined;
    const { client } = begun;
    let commitSent = false;
    let keepClient = false;
    let broken: unknown;
    let count: number;
    try {
      const [safeBefore, rows] = await begun.first;
      const claimed = { claimedWallMs: Date.now(), claimedMono: performance.now() };
      heartbeats?.noteClaimed(maxStampWall(rows));
      const beats =
        heartbeats !== undefined && safeBefore !== undefined
          ? await heartbeats.build(client, { drained: rows.length < this.options.batchSize, safeBefore })
          : [];
      if (rows.length === 0 && beats.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
      const sentAt = new Map<string, { sentMono: number; ackedMono: number }>();
      const held = await this.publishInChunks(rows, beats, sentAt);
      // More was committed since the claim (a wake came, or the claim was full): the next pass's
      // BEGIN and claim leave with this COMMIT, in the same write, rather than a round trip later.
      const chain = this.running && (this.pendingWake || rows.length >= this.options.batchSize);
      commitSent = true;
      const [last, commit, next] = sendTogether(
        client,
        () =>
          [
            Promise.all([
              ...held.map((h) => holdOutboxRow(client, h.id, h.reason)),
              deleteOutbox(
                client,
                rows.filter((r) => !held.some((h) => h.id === r.id)).map((r) => r.id),
              ),
            ]),
            client.query('COMMIT'),
            chain ? this.claimAfterBegin(client) : undefined,
          ] as const,
      );
      // Settled whatever happens, so that a failure below leaves no unhandled rejection.
      next?.catch(() => undefined);
      const [lastResult, commitResult] = await Promise.allSettled([last, commit]);
      if (commitResult.status === 'rejected') broken = commitResult.reason;
      const failed = [lastResult, commitResult].find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        if (next !== undefined) {
          try {
            await this.rollBackBegun({ client, first: next });
          } catch (rollbackErr) {
            broken ??= rollbackErr;
          }
        }
        throw failed.reason;
      }
      if (next !== undefined) {
        this.chained = { client, first: next };
        keepClient = true;
      }
      heldNow = held;
      beatsSent = beats.length > 0;
      timing = relayTiming(rows, sentAt, claimed);
      count = rows.length - held.length;
    } catch (err) {
      broken = await rollBackFailed(client, err, { commitSent, broken });
      throw err;
    } finally {
      if (!keepClient) client.release(broken instanceof Error ? broken : undefined);
    }
    if (beatsSent) heartbeats?.sent();
    for (const h of heldNow) {
      this.heldTotal += 1;
      this.options.log.error(
        { outboxId: h.id, msgKey: h.msgKey, bytes: h.bytes, limitBytes: h.limitBytes, reason: h.reason },
        'outbox row held: Kafka will not take it, so peers will not see this version; ' +
          'raise the limit and run `hothot outbox retry`, or `hothot outbox drop` it',
      );
      this.emit('held', h);
    }
    if (count > 0)
      this.emit('published', {
        count,
        ms: performance.now() - started,
        timing: { ...timing, committedMono: performance.now() },
      });
    return count;
  }

  /** BEGIN and the claim on `client`, in one write (one round trip). */
  private begin(client: pg.PoolClient): Begun {
    return { client, first: sendTogether(client, () => this.claimAfterBegin(client)) };
  }

  /**
   * Send BEGIN, then the safe-before mark when a heartbeat may be due, then the claim (statements in
   * that order: every write committed before the mark is claimable by the claim). Wakes until now are
   * answered by this claim.
   */
  private claimAfterBegin(client: pg.PoolClient): Promise<[number | undefined, OutboxRow[]]> {
    this.pendingWake = false;
    const begin = client.query('BEGIN');
    const safeBefore = this.options.heartbeats?.mayBeDue() ? safeBeforeMs(client, 0) : undefined;
    const rows = claimOutbox(client, this.options.batchSize);
    return Promise.all([begin, safeBefore, rows]).then(([, mark, claimed]) => [mark, claimed]);
  }

  /** End a transaction begun for a pass that will not run, and give its client back. */
  private async rollBackBegun(begun: Begun): Promise<void> {
    await begun.first.catch(() => undefined);
    await begun.client.query('ROLLBACK');
  }

  /** End the chained transaction, if any (the relay stops or pauses before its pass runs). */
  private async endChained(): Promise<void> {
    const begun = this.chained;
    if (begun === undefined) return;
    this.chained = undefined;
    let broken: unknown;
    try {
      await this.rollBackBegun(begun);
    } catch (err) {
      broken = err;
    } finally {
      begun.client.release(broken instanceof Error ? broken : undefined);
    }
  }

  /**
   * Publish `rows` then `beats` in order, in chunks under the message limit; returns the rows that
   * can never be published (to hold). A chunk the broker refuses as too large is split in two and
   * each half published in turn, down to a single row, which is then held. `sentAt` gets when each
   * published row's chunk went to the producer and was acknowledged.
   */
  private async publishInChunks(
    rows: readonly OutboxRow[],
    beats: readonly OutgoingMessage[],
    sentAt: Map<string, { sentMono: number; ackedMono: number }>,
  ): Promise<HeldEvent[]> {
    const { publisher, topic, publishTimeoutMs, batchSize } = this.options;
    const limitBytes = this.options.messageLimit.bytes;
    const held: HeldEvent[] = [];
    const hold = (m: Pending, reason: string) =>
      held.push({ id: m.rowId!, msgKey: m.key, bytes: m.valueBytes, limitBytes, reason });
    const pending: Pending[] = [];
    for (const r of rows) {
      const value = Buffer.from(r.payload);
      const m: Pending = { key: r.msgKey, value, rowId: r.id, valueBytes: value.length };
      if (fitsInOneBatch(Buffer.byteLength(r.msgKey), value.length, limitBytes)) pending.push(m);
      else
        hold(m, `the event is ${value.length} bytes: more than Kafka's limit of ${limitBytes} bytes a batch`);
    }
    for (const b of beats) pending.push({ ...b, valueBytes: b.value.length });
    // Signed just before each attempt, in publish order: one signature per message (and one per
    // partition of the chunk, over its chain: see shared/security/eventAuth.ts), with the next
    // number of this relay's publish sequence, so whatever Kafka writes of a partial or repeated
    // attempt (a chunk refused for one partition only, then split) carries increasing numbers.
    const { signer } = this.options;
    const partitions = this.options.partitions?.();
    if (signer !== undefined && partitions === undefined)
      throw new TransientError(`the partitions of ${topic} are not known yet: nothing is signed before`);
    // Sequence numbers are taken in order, synchronously; the signatures are made on the thread pool,
    // or inline for a small chunk (see INLINE_SIGNATURES).
    const signed = (chunk: Pending[]): Promise<Pending[]> | Pending[] => {
      if (signer === undefined) return chunk;
      const placed = chunk.map((m) => ({ ...m, partition: m.partition ?? keyPartition(m.key, partitions!) }));
      // Then chained per partition, on from the last chunk: a peer checks one signature per
      // partition of the batch it fetched.
      if (placed.length <= INLINE_SIGNATURES)
        return signer.chain(placed.map((m) => ({ ...m, headers: signer.headers(m.value, m.partition) })));
      return Promise.all(
        placed.map(async (m) => ({ ...m, headers: await signer.headersAsync(m.value, m.partition) })),
      ).then((messages) => signer.chain(messages));
    };
    const publishChunk = async (chunk: Pending[]): Promise<void> => {
      try {
        const messages = await signed(chunk);
        const sentMono = performance.now();
        await publisher.publish(topic, messages, publishTimeoutMs);
        const times = { sentMono, ackedMono: performance.now() };
        for (const m of chunk) if (m.rowId !== undefined) sentAt.set(m.rowId, times);
      } catch (err) {
        if (!(err instanceof MessageTooLargeError)) throw err;
        if (chunk.length === 1) {
          // A heartbeat: nothing to hold; the next pass sends a fresh one (the limit may be raised).
          if (chunk[0]!.rowId === undefined)
            throw new TransientError('Kafka refused a heartbeat as too large', { cause: err });
          hold(chunk[0]!, `Kafka refused the event of ${chunk[0]!.valueBytes} bytes (${err.kafkaError})`);
          return;
        }
        const half = Math.ceil(chunk.length / 2);
        await publishChunk(chunk.slice(0, half));
        await publishChunk(chunk.slice(half));
      }
    };
    const size = (m: Pending) => recordBytes(Buffer.byteLength(m.key), m.valueBytes);
    for (const chunk of chunkBySize(pending, size, limitBytes, batchSize)) await publishChunk(chunk);
    return held;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    try {
      await this.runPasses();
    } finally {
      await this.endChained();
    }
  }

  private async runPasses(): Promise<void> {
    const { batchSize, pollIntervalMs, log } = this.options;
    const backoff = { firstMs: pollIntervalMs * 2, maxMs: this.options.maxBackoffMs ?? 5000 };
    this.stoppedBy = undefined;
    while (this.running) {
      let published: number | typeof STOPPED;
      try {
        // Transient failures (Kafka or PostgreSQL unreachable) retried with backoff; the rows stay.
        published = await retry(() => this.pass(), {
          what: 'outbox relay pass',
          log,
          backoff,
          stopped: () => !this.running,
          wait: (ms) => this.sleep(ms, false),
          onFailure: (err, failures) => {
            this.failures = failures;
            this.lastFailure = { at: Date.now(), message: err instanceof Error ? err.message : String(err) };
            this.emit('publishFailed', err);
          },
        });
      } catch (err) {
        // Permanent (e.g. the broker refuses this principal the topic): retrying cannot publish, so
        // the relay stops and says why; the outbox keeps every row. (A programmer error crashes.)
        this.running = false;
        if (failureKind(err) === 'bug') return; // logged as fatal and crashing the process
        const message = err instanceof Error ? err.message : String(err);
        this.stoppedBy = { at: Date.now(), message };
        this.lastFailure = this.stoppedBy;
        log.error(
          { err },
          'outbox relay stopped: a failure retrying cannot cure; the outbox keeps its rows, fix the cause and restart the region',
        );
        this.emit('publishFailed', err);
        return;
      }
      if (published === STOPPED) return;
      if (published >= batchSize || this.chained !== undefined) continue; // more is waiting
      await this.sleep(pollIntervalMs, true);
    }
  }

  /** One pass, timed for the status; resets the failure count when it succeeds. */
  private async pass(): Promise<number> {
    this.passStartedAt = Date.now();
    try {
      const n = await this.drainOnce();
      this.failures = 0;
      if (n > 0) this.lastOkAt = Date.now();
      return n;
    } finally {
      this.passStartedAt = undefined;
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

/** The stage times of the published `rows` that carry a write's stamp (changes), in claim order. */
function relayTiming(
  rows: readonly OutboxRow[],
  sentAt: ReadonlyMap<string, { sentMono: number; ackedMono: number }>,
  claimed: { claimedWallMs: number; claimedMono: number },
): Omit<RelayTiming, 'committedMono'> {
  const writtenAtMs: number[] = [];
  const sentMono: number[] = [];
  const ackedMono: number[] = [];
  for (const r of rows) {
    const t = sentAt.get(r.id);
    if (t === undefined || r.stampWall === null) continue;
    writtenAtMs.push(r.stampWall);
    sentMono.push(t.sentMono);
    ackedMono.push(t.ackedMono);
  }
  return { writtenAtMs, sentMono, ackedMono, ...claimed };
}

/** Greatest HLC wall among the claimed rows' events, if any. */
function maxStampWall(rows: readonly OutboxRow[]): number | undefined {
  let max: number | undefined;
  for (const r of rows) {
    if (r.stampWall !== null && (max === undefined || r.stampWall > max)) max = r.stampWall;
  }
  return max;
}
