/**
 * The wire format of events between regions (JSON, version 1), and its strict decoder. An event
 * that fails to decode is dead-lettered by the applier with the reason returned here.
 *
 * The decoder never throws, whatever the bytes: size, UTF-8, JSON, shape, version, type, then the
 * event's own schema and the topic's origin are checked in that order, and the first failure is
 * the reason (a short, bounded text naming the field). Unknown fields are ignored (a v1 reader
 * tolerates v1 writers that add fields); the size limit bounds them. A stamp far ahead of this
 * region's clock is NOT refused here: the event is valid, and the applier parks it (`clock_skew`).
 */
import { z } from 'zod';
import { DIGEST_BUCKETS } from '../domain/digest.js';
import type { HlcStamp } from '../domain/hlc.js';
import type { VersionVector } from '../domain/versionVector.js';
import type { HeartbeatMarks } from '../domain/watermark.js';
import { POLICIES, Policy } from '../domain/mergePolicy.js';
import type { PolicyVersion } from '../domain/policies/policyRules.js';
import { POLICY_REGISTRY } from '../domain/policies/registry.js';
import {
  COLLECTION_RULE,
  KEY_RULE,
  findReplicatedValueProblem,
  isValidCollection,
  isValidKey,
  safeText,
} from '../domain/itemRules.js';
import { REGION_NAME_HINT, REGION_NAME_PATTERN } from '../domain/regionName.js';

export const ENVELOPE_VERSION = 1;

/**
 * Largest encoded event (bytes) the decoder accepts: 4 MiB, more than any broker of ours carries
 * (Kafka's default `message.max.bytes` is 1 MiB + 12, the lab's 2 MiB), so it only stops an event
 * that no region of ours could have published. Anything bigger is dead-lettered unparsed.
 */
export const MAX_EVENT_BYTES = 4 * 1024 * 1024;

/** Longest text of one field in a decode reason (a value echoed back, a path segment). */
const MAX_SHOWN = 60;
/** Schema issues named in a reason; the rest are counted. */
const MAX_ISSUES = 5;
/** Longest reason (characters), an ellipsis aside. */
export const MAX_REASON = 1000;

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
  readonly crdt?: NonNullable<PolicyVersion['crdt']>;
}

export interface HeartbeatEvent extends HeartbeatMarks {
  readonly v: 1;
  readonly type: 'heartbeat';
  readonly hlc: HlcStamp;
}

/**
 * Anti-entropy (docs/anti-entropy.md): the origin's digest of every bucket of its items, sent beside
 * its heartbeats (and signed like them).
 */
export interface DigestEvent {
  readonly v: 1;
  readonly type: 'digest';
  readonly origin: string;
  readonly hlc: HlcStamp;
  readonly sentAt: number;
  /** The origin held every write stamped below this wall (ms) when it read the digest. */
  readonly settledBefore: number;
  /** The origin's tombstone-GC horizon (ms). */
  readonly gcHorizon: number;
  /** Per bucket (DIGEST_BUCKETS of them): the digest, 16 hex digits. */
  readonly digests: readonly string[];
  /** Per bucket: the greatest stamp wall (ms) written into it. */
  readonly maxWalls: readonly number[];
}

/** Anti-entropy: the origin's items of one bucket it found divergent, each with its digest. */
export interface BucketKeysEvent {
  readonly v: 1;
  readonly type: 'bucket-keys';
  readonly origin: string;
  readonly hlc: HlcStamp;
  readonly sentAt: number;
  readonly gcHorizon: number;
  readonly bucket: number;
  /** [collection, key, digest (16 hex digits)] of every item (tombstones included) of the bucket. */
  readonly keys: readonly (readonly [string, string, string])[];
}

/**
 * Anti-entropy: the origin republishes its stored version of one item, unchanged (same stamp, same
 * vector), for a peer whose copy differs. `origin` is the republishing region; `hlc.region` is the
 * version's writer, which may be another region. Merged like a change.
 */
export interface RepairEvent extends Omit<ChangeEvent, 'type'> {
  readonly type: 'repair';
}

export type PeerEvent = ChangeEvent | HeartbeatEvent | DigestEvent | BucketKeysEvent | RepairEvent;

const region = z.string().regex(REGION_NAME_PATTERN, `not a region id (${REGION_NAME_HINT})`);
/**
 * A map of ours (vector, watermarks, policies) as a zod record, refusing an own `__proto__` key
 * first: `JSON.parse` makes one, and zod's record skips it silently instead of checking it.
 */
