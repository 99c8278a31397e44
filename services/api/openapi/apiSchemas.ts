/**
 * The API's shapes as zod schemas: what requests may carry (path and query parameters, headers,
 * bodies) and what every response is. The routes validate requests with these schemas
 * (services/api/http/parsing.ts) and the OpenAPI document is generated from the same objects
 * (apiDocument.ts), so the document cannot describe a rule the API does not apply.
 *
 * Rules that JSON Schema cannot say (a key that is well-formed UTF-16, a value's depth and size
 * limits, a date `Date` parses) are refinements: they validate, and the document says them in
 * words.
 */
import * as z from 'zod';
import 'zod-openapi'; // .meta() types: id, param, header
import { DIGEST_BUCKETS } from '../../../shared/domain/digest.js';
import { POLICIES } from '../../../shared/domain/mergePolicy.js';
import {
  COLLECTION_RULE,
  KEY_RULE,
  MAX_COLLECTION_LENGTH,
  MAX_KEY_LENGTH,
  findValueProblem,
  isStorableText,
} from '../../../shared/domain/itemRules.js';

export const MAX_INCREMENT = 1e12;
export const MAX_INCREMENT_FIELD_LENGTH = 256;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;
export const MAX_CONFLICT_LIMIT = 1000;

// ---------------------------------------------------------------------------------------------
// Parameters

/** The same rule as itemRules.isValidCollection (test/unit/apiSchemas.rules.test.ts checks they agree). */
export const CollectionName = z
  .string()
  .min(1)
  .max(MAX_COLLECTION_LENGTH)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)
  .meta({ id: 'CollectionName', description: `A collection name: ${COLLECTION_RULE}.`, example: 'people' });

/** The same rule as itemRules.isValidKey. */
export const ItemKey = z
  .string()
  .min(1)
  .max(MAX_KEY_LENGTH)
  // eslint-disable-next-line no-control-regex -- control characters are what the rule refuses
  .regex(/^[^\u0000-\u001f\u007f/]+$/)
  .refine((s) => s.isWellFormed(), 'a key cannot hold lone UTF-16 surrogates')
  .meta({
    id: 'ItemKey',
    description: `An item key: ${KEY_RULE} (no lone UTF-16 surrogates; percent-encode it in the path).`,
    example: 'ada',
  });

export const ItemPathParams = z.object({ collection: CollectionName, key: ItemKey });
export const CollectionPathParams = z.object({ collection: CollectionName });

/** A `limit` query parameter as sent: up to 6 digits, then checked against `max`. */
export function limitParam(max: number, what: string) {
  return z
    .string()
    .regex(/^\d{1,6}$/)
    .transform(Number)
    .pipe(z.int().min(1).max(max))
    .meta({ description: `How many ${what} at most: an integer from 1 to ${max}.`, example: '10' });
}

export function listQuery(max = MAX_LIST_LIMIT) {
  return z.object({
    after: z
      .union([ItemKey, z.literal('')])
      .optional()
      .meta({
        description: 'Start after this key (the `next` of the previous page); empty: from the start.',
      }),
    limit: limitParam(max, `items (default ${DEFAULT_LIST_LIMIT})`).optional(),
  });
}

export function historyQuery(max: number) {
  return z.object({ limit: limitParam(max, `versions, newest first (default ${max})`).optional() });
}

export const ConflictsQuery = z.object({
  collection: CollectionName.optional(),
  key: ItemKey.optional(),
  since: z
    .string()
    .refine((s) => !Number.isNaN(new Date(s).getTime()))
    .optional()
    .meta({
      description: 'Only conflicts detected at or after this instant (ISO-8601).',
      example: '2026-11-30T14:00:00Z',
    }),
  after: z
    .string()
    .regex(/^\d{1,18}$/)
    .optional()
    .meta({ description: 'Start after this conflict id (the `next` of the previous page).' }),
  limit: limitParam(MAX_CONFLICT_LIMIT, `conflicts (default ${DEFAULT_LIST_LIMIT})`).optional(),
});

export const DigestQuery = z.object({
  bucket: z
    .string()
    .regex(/^\d{1,4}$/)
    .transform(Number)
    .pipe(
      z
        .int()
        .min(0)
        .max(DIGEST_BUCKETS - 1),
    )
    .optional()
    .meta({
      description: `One bucket (0 to ${DIGEST_BUCKETS - 1}): its items with their versions and digests. Absent: every bucket's digest.`,
      example: '17',
    }),
});

// ---------------------------------------------------------------------------------------------
// Request headers (their grammar is checked in parsing.ts and sessionToken.ts; these describe it)

const ETAG_LIST =
  'either `*` or a comma-separated list of ETags as this API returns them (`"<wall>.<logical>.<region>"`)';

export const IfMatchHeader = z.string().meta({
  description: `Write only if the item's current version is one of these: ${ETAG_LIST}. \`*\`: only if the item exists. 412 otherwise.`,
  example: '"1795703728240.0.us"',
});
export const IfNoneMatchHeader = z.string().meta({
  description: `PUT: write only if the current version is none of these (\`*\`: only if the item does not exist; 412 otherwise). GET: 304 if it is. ${ETAG_LIST}.`,
  example: '*',
});
export const SessionTokenHeader = z.string().meta({
  description:
    'A session token from an earlier response (`Hothot-Session`). A read waits (bounded) until this region has applied everything the session saw; 503 `session_not_caught_up` if it cannot in time.',
});

