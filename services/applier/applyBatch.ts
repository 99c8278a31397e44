/**
 * Apply one batch of peer events in the caller's transaction: decode and verify each message,
 * lock the items, fold every change into the stored state with {@link resolve}, then write items,
 * conflicts, dead letters and per-origin progress with one statement each.
 *
 * Idempotent and order-independent: the fold is a join (see resolve.ts), so a batch applied twice,
 * or batches applied in another order, leave the same rows.
 */
import { ClockSkewError, formatStamp, type HybridLogicalClock } from '../../shared/domain/hlc.js';
import { resolve, type ItemVersion, type ResolutionOutcome } from '../../shared/domain/resolve.js';
import { safeText } from '../../shared/domain/itemRules.js';
import { canonicalVector } from '../../shared/domain/versionVector.js';
import type { DeadLetter } from '../../shared/db/queries/deadLetter.js';
import { insertDeadLetters } from '../../shared/db/queries/deadLetter.js';
import { insertConflicts, type NewConflict } from '../../shared/db/queries/conflict.js';
import {
  findItems,
  itemLockKey,
  lockItems,
  upsertItems,
  type ItemKey,
} from '../../shared/db/queries/item.js';
import { recordProgress, type ProgressUpdate } from '../../shared/db/queries/peerProgress.js';
import type { Queryable } from '../../shared/db/pool.js';
import { decodeEvent, type ChangeEvent, type HeartbeatEvent } from '../../shared/kafka/envelope.js';
import type { IncomingMessage } from '../../shared/kafka/consumer.js';
import { topicOrigin } from '../../shared/kafka/topics.js';

export interface ApplyContext {
  readonly clock: HybridLogicalClock;
  readonly topicPrefix: string;
  /** This region: an event claiming to come from it is dead-lettered. */
  readonly region: string;
  /** Wall clock for lag figures. @default Date.now */
  readonly now?: () => number;
}

export interface ApplyResult {
  readonly changes: number;
  readonly heartbeats: number;
  readonly outcomes: Readonly<Record<ResolutionOutcome, number>>;
  readonly conflicts: readonly NewConflict[];
  readonly deadLetters: readonly DeadLetter[];
  /** Replication lag (apply time − origin write time) of each change applied, in ms. */
  readonly lagsMs: readonly number[];
}

export async function applyBatch(
  q: Queryable,
  messages: readonly IncomingMessage[],
  ctx: ApplyContext,
): Promise<ApplyResult> {
  const now = ctx.now ?? Date.now;
  const changes: ChangeEvent[] = [];
  const heartbeats: HeartbeatEvent[] = [];
  const deadLetters: DeadLetter[] = [];

  for (const m of messages) {
    const reason = classify(m, ctx, changes, heartbeats);
    if (reason !== undefined) {
      deadLetters.push(deadLetterOf(m, reason));
    }
  }

  const keys = uniqueKeys(changes);
  await lockItems(q, keys);
  const state: Map<string, ItemKey & ItemVersion> = await findItems(q, keys);
  const dirty = new Set<string>();
  const conflicts: NewConflict[] = [];
  const outcomes: Record<ResolutionOutcome, number> = { insert: 0, 'fast-forward': 0, stale: 0, conflict: 0, merged: 0 };
  for (const e of changes) {
    const id = itemLockKey(e);
    const r = resolve(state.get(id), {
      value: e.deleted ? null : e.value,
      deleted: e.deleted,
      hlc: e.hlc,
      vv: canonicalVector(e.vv),
    });
    outcomes[r.outcome] += 1;
    if (r.changed) {
      state.set(id, { collection: e.collection, key: e.key, ...r.result });
      dirty.add(id);
    }
    if (r.conflict)
      conflicts.push({ collection: e.collection, key: e.key, eventId: formatStamp(e.hlc), ...r.conflict });
  }

  await upsertItems(
    q,
    [...dirty].map((id) => state.get(id)!),
  );
  await insertConflicts(q, conflicts);
  await insertDeadLetters(q, deadLetters);
  const appliedAt = now();
  const lagsMs = changes.map((e) => Math.max(0, appliedAt - e.writtenAt));
  await recordProgress(q, progressUpdates(changes, heartbeats, appliedAt));
  return { changes: changes.length, heartbeats: heartbeats.length, outcomes, conflicts, deadLetters, lagsMs };
}

/** Sort a decodable, verified message into `changes` or `heartbeats`; otherwise return why not. */
function classify(
  m: IncomingMessage,
  ctx: ApplyContext,
  changes: ChangeEvent[],
  heartbeats: HeartbeatEvent[],
): string | undefined {
  const origin = topicOrigin(ctx.topicPrefix, m.topic);
  if (origin === undefined)
    return `message on ${m.topic}, which is not a change topic under ${ctx.topicPrefix}`;
  const decoded = decodeEvent(m.value, origin);
  if (!decoded.ok) return decoded.reason;
  const event = decoded.event;
  if (event.origin === ctx.region) return `event claims to come from this region (${ctx.region})`;
  try {
    ctx.clock.observe(event.hlc);
  } catch (err) {
    if (err instanceof ClockSkewError) return `clock skew: ${err.message}`;
    throw err;
  }
  if (event.type === 'change') changes.push(event);
  else heartbeats.push(event);
  return undefined;
}

export function emptyResult(): ApplyResult {
  return {
    changes: 0,
    heartbeats: 0,
    outcomes: { insert: 0, 'fast-forward': 0, stale: 0, conflict: 0, merged: 0 },
    conflicts: [],
    deadLetters: [],
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
    lagsMs: [...a.lagsMs, ...b.lagsMs],
  };
}

/** A dead letter for `m`: raw bytes kept as they came, text made storable. */
export function deadLetterOf(m: IncomingMessage, reason: string): DeadLetter {
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    msgKey: m.key,
    payload: m.value,
    headers: Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [safeText(k, 200), safeText(v)])),
    reason: safeText(reason),
  };
}

function uniqueKeys(changes: readonly ChangeEvent[]): ItemKey[] {
  const seen = new Map<string, ItemKey>();
  for (const e of changes) seen.set(itemLockKey(e), { collection: e.collection, key: e.key });
  return [...seen.values()];
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
