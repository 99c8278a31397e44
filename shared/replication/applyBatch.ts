/**
 * Apply one batch of peer events in the caller's transaction: authenticate each message (signature
 * and publish sequence, when verifying), decode and verify it, lock the items, fold every change
 * into the stored state with {@link mergeItem} under the collection's policy, then write items,
 * history, conflicts, dead letters, watermarks, replay guards and per-origin progress with one
 * statement each.
 *
 * Idempotent and order-independent: every policy's merge is a join, so a batch applied twice, or
 * batches applied in another order, leave the same rows.
 *
 * In shared/ because two services apply peer events: the applier (the peer topics) and maintenance
 * (parked dead letters re-applied once their cause is gone).
 */
import { ClockSkewError, formatStamp, type HybridLogicalClock } from '../domain/hlc.js';
import { formatItemKey } from '../domain/itemKey.js';
import { safeText } from '../domain/itemRules.js';
import { mergeItem, type PolicyVersion } from '../domain/mergeItem.js';
import { Policy, policyOf, type PolicyMap } from '../domain/mergePolicy.js';
import { ResolutionOutcome } from '../domain/resolve.js';
import { canonicalVector, type VersionVector } from '../domain/versionVector.js';
import {
  foldPartitionMarks,
  foldPeerReports,
  foldProgress,
  type PeerReport,
  type ProgressUpdate,
} from '../domain/watermark.js';
import { insertConflicts, type NewConflict } from '../db/queries/conflict.js';
import {
  DeadLetterCode,
  insertDeadLetters,
  offsetKey,
  quarantinedOffsets,
  type DeadLetter,
} from '../db/queries/deadLetter.js';
import { findItems, lockItems, upsertItems, type ItemKey } from '../db/queries/item.js';
import { HistoryOutcome, insertHistory, type HistoryEntry } from '../db/queries/itemHistory.js';
import { recordProgress } from '../db/queries/peerProgress.js';
import { guardKey, readReplayGuards, writeReplayGuards, type GuardKey } from '../db/queries/replayGuard.js';
import { readGcState } from '../db/queries/gcState.js';
import { recordPartitionMarks } from '../db/queries/peerPartitionProgress.js';
import { recordPeerReports } from '../db/queries/peerReport.js';
import { allInOrder, type Transaction } from '../db/withTransaction.js';
import type { Queryable } from '../db/pool.js';
import type { IncomingMessage } from '../kafka/consumer.js';
import {
  decodeEvent,
  type BucketKeysEvent,
  type ChangeEvent,
  type DigestEvent,
  type HeartbeatEvent,
  type PeerEvent,
  type RepairEvent,
} from '../kafka/envelope.js';
import {
  clearSuspects,
  findSuspects,
  recordPeerBucketKeys,
  recordPeerDigests,
  type PeerBucketKeys,
  type PeerDigest,
} from '../db/queries/digest.js';
import { parseDigestHex } from '../domain/digest.js';
import { topicOrigin } from '../kafka/topics.js';
import {
  admitSequence,
  checkSignedMessages,
  checkSignedMessagesAsync,
  emptyGuardState,
  type MessageCheck,
  type PublishSeq,
  type QuarantineKind,
  type ReplayGuardState,
  type SignedMessage,
} from '../security/eventAuth.js';
import type { PublicKeyring } from '../security/eventSignature.js';

/** Authenticated replication: how peers' messages are checked before anything of them is used. */
export interface EventVerification {
  /** Every region's event public keys, by key id (EVENT_PUBLIC_KEYS_FILE). */
  readonly keyring: PublicKeyring;
}