// ---------------------------------------------------------------------------------------------
// Request bodies

const VALUE_LIMITS =
  'any JSON value but null, at most 64 levels deep, 10,000 members per object or array, 100,000 nodes in all, object keys of at most 1,024 characters, text without NUL or lone surrogates, finite numbers';

/** An item value (PUT) or a JSON Merge Patch (PATCH): JSON within the value limits. */
export const ItemValue = z
  .unknown()
  .refine((v) => v !== null, 'an item value cannot be null: use DELETE to remove an item')
  .superRefine((v, ctx) => {
    const problem = v === null ? undefined : findValueProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({
    id: 'ItemValue',
    description: `The item's value: ${VALUE_LIMITS}. A \`fields\` collection takes JSON objects only.`,
    example: { name: 'Ada', born: 1815 },
  });

export const MergePatch = z.record(z.string(), z.unknown()).meta({
  id: 'MergePatch',
  description: `An RFC 7396 JSON Merge Patch: a JSON object (members set to null are removed), within the value limits (${VALUE_LIMITS}).`,
  example: { born: 1815 },
});

export const IncrementRequest = z
  .strictObject({
    field: z
      .string()
      .min(1)
      .max(MAX_INCREMENT_FIELD_LENGTH)
      .refine(isStorableText, 'without NUL or lone UTF-16 surrogates')
      .meta({ description: 'The counter field to change.', example: 'n' }),
    by: z
      .int()
      .min(-MAX_INCREMENT)
      .max(MAX_INCREMENT)
      .meta({ description: 'How much to add (negative: subtract).', example: 1 }),
  })
  .meta({ id: 'IncrementRequest', description: 'An increment of a `counter` collection item.' });

// ---------------------------------------------------------------------------------------------
// Responses

const Version = z
  .string()
  .regex(/^\d+\.\d+\.[a-z][a-z0-9-]*$/)
  .meta({
    id: 'Version',
    description: 'A version: the hybrid-logical-clock stamp `<wall ms>.<logical>.<origin region>`.',
    example: '1795703728240.0.us',
  });
const Region = z.string().meta({ description: 'A region id.', example: 'us' });
const VersionVector = z
  .record(z.string(), z.int().min(0))
  .meta({ id: 'VersionVector', description: 'Writes seen per origin region.', example: { us: 1 } });
const Timestamp = z.iso.datetime({ offset: true });
const NullableTimestamp = Timestamp.nullable();

export const Item = z
  .strictObject({
    collection: CollectionName,
    key: ItemKey,
    value: z.unknown().meta({ description: 'The value (for `counter` collections: the counts).' }),
    version: Version,
    origin: Region,
    vv: VersionVector,
    policy: z.enum(POLICIES as [string, ...string[]]).meta({ description: "The collection's merge policy." }),
  })
  .meta({ id: 'Item', description: 'An item as this region has it.' });

export const ItemList = z
  .strictObject({
    items: z.array(Item),
    next: ItemKey.nullable().meta({ description: 'Pass as `after` for the next page; null: the last page.' }),
  })
  .meta({ id: 'ItemList' });

export const ItemHistory = z
  .strictObject({
    collection: CollectionName,
    key: ItemKey,
    region: Region,
    versions: z.array(
      z.strictObject({
        version: Version,
        origin: Region,
        vv: VersionVector,
        deleted: z.boolean(),
        value: z.unknown(),
        outcome: z.enum(['written', 'applied', 'merged', 'lost']).meta({
          description:
            'written: by this region; applied: a peer version that became the state; merged: merged without conflict; lost: a conflict it lost.',
        }),
        recordedAt: Timestamp,
      }),
    ),
  })
  .meta({ id: 'ItemHistory', description: 'Every version of an item this region saw, newest first.' });

const ConflictVersion = z.looseObject({
  value: z.unknown(),
  deleted: z.boolean(),
  vv: VersionVector,
});

export const ConflictList = z
  .strictObject({
    conflicts: z.array(
      z.strictObject({
        id: z.string().regex(/^\d+$/),
        collection: CollectionName,
        key: ItemKey,
        winner: ConflictVersion,
        loser: ConflictVersion,
        rule: z.string().meta({ description: 'The rule that chose the winner.' }),
        policy: z.string(),
        field: z.string().nullable().meta({ description: 'The field of a `fields` conflict.' }),
        eventId: z.string(),
        detectedAt: Timestamp,
      }),
    ),
    next: z
      .string()
      .nullable()
      .meta({ description: 'Pass as `after` for the next page; null: the last page.' }),
  })
  .meta({
    id: 'ConflictList',
    description: 'Concurrent writes to one key: both versions, the winner and the rule.',
  });

const PeerStatus = z.strictObject({
  region: Region,
  state: z.enum(['up', 'suspect', 'down']),
  heartbeatAgeMs: z.number().nullable(),
  lagMs: z
    .number()
    .nullable()
    .meta({ description: 'Replication lag estimate; null (never 0) for a peer never heard from.' }),
  lastChangeLagMs: z.number().nullable(),
  appliedEvents: z.number(),
  lastAppliedEventId: z.string().nullable(),
  lastAppliedVersion: Version.nullable(),
  lastAppliedAt: NullableTimestamp,
});

export const RegionStatus = z
  .looseObject({
    region: Region,
    roles: z.array(z.string()),
    time: Timestamp,
    peers: z.array(PeerStatus),
    brokerLink: z
      .looseObject({ state: z.enum(['unknown', 'up', 'down']), since: NullableTimestamp })
      .nullable(),
    outbox: z.looseObject({
      rows: z.number(),
      oldestAgeMs: z.number(),
      heldRows: z.number(),
      oldestHeldAt: NullableTimestamp,
    }),
    relay: z.looseObject({ running: z.boolean() }).nullable(),
    messageLimit: z.looseObject({ bytes: z.number() }),
    applier: z.looseObject({ consuming: z.boolean() }).nullable(),
    conflicts: z.number(),
    deadLetters: z.number(),
    quarantined: z.number(),
    policies: z.looseObject({ collections: z.record(z.string(), z.string()), fingerprint: z.string() }),
    appliedThrough: z.record(z.string(), NullableTimestamp),
    tombstones: z.looseObject({ count: z.number(), graceMs: z.number() }),
  })
  .meta({
    id: 'RegionStatus',
    description:
      'This region, its peers (up/suspect/down, heartbeat age, lag), its broker link, outbox backlog, relay, applier, conflicts, dead letters, merge policies, applied watermarks and tombstones. See docs/operations.md.',
  });

const Hex = z.string().regex(/^[0-9a-f]+$/);

export const RegionDigest = z
  .looseObject({
    region: Region,
    buckets: z.int().meta({ description: 'How many buckets keys hash into.' }),
    items: z.int().min(0),
    digest: Hex.meta({ description: "The combined digest of this region's items." }),
    bucketDigests: z.array(
      z.strictObject({ bucket: z.int().min(0), digest: Hex, items: z.int().min(0), maxWall: z.number() }),
    ),
    peers: z.array(
      z.looseObject({
        region: Region,
        sentAt: Timestamp,
        settledBefore: z.number(),
        digest: Hex,
        differingBuckets: z.int().min(0),
      }),
    ),
  })
  .meta({
    id: 'RegionDigest',
    description: "This region's digest per bucket and what its peers last reported (docs/anti-entropy.md).",
  });

export const BucketDigest = z
  .looseObject({
    region: Region,
    bucket: z.int().min(0),
    digest: Hex,
    items: z.array(
      z.strictObject({
        collection: CollectionName,
        key: ItemKey,
        version: Version,
        deleted: z.boolean(),
        digest: Hex,
      }),
    ),
  })
  .meta({ id: 'BucketDigest', description: 'The items of one bucket, with their versions and digests.' });

export const Health = z.strictObject({ status: z.literal('ok') }).meta({ id: 'Health' });
export const Readiness = z
  .strictObject({ status: z.literal('ready'), region: Region })
  .meta({ id: 'Readiness' });

/** Every error code the API answers with (shared/errors/appError.ts, http/errorHandler.ts, the routes and use cases). */
export const ERROR_CODES = [
  'auth_unavailable',
  'bad_request',
  'body_too_large',
  'counter_overflow',
  'database_unavailable',
  'forbidden',
  'internal',
  'invalid_collection',
  'invalid_increment',
  'invalid_key',
  'invalid_path',
  'invalid_precondition',
  'invalid_query',
  'invalid_session',
  'invalid_value',
  'item_too_large',
  'loading_snapshot',
  'malformed_body',
  'malformed_json',
  'not_found',
  'policy_conflict',
  'precondition_failed',
  'request_aborted',
  'route_not_found',
  'session_not_caught_up',
  'starting',
  'unauthenticated',
  'unsupported_media_type',
] as const;

export const ErrorBody = z
  .strictObject({
    error: z.looseObject({
      code: z.enum(ERROR_CODES).meta({ description: 'Stable: branch on it.' }),
      message: z.string().meta({ description: 'What is wrong and what to do, for people.' }),
      currentEtag: z
        .string()
        .nullable()
        .optional()
        .meta({ description: 'precondition_failed: the current ETag (null: no such item).' }),
      behind: z
        .record(z.string(), z.looseObject({ needed: z.number(), applied: z.number().nullable() }))
        .optional()
        .meta({ description: 'session_not_caught_up: per origin, the stamp needed and the one applied.' }),
      eventBytes: z.number().optional().meta({ description: 'item_too_large: the change event size.' }),
      maxEventBytes: z.number().optional().meta({ description: 'item_too_large: the most Kafka takes.' }),
    }),
  })
  .meta({ id: 'Error', description: 'Every error: `{ "error": { "code", "message", … } }`.' });
