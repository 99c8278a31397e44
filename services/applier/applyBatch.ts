/**
 * Apply one batch of peer events in the caller's transaction: decode and verify each message,
 * lock the items, fold every change into the stored state with {@link mergeItem} under the
 * collection's policy, then write items, history, conflicts, dead letters, watermarks and
 * per-origin progress with one statement each.
 *
 * Idempotent and order-independent: every policy's merge is a join, so a batch applied twice, or
 * batches applied in another order, leave the same rows.
 */
import { ClockSkewError, formatStamp, type HybridLogicalClock } from '../../shared/domain/hlc.js';
import { safeText } from '../../shared/domain/itemRules.js';
import { mergeItem, type PolicyVersion } from '../../shared/domain/mergeItem.js';
import { Policy, policyOf, type PolicyMap } from '../../shared/domain/mergePolicy.js';
import { ResolutionOutcome } from '../../shared/domain/resolve.js';
import { canonicalVector } from '../../shared/domain/versionVector.js';
import { insertConflicts, type NewConflict } from '../../shared/db/queries/conflict.js';
import { DeadLetterCode, insertDeadLetters, type DeadLetter } from '../../shared/db/queries/deadLetter.js';
import {
  findItems,
  itemLockKey,
  lockItems,
  upsertItems,
  type ItemKey,
} from '../../shared/db/queries/item.js';
import { HistoryOutcome, insertHistory, type HistoryEntry } from '../../shared/db/queries/itemHistory.js';
import { recordProgress, type ProgressUpdate } from '../../shared/db/queries/peerProgress.js';
import {
  readGcState,
  recordPartitionMarks,
  recordPeerReports,
  type PartitionMark,
  type PeerReport,
} from '../../shared/db/queries/watermark.js';
import type { Transaction } from '../../shared/db/withTransaction.js';
import type { Queryable } from '../../shared/db/pool.js';
import type { IncomingMessage } from '../../shared/kafka/consumer.js';
import { decodeEvent, type ChangeEvent, type HeartbeatEvent } from '../../shared/kafka/envelope.js';
import { topicOrigin } from '../../shared/kafka/topics.js';

export interface ApplyContext {
  readonly clock: HybridLogicalClock;
  readonly topicPrefix: string;
  /** This region: an event claiming to come from it is dead-lettered. */
  readonly region: string;
  /** This region's merge policies: a change whose policy differs is parked, never applied. */
  readonly policies: PolicyMap;
  /** Wall clock for lag figures. @default Date.now */
  readonly now?: () => number;
}

export interface ApplyResult {
  readonly changes: number;
  readonly heartbeats: number;
  readonly outcomes: Readonly<Record<ResolutionOutcome, number>>;
  readonly conflicts: readonly NewConflict[];
  readonly deadLetters: readonly DeadLetter[];
  /** Changes dropped because their stamp is below the tombstone-GC horizon and the item is gone. */
  readonly beyondHorizon: number;
  /** Replication lag (apply time − origin write time) of each change applied, in ms. */
  readonly lagsMs: readonly number[];
}

type Keyed = ItemKey & PolicyVersion;

/**
 * Apply `messages` in the caller's transaction on `q`. Two round trips when `q` is a pipelined
 * client: the locks, the rows and the GC horizon are read together, and every write is sent
 * together — with the COMMIT when the caller passes its `tx`.
 */