export interface ApplyContext {
  readonly clock: HybridLogicalClock;
  readonly topicPrefix: string;
  /** This region: an event claiming to come from it is dead-lettered. */
  readonly region: string;
  /** This region's merge policies: a change whose policy differs is parked, never applied. */
  readonly policies: PolicyMap;
  /** Wall clock for lag figures. @default Date.now */
  readonly now?: () => number;
  /**
   * Verify each message's signature (by the public keys of the region whose topic it came from)
   * and publish sequence before it is decoded; a message that fails is quarantined, never applied.
   * Absent: messages are taken unsigned — SECURITY_MODE=insecure-dev without keys, and the
   * maintenance job re-applying parked events (verified when they arrived).
   */
  readonly verification?: EventVerification;
}

/** A message quarantined: its dead letter (code `quarantined`) and why, for the metric. */
export interface Quarantined {
  readonly letter: DeadLetter;
  readonly kind: QuarantineKind;
}

export interface ApplyResult {
  readonly changes: number;
  readonly heartbeats: number;
  readonly outcomes: Readonly<Record<ResolutionOutcome, number>>;
  readonly conflicts: readonly NewConflict[];
  readonly deadLetters: readonly DeadLetter[];
  /** The dead letters (also in deadLetters) of messages that failed authentication. */
  readonly quarantined: readonly Quarantined[];
  /** Changes dropped because their stamp is below the tombstone-GC horizon and the item is gone. */
  readonly beyondHorizon: number;
  /** Replication lag (apply time − origin write time) of each change applied, in ms. */
  readonly lagsMs: readonly number[];
  /** Anti-entropy: repair events (republished versions) received, and rows they changed. */
  readonly repairs: number;
  readonly repaired: number;
  /** Stage times of the changes applied, one entry a transaction (the replication-stage metrics). */
  readonly timings: readonly ApplyTiming[];
}

/** When one transaction's origin changes were sent, resolved and committed. */
export interface ApplyTiming {
  /** Each change's Kafka record timestamp (the relay's send), ms since the epoch; NaN if unknown. */
  readonly sentAtMs: readonly number[];
  /** `performance.now()` once resolved: their writes and the COMMIT go out next. */
  readonly resolvedMono: number;
  /** `performance.now()` once the COMMIT (or the caller's last writes, outside a `tx`) returned. */
  readonly committedMono: number;
}

type Keyed = ItemKey & PolicyVersion;

/** Each message's signature check (aligned with the messages; undefined: not a change topic). */
export type Authenticated = readonly (MessageCheck | undefined)[];

/**
 * Check the signatures of `messages` (when `ctx` verifies), all at once on libuv's thread pool: in
 * parallel and without blocking the event loop the API shares; a chain of messages (one relay
 * chunk's to one partition) by the one signature over its head. Call it before the transaction and
 * hand the result to {@link applyBatch}, so that no transaction stays open while it runs.
 */
export async function authenticateBatch(
  messages: readonly IncomingMessage[],
  ctx: ApplyContext,
): Promise<Authenticated | undefined> {
  const { verification } = ctx;
  if (verification === undefined) return undefined;
  return checkSignedMessagesAsync(verification.keyring, signedMessagesOf(messages, ctx));
}

/** The messages to authenticate, each with its topic's region (undefined: not a change topic). */
function signedMessagesOf(
  messages: readonly IncomingMessage[],
  ctx: ApplyContext,
): (SignedMessage | undefined)[] {
  return messages.map((m) => {
    const origin = topicOrigin(ctx.topicPrefix, m.topic);
    return origin === undefined ? undefined : { ...m, origin };
  });
}

/**
 * Apply `messages` in the caller's transaction on `q`. Two round trips when `q` is a pipelined
 * client: the locks, the rows and the GC horizon are read together, and every write is sent
 * together — with the COMMIT when the caller passes its `tx`. `authenticated`: the messages'
 * signature checks from {@link authenticateBatch}; without it (and verifying) they are checked here,
 * synchronously.
 */
