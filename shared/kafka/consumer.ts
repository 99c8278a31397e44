/**
 * Consuming peer topics behind a narrow interface: batches in, offsets out only after the handler
 * has finished with the batch. A failing handler is retried with backoff (keeping the group session
 * alive) until it succeeds or the consumer stops, so the partition never skips a batch; a crashed
 * kafkajs consumer is always restarted, so a long broker outage never leaves it dead.
 */
import type { Admin, Consumer, Kafka, TopicOffsets } from 'kafkajs';
import type { Logger } from '../logging/logger.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { failureKind, TransientError } from '../errors/failureKind.js';
import { retry, STOPPED } from '../lifecycle/retry.js';
import { withTimeout } from '../lifecycle/withTimeout.js';
import { leaveGroupFor, membersWithClientId } from './groupMembers.js';

export interface IncomingMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
  /** The record's timestamp (ms since the epoch, as a decimal string): the producer's send time. */
  readonly timestamp?: string;
}

/** When a batch reached the handler: wall clock (ms since the epoch) and `performance.now()`. */
export interface FetchedAt {
  readonly wallMs: number;
  readonly monoMs: number;
}

export interface IncomingBatch {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly IncomingMessage[];
  /**
   * Offsets this consumer needed but Kafka no longer holds (retention deleted them first): the
   * partition's next offset to read was below its earliest retained offset, and kafkajs silently
   * reset to the earliest. Set on the first batch after the loss; those events are never delivered.
   */
  readonly lost?: OffsetGap;
  /** When the batch reached the handler (the replication-stage figures start the apply here). */
  readonly fetchedAt?: FetchedAt;
}

/** Offsets [fromOffset, toOffset) of one partition, as decimal strings. */
export interface OffsetGap {
  readonly fromOffset: string;
  readonly toOffset: string;
}

export type BatchHandler = (batch: IncomingBatch) => Promise<void>;

/**
 * Thrown by a batch handler that cannot take batches yet (its region awaits its initial snapshot):
 * the batch is offered again after `retryInMs`, the group session kept alive, with no warning and
 * no backoff (the wait ends as soon as the handler can go on).
 */
export class NotReadyForBatchesError extends Error {
  override readonly name = 'NotReadyForBatchesError';
  /** "Not yet": retried after `retryInMs`, not counted as a failure (shared/lifecycle/retry.ts). */
  readonly retryable = true;
  constructor(
    message: string,
    readonly retryInMs = 100,
  ) {
    super(message);
  }
}

export interface BatchConsumer {
  /** Join the group and feed batches to `handler` until {@link stop}. Resolves once running. */
  start(handler: BatchHandler): Promise<void>;
  /** Leave the group; waits for the batch in progress. */
  stop(): Promise<void>;
  /**
   * Consume these topics from now on (a peer joined or left): a running consumer leaves the group
   * and joins again with the new subscription; committed offsets keep their place, a new topic is
   * read from its start.
   */
  setTopics?(topics: readonly string[]): Promise<void>;
  /**
   * The broker is reachable again: a restart waiting out its backoff goes now, and a start still
   * connecting since before goes again.
   */
  retryNow?(): void;
  /** Live state for `/v1/status` and metrics. */
  snapshot?(): ConsumerSnapshot;
}

/** What the consumer knows about itself, without asking the broker. */
export interface ConsumerSnapshot {
  /** In its group and fetching (false between a crash and the rejoin). */
  readonly joined: boolean;
  readonly crashes: number;
  readonly lastCrashAt: string | null;
  readonly lastCrash: string | null;
  /**
   * Messages behind the partitions' high watermarks as of the last batch of each partition (so it
   * is stale, not zero, while the link is cut); null before the first batch.
   */
  readonly lagMessages: number | null;
  readonly lastBatchAt: string | null;
  /** Why the handler does not take the batches it is offered yet (NotReadyForBatchesError), or null. */
  readonly waitingFor: string | null;
  /**
   * The failure retrying cannot cure that stopped the consumer (a batch the handler fails on for
   * good, a group Kafka refuses this principal), or null. Offsets stay uncommitted.
   */
  readonly stoppedBy: string | null;
}