function record<T extends z.ZodType>(map: T) {
  return z
    .custom<unknown>((o) => typeof o !== 'object' || o === null || !Object.hasOwn(o, '__proto__'), {
      error: 'has a "__proto__" key',
    })
    .pipe(map);
}
const hlc = z.object({
  wall: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  logical: z.number().int().nonnegative().max(2_147_483_647),
  region,
});
const vv = record(z.record(region, z.number().int().positive().max(Number.MAX_SAFE_INTEGER)));
/** A wall-clock instant (ms): within JavaScript's Date range, since it becomes a timestamptz. */
const ms = z.number().int().nonnegative().max(8_640_000_000_000_000);

/** The fields of an item version on the wire: a change, or a repair republishing a stored version. */
const itemFields = {
  v: z.literal(1),
  origin: region,
  collection: z.string().refine(isValidCollection, `collection must be ${COLLECTION_RULE}`),
  key: z.string().refine(isValidKey, `key must be ${KEY_RULE}`),
  value: z.unknown(),
  deleted: z.boolean(),
  hlc,
  vv,
  writtenAt: ms,
  policy: z.enum(POLICIES).optional(),
  crdt: z.unknown().optional(),
};

interface ItemFields {
  value?: unknown;
  deleted: boolean;
  policy?: Policy | undefined;
  crdt?: unknown;
}

/** What every item version must hold beyond its fields' own types (change and repair alike). */
function withItemChecks<S extends z.ZodType<ItemFields>>(schema: S) {
  return schema
    .refine(
      (e) => (e.deleted ? e.value === null : e.value !== null && e.value !== undefined),
      'deleted and value disagree',
    )
    .refine((e) => findReplicatedValueProblem(e) === undefined, {
      error: (iss) => findReplicatedValueProblem(iss.input),
    })
    .refine((e) => POLICY_REGISTRY[e.policy ?? Policy.Lww].isState(e.crdt), 'crdt does not match the policy');
}

const changeSchema = withItemChecks(
  z
    .object({ ...itemFields, type: z.literal('change') })
    .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin')
    .refine((e) => (e.vv[e.origin] ?? 0) >= 1, 'vv has no entry for the origin'),
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
    watermarks: record(z.record(region, ms)).optional(),
    policies: record(
      z.record(
        z.string().refine(isValidCollection, `not a collection (${COLLECTION_RULE})`),
        z.enum(POLICIES),
      ),
    ).optional(),
  })
  .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin')
  .refine(
    (e) => e.partition === undefined || e.partitions === undefined || e.partition < e.partitions,
    'partition is not below partitions',
  );

const repairSchema = withItemChecks(
  z
    .object({ ...itemFields, type: z.literal('repair') })
    .refine((e) => (e.vv[e.hlc.region] ?? 0) >= 1, 'vv has no entry for the writer (hlc.region)'),
);

const digestHex = z.string().regex(/^[0-9a-f]{16}$/, 'not a digest (16 hex digits)');

const digestSchema = z
  .object({
    v: z.literal(1),
    type: z.literal('digest'),
    origin: region,
    hlc,
    sentAt: ms,
    settledBefore: ms,
    gcHorizon: ms,
    digests: z.array(digestHex).length(DIGEST_BUCKETS),
    maxWalls: z.array(ms).length(DIGEST_BUCKETS),
  })
  .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin');

const bucketKeysSchema = z
  .object({
    v: z.literal(1),
    type: z.literal('bucket-keys'),
    origin: region,
    hlc,
    sentAt: ms,
    gcHorizon: ms,
    bucket: z
      .number()
      .int()
      .nonnegative()
      .max(DIGEST_BUCKETS - 1),
    keys: z
      .array(
        z.tuple([
          z.string().refine(isValidCollection, `collection must be ${COLLECTION_RULE}`),
          z.string().refine(isValidKey, `key must be ${KEY_RULE}`),
          digestHex,
        ]),
      )
      .max(1_000_000),
  })
  .refine((e) => e.hlc.region === e.origin, 'hlc.region differs from origin');

const SCHEMAS = {
  change: changeSchema,
  heartbeat: heartbeatSchema,
  digest: digestSchema,
  'bucket-keys': bucketKeysSchema,
  repair: repairSchema,
} as const;

export type DecodeResult = { ok: true; event: PeerEvent } | { ok: false; reason: string };

/** Fatal: a malformed byte sequence throws instead of becoming U+FFFD. The BOM is kept (and refused). */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decode one Kafka message value; `expectedOrigin` is the region whose topic it came from. Never
 * throws: every failure is `{ ok: false, reason }`.
 */
export function decodeEvent(raw: Buffer | null, expectedOrigin: string | undefined): DecodeResult {
  try {
    return decode(raw, expectedOrigin);
  } catch (e) {
    // A check that blew up (e.g. a value nested deeper than the stack) is a bad event, not a crash.
    return fail(`event could not be checked: ${clip(e instanceof Error ? e.message : String(e), 200)}`);
  }
}