export async function applyBatch(
  q: Queryable,
  messages: readonly IncomingMessage[],
  ctx: ApplyContext,
  tx?: Transaction,
  authenticated?: Authenticated,
): Promise<ApplyResult> {
  const now = ctx.now ?? Date.now;
  const changes: {
    event: ChangeEvent | RepairEvent;
    version: PolicyVersion;
    sentAtMs: number;
    partition: number;
  }[] = [];
  const heartbeats: HeartbeatEvent[] = [];
  /** The partition each of `heartbeats` came from. */
  const heartbeatPartitions: number[] = [];
  const antiEntropy: (DigestEvent | BucketKeysEvent)[] = [];
  const deadLetters: DeadLetter[] = [];
  const quarantined: Quarantined[] = [];
  const quarantine = (m: IncomingMessage, kind: QuarantineKind, reason: string) => {
    const letter = deadLetterOf(m, reason, DeadLetterCode.Quarantined);
    deadLetters.push(letter);
    quarantined.push({ letter, kind });
  };

  // Authenticate, then classify what passed. The publish sequences are checked against the stored
  // guard below, once read: until then every signed message is only a candidate.
  const verifying = ctx.verification !== undefined;
  const refused: { m: IncomingMessage; kind: QuarantineKind; reason: string }[] = [];
  const candidates: { m: IncomingMessage; origin?: string; seq?: PublishSeq; outcome: Classified }[] = [];
  // No await before the first statements: they leave with the caller's BEGIN (see withTransaction).
  const { verification } = ctx;
  if (authenticated !== undefined && authenticated.length !== messages.length)
    throw new Error('authenticated does not match the messages');
  const checks: Authenticated =
    verification === undefined
      ? []
      : (authenticated ?? checkSignedMessages(verification.keyring, signedMessagesOf(messages, ctx)));
  for (const [i, m] of messages.entries()) {
    const origin = topicOrigin(ctx.topicPrefix, m.topic);
    let seq: PublishSeq | undefined;
    const check = checks[i];
    if (check !== undefined) {
      if (!check.ok) {
        refused.push({ m, kind: check.kind, reason: check.reason });
        continue;
      }
      seq = check.seq;
    }
    candidates.push({
      m,
      ...(origin === undefined ? {} : { origin }),
      ...(seq === undefined ? {} : { seq }),
      outcome: classify(m, ctx),
    });
  }

  const signed = candidates.filter((c) => c.seq !== undefined);
  const keys = uniqueKeys(candidates.flatMap((c) => (c.outcome.type === 'change' ? [c.outcome.event] : [])));
  // Sent together, run in order: the reads come after the locks (statements of their own). The
  // keys of every candidate change are locked, also those of a replay refused below: harmless.
  const repairKeys = uniqueKeys(
    candidates.flatMap((c) =>
      c.outcome.type === 'change' && c.outcome.event.type === 'repair' ? [c.outcome.event] : [],
    ),
  );
  const [, state, gc, guards, requarantine, suspects] = await allInOrder([
    lockItems(q, keys),
    findItems(q, keys) as Promise<Map<string, Keyed>>,
    keys.length > 0 ? readGcState(q) : undefined,
    signed.length > 0 ? readReplayGuards(q, guardKeysOf(signed)) : new Map<string, ReplayGuardState>(),
    verifying && messages.length > 0
      ? quarantinedOffsets(q, offsetRangesOf(messages))
      : new Map<string, Buffer | null>(),
    findSuspects(q, repairKeys),
  ]);
  // Delivered again (same offset, same bytes) after it was quarantined: it stays quarantined, once.
  const quarantinedBefore = (m: IncomingMessage) => {
    const id = offsetKey(m.topic, m.partition, m.offset);
    return requarantine.has(id) && sameBytes(requarantine.get(id)!, m.value);
  };
  for (const r of refused) if (!quarantinedBefore(r.m)) quarantine(r.m, r.kind, r.reason);
  for (const c of candidates) {
    if (c.seq !== undefined) {
      if (quarantinedBefore(c.m)) continue;
      const gk = guardKey(c.origin!, c.m.partition);
      let guard = guards.get(gk);
      if (guard === undefined) guards.set(gk, (guard = emptyGuardState()));
      const admitted = admitSequence(guard, c.seq, BigInt(c.m.offset), c.origin!, c.m.partition);
      if (!admitted.ok) {
        quarantine(c.m, 'replayed', admitted.reason);
        continue;
      }
    }
    const o = c.outcome;
    if (o.type === 'change')
      changes.push({
        event: o.event,
        version: o.version,
        sentAtMs: Number(c.m.timestamp ?? Number.NaN),
        partition: c.m.partition,
      });
    else if (o.type === 'heartbeat') {
      heartbeats.push(o.event);
      heartbeatPartitions.push(c.m.partition);
    } else if (o.type === 'anti-entropy') antiEntropy.push(o.event);
    else deadLetters.push(deadLetterOf(c.m, o.reason, o.code));
  }
  const horizon = gc?.horizonMs ?? 0;
  const dirty = new Set<string>();
  const conflicts: NewConflict[] = [];
  const history: HistoryEntry[] = [];
  const outcomes: Record<ResolutionOutcome, number> = {
    insert: 0,
    'fast-forward': 0,
    stale: 0,
    conflict: 0,
    merged: 0,
  };
  let beyondHorizon = 0;
  let repaired = 0;
  const unsuspected: ItemKey[] = [];
  for (const { event: e, version } of changes) {
    const id = formatItemKey(e);
    const local = state.get(id);
    // A repair carries a peer's whole stored state, which holds every change below the horizon: it
    // restores a row lost here (deleted by hand), except a tombstone, which may be collected.
    const replayed = e.type === 'change' || version.deleted;
    if (local === undefined && e.hlc.wall < horizon && replayed) {
      // Below the GC horizon this region has applied every change of every origin, so this is a
      // replay of something applied (and since collected as a tombstone): it must not resurrect.
      beyondHorizon += 1;
      outcomes.stale += 1;
      continue;
    }
    const r = mergeItem(local, version);
    outcomes[r.outcome] += 1;
    if (r.changed) {
      state.set(id, { collection: e.collection, key: e.key, ...r.result });
      dirty.add(id);
      if (e.type === 'repair') repaired += 1;
    } else if (
      e.type === 'repair' &&
      local !== undefined &&
      suspects.has(id) &&
      isSameVector(local.vv, suspects.get(id)!) &&
      isSameVector(local.vv, version.vv)
    ) {
      // Changed here by hand without a new vector (item_suspect): the peer's copy of the version with
      // that vector replaces it. A healthy copy is never replaced: it is not suspect.
      state.set(id, { collection: e.collection, key: e.key, ...version });
      dirty.add(id);
      suspects.delete(id);
      unsuspected.push({ collection: e.collection, key: e.key });
      repaired += 1;
    }
    const eventId = formatStamp(e.hlc);
    for (const c of r.conflicts)
      conflicts.push({ collection: e.collection, key: e.key, eventId, policy: version.policy, ...c });
    if (r.outcome !== ResolutionOutcome.Stale) {
      const lost = r.conflicts.some((c) => c.field === undefined && c.loser.hlc === version.hlc);
      history.push({
        collection: e.collection,
        key: e.key,
        version,
        outcome: lost
          ? HistoryOutcome.Lost
          : r.outcome === ResolutionOutcome.Merged
            ? HistoryOutcome.Merged
            : HistoryOutcome.Applied,
      });
    }
  }

  const appliedAt = now();
  const resolvedMono = performance.now();
  const originChanges = changes.flatMap((c) => (c.event.type === 'change' ? [c.event] : []));
  const lagsMs = originChanges.map((e) => Math.max(0, appliedAt - e.writtenAt));
  // Progress and peer reports are kept per origin and partition: the transactions of an origin's
  // partitions run concurrently and must not queue on one row (migration 0011).
  const progress: (ProgressUpdate & { partition: number })[] = [];
  const reports: (PeerReport & { partition: number })[] = [];
  for (const partition of new Set([...changes.map((c) => c.partition), ...heartbeatPartitions])) {
    const beats = heartbeats.filter((_, i) => heartbeatPartitions[i] === partition);
    const applied = changes.flatMap((c) =>
      c.partition === partition && c.event.type === 'change' ? [c.event] : [],
    );
    for (const u of foldProgress(applied, beats, appliedAt)) progress.push({ ...u, partition });
    for (const r of foldPeerReports(beats)) reports.push({ ...r, partition });
  }
  const writeAll = () =>
    allInOrder([
      upsertItems(
        q,
        [...dirty].map((id) => state.get(id)!),
      ),
      insertHistory(q, history),
      insertConflicts(q, conflicts),
      insertDeadLetters(q, deadLetters),
      recordPartitionMarks(q, foldPartitionMarks(heartbeats)),
      recordPeerReports(q, reports),
      recordProgress(q, progress),
      // After the item rows: their trigger marks the rows it rewrites with the same version.
      clearSuspects(q, unsuspected),
      recordPeerDigests(q, peerDigests(antiEntropy)),
      recordPeerBucketKeys(q, peerBucketKeys(antiEntropy)),
      writeReplayGuards(
        q,
        [...guards.entries()].map(([id, g]) => ({ ...parseGuardKey(id), state: g })),
      ),
    ]);
  await (tx === undefined ? writeAll() : tx.commitWith(writeAll));
  const sentAtMs = changes.flatMap((c) => (c.event.type === 'change' ? [c.sentAtMs] : []));
  return {
    changes: changes.length,
    heartbeats: heartbeats.length,
    outcomes,
    conflicts,
    deadLetters,
    quarantined,
    beyondHorizon,
    lagsMs,
    repairs: changes.length - originChanges.length,
    repaired,
    timings: sentAtMs.length > 0 ? [{ sentAtMs, resolvedMono, committedMono: performance.now() }] : [],
  };
}