export interface KafkaBatchConsumerOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Batches of different partitions handled at once. @default 1 */
  readonly partitionsConsumedConcurrently?: number;
  /** @default 10000 */
  readonly sessionTimeoutMs?: number;
  /** Backoff ceiling between retries of a failing handler. @default 5000 */
  readonly maxHandlerBackoffMs?: number;
  /**
   * The region's broker link is known to be down (its probe): a crashed consumer is not restarted
   * meanwhile, only every {@link LINK_DOWN_RESTART_MS}, and {@link KafkaBatchConsumer.retryNow} (the
   * link back up) restarts it at once. A restart tried during the cut would still be inside kafkajs's
   * own connection retries at the heal, and the heal wait for it to fail.
   */
  readonly linkDown?: () => boolean;
  /**
   * The client id of the `kafka` this consumer was given, when no other client uses it (the region
   * gives its applier one with a random suffix). Each restart then looks for members that this
   * consumer's crashed predecessors left in the group and leaves for them, so that the new member's
   * join does not wait for their sessions to expire (shared/kafka/groupMembers.ts). Absent: no such
   * clean-up.
   */
  readonly memberClientId?: string;
}

/** While the broker link is known down, a restart is tried this rarely (in case the probe is wrong). */
export const LINK_DOWN_RESTART_MS = 30_000;

/** Delay before this wrapper restarts a consumer that kafkajs gave up on. */
const RESTART_DELAY_MS = 500;

/**
 * How long a restart waits for a consumer that is not in its group to disconnect: kafkajs's
 * disconnect waits for the requests in flight, and one sent into a cut link is answered only by the
 * request timeout (10 s). What it leaves in the group is left for instead (memberClientId).
 */
const DROP_NOT_JOINED_WAIT_MS = 250;

/**
 * A consumer still joining its group this long after the broker link came back is replaced: its
 * join waits for a request the cut swallowed (see retryNow).
 */
const STUCK_JOIN_AFTER_HEAL_MS = 1_500;

/** The longest a restart spends looking for and removing members left behind. */
const LEAVE_LEFT_BEHIND_MS = 3_000;