export async function applyBatch(
  q: Queryable,
  messages: readonly IncomingMessage[],
  ctx: ApplyContext,
  tx?: Transaction,
): Promise<ApplyResult> {
  const now = ctx.now ?? Date.now;
  const changes: { event: ChangeEvent; version: PolicyVersion }[] = [];
  const heartbeats: HeartbeatEvent[] = [];
  const deadLetters: DeadLetter[] = [];

  for (const m of messages) {
    const rejected = classify(m, ctx, changes, heartbeats);
    if (rejected !== undefined) deadLetters.push(deadLetterOf(m, rejected.reason, rejected.code));
  }

  const keys = uniqueKeys(changes.map((c) => c.event));
  // Sent together, run in order: the reads come after the locks (statements of their own).
  const [, state, gc] = await Promise.all([
    lockItems(q, keys),
    findItems(q, keys) as Promise<Map<string, Keyed>>,
    changes.length > 0 ? readGcState(q) : undefined,
  ]);
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
  for (const { event: e, version } of changes) {
    const id = itemLockKey(e);
    const local = state.get(id);
    if (local === undefined && e.hlc.wall < horizon) {
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
  const lagsMs = changes.map((c) => Math.max(0, appliedAt - c.event.writtenAt));
  const writeAll = () =>
    Promise.all([
      upsertItems(
        q,
        [...dirty].map((id) => state.get(id)!),
      ),
      insertHistory(q, history),
      insertConflicts(q, conflicts),
      insertDeadLetters(q, deadLetters),
      recordPartitionMarks(q, partitionMarks(heartbeats)),
      recordPeerReports(q, peerReports(heartbeats)),
      recordProgress(
        q,
        progressUpdates(
          changes.map((c) => c.event),
          heartbeats,
          appliedAt,
        ),
      ),
    ]);
  await (tx === undefined ? writeAll() : tx.commitWith(writeAll));
  return {
    changes: changes.length,
    heartbeats: heartbeats.length,
    outcomes,
    conflicts,
    deadLetters,
    beyondHorizon,
    lagsMs,
  };
}

export function emptyResult(): ApplyResult {
  return {
    changes: 0,
    heartbeats: 0,
    outcomes: { insert: 0, 'fast-forward': 0, stale: 0, conflict: 0, merged: 0 },
    conflicts: [],
    deadLetters: [],
    beyondHorizon: 0,
    lagsMs: [],
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
    beyondHorizon: a.beyondHorizon + b.beyondHorizon,
    lagsMs: [...a.lagsMs, ...b.lagsMs],
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

/** Sort a decodable, verified message into `changes` or `heartbeats`; otherwise say why not. */
function classify(
  m: IncomingMessage,
  ctx: ApplyContext,
  changes: { event: ChangeEvent; version: PolicyVersion }[],
  heartbeats: HeartbeatEvent[],
): { reason: string; code: DeadLetterCode } | undefined {
  const invalid = (reason: string) => ({ reason, code: DeadLetterCode.Invalid });
  const origin = topicOrigin(ctx.topicPrefix, m.topic);
  if (origin === undefined)
    return invalid(`message on ${m.topic}, which is not a change topic under ${ctx.topicPrefix}`);
  const decoded = decodeEvent(m.value, origin);
  if (!decoded.ok) return invalid(decoded.reason);
  const event = decoded.event;
  if (event.origin === ctx.region) return invalid(`event claims to come from this region (${ctx.region})`);
  try {
    ctx.clock.observe(event.hlc);
  } catch (err) {
    if (err instanceof ClockSkewError)
      return { reason: `clock skew: ${err.message}`, code: DeadLetterCode.ClockSkew };
    throw err;
  }
  if (event.type === 'heartbeat') {
    heartbeats.push(event);
    return undefined;
  }
  const policy = event.policy ?? Policy.Lww;
  const ours = policyOf(ctx.policies, event.collection);
  if (policy !== ours) {
    return {
      reason: `collection ${event.collection} is ${policy} in ${event.origin} but ${ours} here: align COLLECTION_POLICIES in every region`,
      code: DeadLetterCode.PolicyMismatch,
    };
  }
  changes.push({
    event,
    version: {
      policy,
      ...(event.crdt === undefined ? {} : { crdt: event.crdt }),
      value: event.deleted ? null : event.value,
      deleted: event.deleted,
      hlc: event.hlc,
      vv: canonicalVector(event.vv),
    },
  });
  return undefined;
}

function uniqueKeys(changes: readonly ChangeEvent[]): ItemKey[] {
  const seen = new Map<string, ItemKey>();
  for (const e of changes) seen.set(itemLockKey(e), { collection: e.collection, key: e.key });
  return [...seen.values()];
}

function partitionMarks(heartbeats: readonly HeartbeatEvent[]): PartitionMark[] {
  const marks = new Map<string, PartitionMark>();
  for (const h of heartbeats) {
    if (h.partition === undefined || h.partitions === undefined || h.safeBefore === undefined) continue;
    const id = `${h.origin}/${h.partition}`;
    const prev = marks.get(id);
    if (prev === undefined || h.safeBefore > prev.safeBefore) {
      marks.set(id, {
        origin: h.origin,
        partition: h.partition,
        partitions: h.partitions,
        safeBefore: h.safeBefore,
        sentAt: new Date(h.sentAt),
      });
    }
  }
  return [...marks.values()];
}

function peerReports(heartbeats: readonly HeartbeatEvent[]): PeerReport[] {
  const reports = new Map<string, PeerReport>();
  for (const h of heartbeats) {
    if (h.watermarks === undefined || h.policies === undefined) continue;
    const prev = reports.get(h.origin);
    if (prev === undefined || h.sentAt > prev.sentAt.getTime()) {
      reports.set(h.origin, {
        reporter: h.origin,
        watermarks: h.watermarks,
        policies: h.policies,
        sentAt: new Date(h.sentAt),
      });
    }
  }
  return [...reports.values()];
}

function progressUpdates(
  changes: readonly ChangeEvent[],
  heartbeats: readonly HeartbeatEvent[],
  appliedAt: number,
): ProgressUpdate[] {
  const byOrigin = new Map<
    string,
    { events: number; last?: ChangeEvent; maxWritten?: number; maxHlc?: ChangeEvent['hlc']; hb?: number }
  >();
  const entry = (origin: string) => {
    let e = byOrigin.get(origin);
    if (!e) byOrigin.set(origin, (e = { events: 0 }));
    return e;
  };
  for (const c of changes) {
    const e = entry(c.origin);
    e.events += 1;
    e.last = c;
    if (
      e.maxHlc === undefined ||
      c.hlc.wall > e.maxHlc.wall ||
      (c.hlc.wall === e.maxHlc.wall && c.hlc.logical > e.maxHlc.logical)
    )
      e.maxHlc = c.hlc;
    e.maxWritten = Math.max(e.maxWritten ?? 0, c.writtenAt);
  }
  for (const h of heartbeats) {
    const e = entry(h.origin);
    e.events += 1;
    e.hb = Math.max(e.hb ?? 0, h.sentAt);
  }
  return [...byOrigin.entries()].map(([origin, e]) => ({
    origin,
    events: e.events,
    lastEventId: e.last === undefined ? undefined : formatStamp(e.last.hlc),
    maxHlc: e.maxHlc,
    heartbeatSentAt: e.hb === undefined ? undefined : new Date(e.hb),
    lagMs: e.maxWritten === undefined ? undefined : Math.max(0, appliedAt - e.maxWritten),
  }));
}