export function emptyResult(): ApplyResult {
  return {
    changes: 0,
    heartbeats: 0,
    outcomes: { insert: 0, 'fast-forward': 0, stale: 0, conflict: 0, merged: 0 },
    conflicts: [],
    deadLetters: [],
    quarantined: [],
    beyondHorizon: 0,
    lagsMs: [],
    repairs: 0,
    repaired: 0,
    timings: [],
  };
}

export function mergeResults(a: ApplyResult, b: ApplyResult): ApplyResult {
  const outcomes = { ...a.outcomes };
  for (const [k, n] of Object.entries(b.outcomes) as [ResolutionOutcome, number][]) outcomes[k] += n;
  return {
    changes: a.changes + b.changes,
    heartbeats: a.heartbeats + b.heartbeats,
    outcomes,
    conflicts: [...a.conflicts, ...b.conflicts],
    deadLetters: [...a.deadLetters, ...b.deadLetters],
    quarantined: [...a.quarantined, ...b.quarantined],
    beyondHorizon: a.beyondHorizon + b.beyondHorizon,
    lagsMs: [...a.lagsMs, ...b.lagsMs],
    repairs: a.repairs + b.repairs,
    repaired: a.repaired + b.repaired,
    timings: [...a.timings, ...b.timings],
  };
}