function decode(raw: Buffer | null, expectedOrigin: string | undefined): DecodeResult {
  if (raw === null || raw.length === 0) return fail('empty message');
  if (raw.length > MAX_EVENT_BYTES)
    return fail(`event of ${raw.length} bytes is larger than ${MAX_EVENT_BYTES}`);
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return fail(`not valid UTF-8 (first bad byte near offset ${firstInvalidUtf8Offset(raw)})`);
  }
  if (text.startsWith('\uFEFF')) return fail('not JSON: starts with a byte order mark');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail(`not JSON: ${clip((e as Error).message, 200)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return fail(`event is not a JSON object but ${kindOf(json)}`);
  const obj = json as Record<string, unknown>;
  if (!Object.hasOwn(obj, 'v')) return fail('no envelope version (v)');
  if (obj.v !== ENVELOPE_VERSION)
    return fail(`unsupported envelope version ${show(obj.v)} (this region reads ${ENVELOPE_VERSION})`);
  const type = obj.type;
  if (type === undefined) return fail('no event type');
  if (typeof type !== 'string' || !Object.hasOwn(SCHEMAS, type))
    return fail(`unknown event type ${show(type)}`);
  const parsed = SCHEMAS[type as keyof typeof SCHEMAS].safeParse(json);
  if (!parsed.success) return fail(`invalid ${type} event: ${describeIssues(parsed.error.issues)}`);
  const event = parsed.data as PeerEvent;
  if (expectedOrigin !== undefined && event.origin !== expectedOrigin) {
    return fail(`event from ${event.origin} on the topic of ${expectedOrigin}`);
  }
  return { ok: true, event };
}

/** Reasons are storable text (no NUL, no lone surrogate: input may be echoed) of bounded length. */
function fail(reason: string): DecodeResult {
  return { ok: false, reason: safeText(reason, MAX_REASON) };
}

/**
 * The first few issues, one per field (`path: message`, long path segments cut); issues of the
 * event as a whole (its cross-field rules) have no path.
 */
function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const byPath = new Map<string, string>();
  for (const i of issues) {
    const path = i.path.map((p) => clip(String(p), MAX_SHOWN)).join('.');
    // A bad record key: zod's own message says only "Invalid key in record"; the key's says why.
    const message =
      i.code === 'invalid_key' && i.issues[0] !== undefined
        ? `invalid key: ${i.issues[0].message}`
        : i.message;
    const text = clip(message, 300);
    if (path === '') byPath.set(`\u0000${text}`, text);
    else if (!byPath.has(path)) byPath.set(path, `${path}: ${text}`);
  }
  const texts = [...byPath.values()];
  const shown = texts.slice(0, MAX_ISSUES).join('; ');
  return texts.length > MAX_ISSUES ? `${shown}; and ${texts.length - MAX_ISSUES} more` : shown;
}

/** A received value in a reason: JSON, cut short. */
function show(v: unknown): string {
  return clip(typeof v === 'object' && v !== null ? kindOf(v) : (JSON.stringify(v) ?? String(v)), MAX_SHOWN);
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * Where the first malformed sequence of `raw` starts, about: bytes before it decode and re-encode
 * unchanged, so the first difference from the lossy round trip is at (or just after) it.
 */
function firstInvalidUtf8Offset(raw: Buffer): number {
  const lossy = Buffer.from(raw.toString('utf8'));
  let i = 0;
  while (i < raw.length && raw[i] === lossy[i]) i++;
  return Math.min(i, raw.length - 1);
}

export function encodeEvent(event: PeerEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}

/** A write this region made of one item: what its change event says. */
export interface LocalWrite {
  /** This region. */
  readonly origin: string;
  readonly collection: string;
  readonly key: string;
  /** The version the write made. */
  readonly version: PolicyVersion;
  /** This region's wall clock (ms) at the write. */
  readonly writtenAt: number;
}

/**
 * The change event of a local write, as the JSON text the outbox holds and the relay publishes
 * unchanged ({@link decodeEvent} reads it). An `lww` version carries neither policy nor state: a
 * reader takes their absence as `lww`.
 */
export function encodeChangeEvent(write: LocalWrite): string {
  const { version } = write;
  const event: ChangeEvent = {
    v: ENVELOPE_VERSION,
    type: 'change',
    origin: write.origin,
    collection: write.collection,
    key: write.key,
    value: version.value,
    deleted: version.deleted,
    hlc: version.hlc,
    vv: version.vv,
    writtenAt: write.writtenAt,
    ...(version.policy === Policy.Lww ? {} : { policy: version.policy, crdt: version.crdt! }),
  };
  return JSON.stringify(event);
}