export class KafkaBatchConsumer implements BatchConsumer {
  private consumer: Consumer | undefined;
  private handler: BatchHandler | undefined;
  private stopped = false;
  /** The restart under way (waiting or starting), if any. */
  private restarting: Promise<void> | undefined;
  /** Ends the restart's current wait now (retryNow, stop). */
  private wakeRestart: (() => void) | undefined;
  /** retryNow came while the restart was not waiting: its next wait is skipped. */
  private skipRestartWait = false;
  /**
   * A crash came while a restart was already under way. kafkajs reports a failed group join from
   * inside `consumer.run()` (its runner catches the error and crashes the consumer before `run`
   * returns), so the restart that made this consumer sees its start "succeed" while the consumer is
   * already dead: this makes the restart go round again instead of leaving it dead.
   */
  private restartRequested = false;
  private joined = false;
  private crashes = 0;
  private lastCrash: { at: number; message: string } | undefined;
  /** The permanent failure that stopped this consumer, if one did (start() clears it). */
  private stoppedBy: { at: number; message: string } | undefined;
  private lastBatchAt: number | undefined;
  /** The reason the handler last gave for not taking batches yet; cleared by a handled batch. */
  private waitingFor: string | undefined;
  /** `topic/partition` → messages behind the high watermark after its last batch. */
  private readonly lag = new Map<string, number>();
  /** Offsets applied but not yet sent to be committed, by `topic/partition` (see eachBatch). */
  private readonly uncommitted = new Map<string, { topic: string; partition: number; offset: string }>();
  /** The latest batch's commit function (kafkajs's, of the consumer that delivered it). */
  private commitWith: ((offsets: { topics: TopicOffsets[] }) => Promise<void>) | undefined;
  /** The offset commit in flight, if any: one at a time, each taking whatever accumulated. */
  private offsetCommits: Promise<void> | undefined;
  /**
   * `topic/partition` → the next offset this group needs (committed at start, then after each
   * batch): a batch starting beyond it, on a partition whose earliest retained offset is beyond it
   * too, means events were deleted before they were read.
   */
  private readonly nextOffset = new Map<string, bigint>();
  private admin: Admin | undefined;
  private adminConnecting: Promise<Admin> | undefined;
  /** The topics subscribed (the options' until {@link setTopics}). */
  private topics: readonly string[];
  /** Started with no topic to consume: nothing runs until setTopics. */
  private idleWithoutTopics = false;
  /** A setTopics waits for the consumer to be in its group. */
  private topicsPending = false;
  /** Ends the current start's wait for its group join when its consumer is replaced. */
  private endStart: (() => void) | undefined;
  /**
   * A consumer of this wrapper crashed or was dropped before it was in its group: it sent no
   * LeaveGroup, and the next start looks for what it left (memberClientId).
   */
  private mayHaveLeftMembers = false;
  /** A join under way at a heal is replaced when this fires (see retryNow). */
  private stuckJoinTimer: NodeJS.Timeout | undefined;
  /** Abandons the start under way while it has not reached run() (see startNow, retryNow). */
  private abandonStart: (() => void) | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: KafkaBatchConsumerOptions,
    private readonly log: Logger,
  ) {
    this.topics = [...options.topics];
  }

  snapshot(): ConsumerSnapshot {
    const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
    return {
      joined: this.joined,
      crashes: this.crashes,
      lastCrashAt: iso(this.lastCrash?.at),
      lastCrash: this.lastCrash?.message ?? null,
      lagMessages: this.lag.size === 0 ? null : [...this.lag.values()].reduce((a, b) => a + b, 0),
      lastBatchAt: iso(this.lastBatchAt),
      waitingFor: this.waitingFor ?? null,
      stoppedBy: this.stoppedBy?.message ?? null,
    };
  }

  /**
   * Starts, restarts and re-subscriptions, one at a time: two overlapping starts would each make a
   * kafkajs consumer, and the one overwritten would stay in the group, holding partitions, until its
   * session timed out.
   */
  private lifecycle: Promise<unknown> = Promise.resolve();

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = this.lifecycle.then(work, work);
    this.lifecycle = next.catch(() => undefined);
    return next;
  }

  start(handler: BatchHandler): Promise<void> {
    this.stoppedBy = undefined;
    return this.serialized(() => this.startNow(handler));
  }

  /**
   * Leave the group with the current kafkajs consumer, if any (not waiting for anything else). One
   * in its group is waited for: it finishes its batch and sends its LeaveGroup. One that is not (a
   * crash, a join under way) only for {@link DROP_NOT_JOINED_WAIT_MS}: its requests may sit in a cut
   * link until they time out.
   */
  private async dropConsumer(): Promise<void> {
    const old = this.consumer;
    const wasJoined = this.joined;
    this.consumer = undefined;
    this.joined = false;
    if (old === undefined) return;
    if (!wasJoined) this.mayHaveLeftMembers = true;
    const disconnected = old.disconnect().catch(() => undefined);
    if (wasJoined) await disconnected;
    else await withTimeout(disconnected, DROP_NOT_JOINED_WAIT_MS).catch(() => undefined);
  }

  /**
   * Leave the group for the members this consumer's predecessors left in it (see memberClientId):
   * best effort, within {@link LEAVE_LEFT_BEHIND_MS}; a failure only means the next join waits for
   * their sessions to expire, as without it.
   */
  private async leaveLeftBehind(): Promise<void> {
    const clientId = this.options.memberClientId;
    if (clientId === undefined || !this.mayHaveLeftMembers) return;
    const { groupId } = this.options;
    const work = async () => {
      const admin = await this.connectedAdmin();
      const left = await membersWithClientId(admin, groupId, clientId);
      if (left.length > 0) {
        await leaveGroupFor(this.kafka, groupId, left);
        this.log.info(
          { members: left },
          'left the group for members earlier consumers of this process left behind',
        );
      }
      this.mayHaveLeftMembers = false;
    };
    try {
      await withTimeout(work(), LEAVE_LEFT_BEHIND_MS);
    } catch (err) {
      this.log.warn(
        { err },
        'could not remove members earlier consumers left in the group; the join waits for them',
      );
    }
  }

  private async startNow(handler: BatchHandler): Promise<void> {
    await this.dropConsumer();
    this.handler = handler;
    this.stopped = false;
    // Nothing to consume (a region without peers yet): joined when setTopics gives it some.
    this.idleWithoutTopics = this.topics.length === 0;
    if (this.idleWithoutTopics) return;
    const sessionTimeout = this.options.sessionTimeoutMs ?? 10_000;
    const consumer = this.kafka.consumer({
      groupId: this.options.groupId,
      sessionTimeout,
      rebalanceTimeout: Math.max(sessionTimeout, 10_000),
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 5)),
      maxWaitTimeInMs: 250,
      // Half kafkajs' default (1 MB): a fresh region catching up 60k events peaked at 165–172 MB RSS
      // instead of 186–189 MB, at the same apply rate within this machine's run-to-run noise.
      maxBytesPerPartition: 512 * 1024,
      allowAutoTopicCreation: true,
      retry: {
        initialRetryTime: 100,
        maxRetryTime: 500,
        retries: 10,
        // This wrapper restarts a crashed consumer itself, always (scheduleRestart). A consumer kafkajs
        // restarts on its own can come back after it was disconnected (tulios/kafkajs#1639) and
        // then stays in the group beside its replacement, holding partitions with its old topics.
        restartOnFailure: () => Promise.resolve(false),
      },
    });
    this.consumer = consumer;
    // A consumer this wrapper replaced can come back: kafkajs may restart one disconnected while it
    // was restarting after a crash (tulios/kafkajs#1639), and it then holds partitions in the group
    // with the old subscription. Whatever it does after being replaced, it is disconnected again.
    const dropIfReplaced = (what: string) => {
      if (this.consumer === consumer) return false;
      this.log.warn({ event: what }, 'a replaced consumer came back; disconnecting it');
      void consumer.disconnect().catch(() => undefined);
      return true;
    };
    const startedAt = performance.now();
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      if (dropIfReplaced('group join')) return;
      this.joined = true;
      this.log.info(
        { joinMs: e.payload.duration, sinceStartMs: Math.round(performance.now() - startedAt) },
        'consumer joined its group',
      );
      // A new set of topics that waited for this consumer to be in its group (see setTopics).
      if (this.topicsPending) {
        this.topicsPending = false;
        void this.setTopics(this.topics);
      }
    });
    consumer.on(consumer.events.CRASH, (e) => {
      if (dropIfReplaced('crash')) return;
      this.joined = false;
      this.mayHaveLeftMembers = true; // a crashed kafkajs consumer does not leave its group
      this.crashes += 1;
      this.lastCrash = { at: Date.now(), message: e.payload.error.message };
      this.log.error(
        { err: e.payload.error, restart: e.payload.restart, groupId: e.payload.groupId },
        'consumer crashed',
      );
      // kafkajs never restarts it (restartOnFailure): a fresh consumer replaces it.
      this.scheduleRestart();
    });
    // Until run() below nothing has joined the group: a start still connecting or reading offsets
    // when the broker link comes back (kafkajs retries a refused connection up to 500 ms later, or
    // gives up only after its last retry) is started again at once instead (retryNow).
    let abandoned = false;
    const abandon = new Promise<void>((resolve) => {
      this.abandonStart = () => {
        abandoned = true;
        resolve();
      };
    });
    // Connecting the consumer and reading the committed offsets (through the admin client, which
    // reconnects after a cut) are independent round trips: they overlap.
    const work = Promise.allSettled([
      (async () => {
        await consumer.connect();
        for (const topic of this.topics) await consumer.subscribe({ topic, fromBeginning: true });
      })(),
      // kafkajs's admin does not retry offset fetches itself (the group coordinator moving, a
      // broker still loading after a start): a few quick attempts, then the caller's own retry.
      retry(() => this.fetchCommittedOffsets(), {
        what: 'fetch the committed offsets',
        log: this.log,
        backoff: { firstMs: 100, maxMs: 1_000 },
        attempts: 8,
        level: 'debug',
        stopped: () => abandoned,
      }),
      // Before the new consumer joins (in run(), below: its member has this client id too), the
      // members left behind, if any. Never rejects.
      this.leaveLeftBehind(),
    ] as const);
    try {
      await Promise.race([work, abandon]);
      if (abandoned) {
        // What it started goes on in the background; the consumer is disconnected once it settles.
        void work.then(() => consumer.disconnect()).catch(() => undefined);
        throw new TransientError('the broker link came back while the consumer was starting: starting again');
      }
      // Both settled before anything goes on, so a failed start leaves no read of offsets running.
      const settled = await work;
      for (const r of settled) if (r.status === 'rejected') throw r.reason;
      const offsets = settled[1].status === 'fulfilled' ? settled[1].value : undefined;
      if (offsets !== undefined && offsets !== STOPPED) {
        this.nextOffset.clear();
        for (const [k, v] of offsets) this.nextOffset.set(k, v);
      }
      if (this.consumer !== consumer) throw new TransientError('the consumer was stopped while it started');
    } catch (err) {
      // Leave nothing half-open: the caller may call start() again later (e.g. the broker was down).
      this.consumer = undefined;
      if (!abandoned) await consumer.disconnect().catch(() => undefined);
      throw err;
    } finally {
      this.abandonStart = undefined;
    }
    const maxBackoff = this.options.maxHandlerBackoffMs ?? 5000;
    // kafkajs's run() returns once the consumer is in its group (or its join crashed). A restart that
    // replaces this consumer meanwhile (retryNow: the link came back during the join) ends the wait.
    const replaced = new Promise<void>((resolve) => (this.endStart = resolve));
    const running = consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.partitionsConsumedConcurrently ?? 1,
      eachBatch: async (payload) => {
        const { batch } = payload;
        if (batch.messages.length === 0) return;
        const fetchedAt: FetchedAt = { wallMs: Date.now(), monoMs: performance.now() };
        const lost = await this.lostBefore(batch.topic, batch.partition, batch.messages[0]!.offset);
        const incoming: IncomingBatch = {
          ...(lost !== undefined ? { lost } : {}),
          topic: batch.topic,
          partition: batch.partition,
          fetchedAt,
          messages: batch.messages.map((m) => ({
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            timestamp: m.timestamp,
            key: m.key,
            value: m.value,
            headers: Object.fromEntries(
              Object.entries(m.headers ?? {}).map(([k, v]) => [
                k,
                Buffer.isBuffer(v) ? v.toString('utf8') : String(v),
              ]),
            ),
          })),
        };
        if (this.stoppedBy !== undefined) return; // stopping after a permanent failure: nothing more
        let outcome: void | typeof STOPPED;
        try {
          outcome = await retry(() => handler(incoming), {
            what: `batch handler of ${batch.topic}/${batch.partition}`,
            log: this.log,
            backoff: { firstMs: 100, maxMs: maxBackoff },
            // Not running or stale: offsets not committed, the batch comes again.
            stopped: () => !payload.isRunning() || payload.isStale(),
            wait: async (ms) => {
              await sleep(ms);
              await payload.heartbeat().catch(() => undefined);
            },
            onNotYet: (reason) => (this.waitingFor = reason),
          });
        } catch (err) {
          this.stopAfterPermanentFailure(err, `batch handler of ${batch.topic}/${batch.partition}`);
          return; // offsets not committed: the batch comes again once the region restarts
        }
        if (outcome === STOPPED) return;
        this.waitingFor = undefined;
        const last = batch.messages[batch.messages.length - 1]!.offset;
        this.lastBatchAt = Date.now();
        const behind = Number(BigInt(batch.highWatermark) - BigInt(last) - 1n);
        this.lag.set(`${batch.topic}/${batch.partition}`, Math.max(0, behind));
        this.nextOffset.set(`${batch.topic}/${batch.partition}`, BigInt(last) + 1n);
        payload.resolveOffset(last);
        // Explicit offsets commit even with autoCommit off: the next offset to read is last + 1.
        // Off the batch's path: kafkajs fetches the next batch only once this handler returns, so
        // waiting for the broker here would delay every change behind it. One commit at a time,
        // each taking the newest offsets that accumulated meanwhile (nothing queues up; only the
        // latest batch is kept, for its commit function). One that fails (a rebalance, a cut link)
        // or lands after a rebalance can only mean batches come again, which is harmless: only
        // applied offsets are ever committed, and the next commit covers it.
        const offset = (BigInt(last) + 1n).toString();
        this.uncommitted.set(`${batch.topic}/${batch.partition}`, {
          topic: batch.topic,
          partition: batch.partition,
          offset,
        });
        this.commitWith = (offsets) => payload.commitOffsetsIfNecessary(offsets);
        this.offsetCommits ??= this.commitOffsets();
      },
    });
    running.catch(() => undefined); // settled after a replacement: nobody waits for it then
    try {
      await Promise.race([running, replaced]);
    } finally {
      this.endStart = undefined;
    }
  }

  setTopics(topics: readonly string[]): Promise<void> {
    this.topics = [...topics];
    for (const key of [...this.lag.keys()])
      if (!this.topics.some((t) => key.startsWith(`${t}/`))) this.lag.delete(key);
    return this.serialized(async () => {
      const handler = this.handler;
      if (handler === undefined || this.stopped) return; // start() subscribes them
      // Not running and not idle: a start failed, and whoever retries it (the applier's join loop, the
      // restart below) subscribes the new topics.
      if (this.consumer === undefined && !this.idleWithoutTopics) return;
      // Not in its group yet (starting, or kafkajs restarting it after a crash): replacing it now is
      // disconnecting a consumer kafkajs then restarts anyway, which stays in the group with the old
      // topics (tulios/kafkajs#1639). Its next group join makes the change.
      if (this.consumer !== undefined && !this.joined) {
        this.topicsPending = true;
        this.log.info({ topics: this.topics }, 'new topics wait until the consumer is in its group');
        return;
      }
      try {
        await this.startNow(handler);
        this.log.info({ topics: this.topics }, 'consumer subscribed to a new set of topics');
      } catch (err) {
        this.log.warn({ err, topics: this.topics }, 'consumer could not join with its new topics; retrying');
        this.scheduleRestart();
      }
    });
  }

  /** Commit what {@link uncommitted} holds, again until it is empty; failures are logged, not thrown. */
  private async commitOffsets(): Promise<void> {
    try {
      while (this.uncommitted.size > 0 && this.commitWith !== undefined) {
        const commit = this.commitWith;
        const byTopic = new Map<string, { partition: number; offset: string }[]>();
        for (const o of this.uncommitted.values())
          byTopic.set(o.topic, [
            ...(byTopic.get(o.topic) ?? []),
            { partition: o.partition, offset: o.offset },
          ]);
        this.uncommitted.clear();
        this.commitWith = undefined;
        await commit({ topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) }).catch(
          (err: unknown) => this.log.debug({ err }, 'offset commit failed; the batch may be delivered again'),
        );
      }
    } finally {
      this.offsetCommits = undefined;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.stuckJoinTimer);
    this.wakeRestart?.();
    await this.restarting;
    await this.offsetCommits; // what was applied is committed before the consumer leaves
    const consumer = this.consumer;
    this.consumer = undefined;
    this.joined = false;
    await consumer?.disconnect();
    const admin = this.admin;
    this.admin = undefined;
    await admin?.disconnect().catch(() => undefined);
  }

  /** The admin client, connected once (concurrent callers share the connecting one). */
  private connectedAdmin(): Promise<Admin> {
    if (this.admin !== undefined) return Promise.resolve(this.admin);
    this.adminConnecting ??= (async () => {
      const admin = this.kafka.admin();
      try {
        await admin.connect();
        this.admin = admin;
        return admin;
      } catch (err) {
        await admin.disconnect().catch(() => undefined);
        throw err;
      } finally {
        this.adminConnecting = undefined;
      }
    })();
    return this.adminConnecting;
  }

  /**
   * The group's committed offsets (`topic/partition` → the next offset to read): where each partition
   * resumes. A partition without one resumes at the earliest offset, and needs everything from 0.
   */
  private async fetchCommittedOffsets(): Promise<Map<string, bigint>> {
    const admin = await this.connectedAdmin();
    const committed = await admin.fetchOffsets({
      groupId: this.options.groupId,
      topics: [...this.topics],
    });
    const offsets = new Map<string, bigint>();
    for (const t of committed)
      for (const p of t.partitions) {
        const offset = BigInt(p.offset);
        offsets.set(`${t.topic}/${p.partition}`, offset >= 0n ? offset : 0n);
      }
    return offsets;
  }

  /**
   * Whether a batch starting at `first` skipped events Kafka deleted. Checked only when it starts
   * beyond the offset this consumer expected; then the group's committed offset decides (another
   * member may have read the partition meanwhile, or the expectation be stale after a rebalance),
   * unless kafkajs overwrote it: finding the committed offset out of range, it commits a negative
   * "earliest" offset and resets. A loss when the batch starts beyond the offset needed and the
   * partition's earliest retained offset is beyond it too.
   */
  private async lostBefore(topic: string, partition: number, first: string): Promise<OffsetGap | undefined> {
    const expected = this.nextOffset.get(`${topic}/${partition}`);
    if (expected === undefined || BigInt(first) <= expected) return undefined;
    const admin = await this.connectedAdmin();
    const [committed] = await admin.fetchOffsets({ groupId: this.options.groupId, topics: [topic] });
    const c = BigInt(committed?.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
    if (c >= 0n && BigInt(first) <= c) return undefined;
    // kafkajs commits its reset as a negative "earliest" offset: then only our expectation knows.
    const needed = c >= 0n ? c : expected;
    const offsets = await admin.fetchTopicOffsets(topic);
    const low = BigInt(offsets.find((o) => o.partition === partition)?.low ?? '0');
    if (low <= needed) return undefined;
    const to = low < BigInt(first) ? low : BigInt(first);
    this.log.error(
      { topic, partition, fromOffset: needed.toString(), toOffset: to.toString() },
      'events lost: Kafka deleted them (retention) before this region read them; re-bootstrap this region',
    );
    return { fromOffset: needed.toString(), toOffset: to.toString() };
  }

  /**
   * A failure retrying cannot cure (after a programmer error, which crashes the process, nothing
   * more): the consumer stops and its status says why, instead of taking the same batch or join
   * again forever. Its offsets stay where they are.
   */
  private stopAfterPermanentFailure(err: unknown, what: string): void {
    if (this.stopped || this.stoppedBy !== undefined) return;
    if (failureKind(err) === 'bug') return; // logged as fatal and crashing the process
    const message = err instanceof Error ? err.message : String(err);
    this.stoppedBy = { at: Date.now(), message };
    this.log.error(
      { err },
      `${what} failed in a way retrying cannot cure; the consumer stops (fix the cause and restart the region)`,
    );
    setImmediate(() => void this.stop());
  }

  /**
   * Cut a restart's wait short (the region saw its broker link come back): the crashed consumer is
   * replaced now rather than at the end of a backoff that grew while the link was cut; a start not
   * yet in run() (connecting, reading offsets) is abandoned and made again.
   */
  retryNow(): void {
    // A start still connecting or reading offsets since before the heal goes again now (startNow).
    this.abandonStart?.();
    if (this.wakeRestart !== undefined) this.wakeRestart();
    // Between waits (an attempt that began before the heal may still fail): its wait is skipped.
    else if (this.restarting !== undefined) this.skipRestartWait = true;
    // Joining since before the link came back: its JoinGroup or SyncGroup may sit in a connection the
    // cut left open, answered only by kafkajs's request timeout (10 s) — then a crash, a restart, and
    // a join that waits for the member it left. Replaced if it has not joined a little after the heal
    // (one whose connection was refused retries by itself within half a second and joins: replacing
    // it would leave kafkajs's join retries of the old one running, which join again later and cost
    // the group another rebalance).
    else if (this.consumer !== undefined && !this.joined && !this.stopped && this.stoppedBy === undefined) {
      const joining = this.consumer;
      clearTimeout(this.stuckJoinTimer);
      this.stuckJoinTimer = setTimeout(() => {
        if (this.consumer !== joining || this.joined || this.stopped || this.restarting !== undefined) return;
        // Cut again meanwhile: the next heal calls retryNow again.
        if (this.stoppedBy !== undefined || this.options.linkDown?.() === true) return;
        this.log.info(
          { waitedMs: STUCK_JOIN_AFTER_HEAL_MS },
          'the consumer is still joining its group after the broker link came back; starting a fresh one',
        );
        this.skipRestartWait = true;
        this.endStart?.();
        this.scheduleRestart();
      }, STUCK_JOIN_AFTER_HEAL_MS);
      this.stuckJoinTimer.unref();
    }
  }

  /** A wait of a restart that {@link retryNow} and {@link stop} cut short. */
  private restartWait(ms: number): Promise<void> {
    if (this.skipRestartWait || this.stopped) {
      this.skipRestartWait = false;
      return Promise.resolve();
    }
    const waitMs = this.options.linkDown?.() === true ? Math.max(ms, LINK_DOWN_RESTART_MS) : ms;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, waitMs);
      timer.unref(); // a pending restart keeps no process alive (as the timer it replaced)
      this.wakeRestart = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      this.wakeRestart = undefined;
    });
  }

  /** Replace a consumer kafkajs will not restart with a fresh one; retry until it runs or we stop. */
  private scheduleRestart(): void {
    if (this.stopped || this.handler === undefined) return;
    if (this.restarting !== undefined) {
      this.restartRequested = true; // a restart is under way; it goes round again when it ends
      return;
    }
    const handler = this.handler;
    this.restarting = (async () => {
      try {
        await this.restartWait(RESTART_DELAY_MS);
        if (this.stopped) return;
        const restarted = await retry(
          async (attempt) => {
            this.restartRequested = false;
            // A start already under way when this restart was asked for (retryNow at a heal) may
            // have joined since: then there is nothing to replace, and a second join would only
            // cost a rebalance.
            await this.serialized(() =>
              this.joined && this.consumer !== undefined ? Promise.resolve() : this.startNow(handler),
            );
            // The new consumer crashed inside its start (a failed join): no restart yet, go again.
            if (this.restartRequested)
              throw new TransientError(
                'the consumer failed again while it was being restarted (e.g. its group join crashed)',
              );
            return attempt;
          },
          {
            what: 'consumer restart',
            log: this.log,
            backoff: { firstMs: RESTART_DELAY_MS, maxMs: 5_000 },
            stopped: () => this.stopped,
            wait: (ms) => this.restartWait(ms),
          },
        );
        if (restarted !== STOPPED) this.log.info({ attempt: restarted }, 'consumer restarted');
      } catch (err) {
        this.stopAfterPermanentFailure(err, 'consumer restart');
      }
    })().finally(() => {
      this.restarting = undefined;
      this.skipRestartWait = false;
      // A crash of the consumer this restart made, after it counted as running: restart it too.
      if (this.restartRequested) this.scheduleRestart();
    });
  }
}