/** A dead letter for `m`: raw bytes kept as they came, text made storable. */
export function deadLetterOf(m: IncomingMessage, reason: string, code: DeadLetterCode): DeadLetter {
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    msgKey: m.key,
    payload: m.value,
    headers: Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [safeText(k, 200), safeText(v)])),
    reason: safeText(reason),
    code,
  };
}

/** What a message is: a change or heartbeat to apply, or why it is dead-lettered. */
type Classified =
  | { readonly type: 'change'; readonly event: ChangeEvent | RepairEvent; readonly version: PolicyVersion }
  | { readonly type: 'heartbeat'; readonly event: HeartbeatEvent }
  | { readonly type: 'anti-entropy'; readonly event: DigestEvent | BucketKeysEvent }
  | { readonly type: 'rejected'; readonly reason: string; readonly code: DeadLetterCode };

/** Decode and verify one message: a change or a heartbeat to apply, or why not. */
function classify(m: IncomingMessage, ctx: ApplyContext): Classified {
  const invalid = (reason: string): Classified => ({
    type: 'rejected',
    reason,
    code: DeadLetterCode.Invalid,
  });
  const origin = topicOrigin(ctx.topicPrefix, m.topic);
  if (origin === undefined)
    return invalid(`message on ${m.topic}, which is not a change topic under ${ctx.topicPrefix}`);
  const decoded = decodeEvent(m.value, origin);
  if (!decoded.ok) return invalid(decoded.reason);
  const event = decoded.event;
  if (event.origin === ctx.region) return invalid(`event claims to come from this region (${ctx.region})`);
  if (event.type === 'heartbeat' && event.partition !== undefined && event.partition !== m.partition)
    return invalid(`heartbeat for partition ${event.partition} arrived on partition ${m.partition}`);
  // Checked before the stamp is observed, so a parked event does not advance the clock.
  const ahead = furthestAhead(event, (ctx.now ?? Date.now)(), ctx.clock.maxSkewMs);
  if (ahead !== undefined)
    return { type: 'rejected', reason: `clock skew: ${ahead}`, code: DeadLetterCode.ClockSkew };
  try {
    // A genuine event refused later as a replay has been observed: harmless, its stamp is genuine.
    ctx.clock.observe(event.hlc);
  } catch (err) {
    if (err instanceof ClockSkewError)
      return { type: 'rejected', reason: `clock skew: ${err.message}`, code: DeadLetterCode.ClockSkew };
    throw err;
  }
  if (event.type === 'heartbeat') return { type: 'heartbeat', event };
  if (event.type === 'digest' || event.type === 'bucket-keys') return { type: 'anti-entropy', event };
  const policy = event.policy ?? Policy.Lww;
  const ours = policyOf(ctx.policies, event.collection);
  if (policy !== ours) {
    return {
      type: 'rejected',
      reason: `collection ${event.collection} is ${policy} in ${event.origin} but ${ours} here: align COLLECTION_POLICIES in every region`,
      code: DeadLetterCode.PolicyMismatch,
    };
  }
  return {
    type: 'change',
    event,
    version: {
      policy,
      ...(event.crdt === undefined ? {} : { crdt: event.crdt }),
      value: event.deleted ? null : event.value,
      deleted: event.deleted,
      hlc: event.hlc,
      vv: canonicalVector(event.vv),
    },
  };
}

