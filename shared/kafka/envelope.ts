/**
 * The wire format of events between regions (JSON, version 1), and its strict decoder. An event
 * that fails to decode is dead-lettered by the applier with the reason returned here.
 */
import { z } from 'zod';
import type { HlcStamp } from '../domain/hlc.js';
import type { VersionVector } from '../domain/versionVector.js';
import type { CounterState } from '../domain/counterState.js';
import { isCounterState } from '../domain/counterState.js';
import { isFieldsState, type FieldsState } from '../domain/fieldsState.js';
import type { Policy, PolicyMap } from '../domain/mergePolicy.js';
import {
  COLLECTION_RULE,
  KEY_RULE,
  hasUnstorableText,
  isValidCollection,
  isValidKey,
} from '../domain/itemRules.js';

export const ENVELOPE_VERSION = 1;

export interface ChangeEvent {
  readonly v: 1;
  readonly type: 'change';
  /** Region that made the write; equals `hlc.region`. */
  readonly origin: string;
  readonly collection: string;
  readonly key: string;
  /** JSON value; null for a delete. */
  readonly value: unknown;
  readonly deleted: boolean;
  readonly hlc: HlcStamp;
  readonly vv: VersionVector;
  /** Origin's wall clock (ms) when the write was made: the start of replication lag. */
  readonly writtenAt: number;
  /** The collection's merge policy at the origin. @default lww */
  readonly policy?: Policy;
  /** The policy's state (per-field versions, counters); absent for lww. */
  readonly crdt?: FieldsState | CounterState;
}

export interface HeartbeatEvent {
  readonly v: 1;
  readonly type: 'heartbeat';
  readonly origin: string;
  readonly hlc: HlcStamp;
  /** Origin's wall clock (ms) when the heartbeat was sent. */
  readonly sentAt: number;
  /** The partition this copy was sent to, and how many the origin's topic has (sent to each). */
  readonly partition?: number;
  readonly partitions?: number;
  /**
   * Every change the origin wrote with a stamp wall below this (ms) was published to this
   * partition before this heartbeat.
   */
  readonly safeBefore?: number;
  /** The origin's applied watermarks per peer origin (ms): acknowledgements for tombstone GC. */
  readonly watermarks?: Readonly<Record<string, number>>;
  /** The origin's merge policies (collection → policy, lww omitted). */
  readonly policies?: PolicyMap;
}

export type PeerEvent = ChangeEvent | HeartbeatEvent;

const region = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/);
const hlc = z.object({
  wall: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  logical: z.number().int().nonnegative().max(2_147_483_647),
  region,
});
const vv = z.record(region, z.number().int().positive().max(Number.MAX_SAFE_INTEGER));
const ms = z.number().int().nonnegative();

const changeSchema = z
  .object({
    v: z.literal(1),
    type: z.literal('change'),
    origin: region,
    collection: z.string().refine(isValidCollection, `collection must be ${COLLECTION_RULE}`),
    key: z.string().refine(isValidKey, `key must be ${KEY_RULE}`),
    value: z.unknown(),
    deleted: z.boolean(),
    hlc,
    vv,
    writtenAt: ms,
    policy: z.enum(['lww', 'fields', 'counter']).optional(),
    crdt: z.unknown().optional(),
  })
  .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin')
  .refine((e) => (e.vv[e.origin] ?? 0) >= 1, 'vv has no entry for the origin')
  .refine(
    (e) => (e.deleted ? e.value === null : e.value !== null && e.value !== undefined),
    'deleted and value disagree',
  )
  .refine(
    (e) => !hasUnstorableText(e.value) && !hasUnstorableText(e.crdt),
    'value contains a NUL character or a lone surrogate',
  )
  .refine(
    (e) =>
      e.policy === 'fields'
        ? isFieldsState(e.crdt)
        : e.policy === 'counter'
          ? isCounterState(e.crdt)
          : e.crdt === undefined,
    'crdt does not match the policy',
  );

const heartbeatSchema = z
  .object({
    v: z.literal(1),
    type: z.literal('heartbeat'),
    origin: region,
    hlc,
    sentAt: ms,
    partition: z.number().int().nonnegative().optional(),
    partitions: z.number().int().positive().max(10_000).optional(),
    safeBefore: ms.optional(),
    watermarks: z.record(region, ms).optional(),
    policies: z.record(z.string(), z.enum(['lww', 'fields', 'counter'])).optional(),
  })
  .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin');

export type DecodeResult = { ok: true; event: PeerEvent } | { ok: false; reason: string };

/** Decode one Kafka message value; `expectedOrigin` is the region whose topic it came from. */
export function decodeEvent(raw: Buffer | null, expectedOrigin: string | undefined): DecodeResult {
  if (raw === null || raw.length === 0) return { ok: false, reason: 'empty message' };
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return { ok: false, reason: `not JSON: ${(e as Error).message}` };
  }
  const type = (json as { type?: unknown } | null)?.type;
  const schema = type === 'change' ? changeSchema : type === 'heartbeat' ? heartbeatSchema : undefined;
  if (schema === undefined) return { ok: false, reason: `unknown event type ${JSON.stringify(type)}` };
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`);
    return { ok: false, reason: `invalid ${String(type)} event: ${issues.join('; ')}` };
  }
  const event = parsed.data as PeerEvent;
  if (expectedOrigin !== undefined && event.origin !== expectedOrigin) {
    return { ok: false, reason: `event from ${event.origin} on the topic of ${expectedOrigin}` };
  }
  return { ok: true, event };
}

export function encodeEvent(event: PeerEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}