/** The (origin, partition) guards the signed candidates need. */
function guardKeysOf(signed: readonly { m: IncomingMessage; origin?: string }[]): GuardKey[] {
  const keys = new Map<string, GuardKey>();
  for (const { m, origin } of signed)
    keys.set(guardKey(origin!, m.partition), { origin: origin!, partition: m.partition });
  return [...keys.values()];
}

function parseGuardKey(id: string): GuardKey {
  const slash = id.lastIndexOf('/');
  return { origin: id.slice(0, slash), partition: Number(id.slice(slash + 1)) };
}

/** Per topic and partition, the offsets `messages` span. */
function offsetRangesOf(
  messages: readonly IncomingMessage[],
): { topic: string; partition: number; from: string; to: string }[] {
  const ranges = new Map<string, { topic: string; partition: number; from: bigint; to: bigint }>();
  for (const m of messages) {
    const id = `${m.topic}\u0000${m.partition}`;
    const o = BigInt(m.offset);
    const r = ranges.get(id);
    if (r === undefined) ranges.set(id, { topic: m.topic, partition: m.partition, from: o, to: o });
    else {
      if (o < r.from) r.from = o;
      if (o > r.to) r.to = o;
    }
  }
  return [...ranges.values()].map((r) => ({ ...r, from: r.from.toString(), to: r.to.toString() }));
}

function sameBytes(a: Buffer | null, b: Buffer | null): boolean {
  return a === null || b === null ? a === b : Buffer.from(a).equals(b);
}

/**
 * Why `event` carries a wall-clock time (besides its stamp, which the clock itself checks) more than
 * `maxSkewMs` ahead of `physicalMs`, or undefined. Genuine events never do: a write time, send time,
 * mark or acknowledgement is at most its origin's clock. Applied, a far-future `sentAt` would make
 * a silent peer look alive and lock out its later reports, and far-future marks would acknowledge
 * changes not yet written (session tokens, tombstone GC); parked, it is re-applied once it is due.
 */
function furthestAhead(event: PeerEvent, physicalMs: number, maxSkewMs: number): string | undefined {
  const times: [field: string, ms: number | undefined][] =
    event.type === 'change' || event.type === 'repair'
      ? [['writtenAt', event.writtenAt]]
      : event.type === 'digest'
        ? [
            ['sentAt', event.sentAt],
            ['settledBefore', event.settledBefore],
          ]
        : event.type === 'bucket-keys'
          ? [['sentAt', event.sentAt]]
          : [
              ['sentAt', event.sentAt],
              ['safeBefore', event.safeBefore],
              ...Object.entries(event.watermarks ?? {}).map(([o, w]): [string, number] => [
                `watermarks.${o}`,
                w,
              ]),
            ];
  for (const [field, t] of times) {
    if (t !== undefined && t - physicalMs > maxSkewMs) {
      return (
        `${event.type} from ${event.origin} has ${field} ${t}, ${t - physicalMs} ms ahead of this region's ` +
        `clock (maximum skew ${maxSkewMs} ms): check NTP on both hosts`
      );
    }
  }
  return undefined;
}

/** Same version vector: the same set of writes (stamp and content may still differ, by a hand edit). */
function isSameVector(a: VersionVector, b: VersionVector): boolean {
  return JSON.stringify(canonicalVector(a)) === JSON.stringify(canonicalVector(b));
}

function peerDigests(events: readonly (DigestEvent | BucketKeysEvent)[]): PeerDigest[] {
  const newest = new Map<string, DigestEvent>();
  for (const e of events) {
    if (e.type !== 'digest') continue;
    const prev = newest.get(e.origin);
    if (prev === undefined || e.sentAt >= prev.sentAt) newest.set(e.origin, e);
  }
  return [...newest.values()].map((e) => ({
    reporter: e.origin,
    sentAt: new Date(e.sentAt),
    settledBefore: e.settledBefore,
    gcHorizon: e.gcHorizon,
    digests: e.digests.map((d) => parseDigestHex(d)!),
    maxWalls: e.maxWalls,
  }));
}

function peerBucketKeys(events: readonly (DigestEvent | BucketKeysEvent)[]): PeerBucketKeys[] {
  const newest = new Map<string, BucketKeysEvent>();
  for (const e of events) {
    if (e.type !== 'bucket-keys') continue;
    const id = `${e.origin}/${e.bucket}`;
    const prev = newest.get(id);
    if (prev === undefined || e.sentAt >= prev.sentAt) newest.set(id, e);
  }
  return [...newest.values()].map((e) => ({
    reporter: e.origin,
    bucket: e.bucket,
    sentAt: new Date(e.sentAt),
    gcHorizon: e.gcHorizon,
    keys: e.keys.map(([collection, key, digest]) => ({ collection, key, digest: parseDigestHex(digest)! })),
  }));
}

function uniqueKeys(changes: readonly (ChangeEvent | RepairEvent)[]): ItemKey[] {
  const seen = new Map<string, ItemKey>();
  for (const e of changes) seen.set(formatItemKey(e), { collection: e.collection, key: e.key });
  return [...seen.values()];
}
