/**
 * The region API's OpenAPI 3.1 document, generated with zod-openapi from the zod schemas the routes
 * validate requests with (apiSchemas.ts). Served at `GET /openapi.json` (docsRouter.ts);
 * test/integration/api.openapi.contract.test.ts sends real requests to every operation listed here
 * and checks every answer against it, and that the app serves exactly these operations.
 */
import * as z from 'zod';
import {
  createDocument,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
} from 'zod-openapi';
import type { oas31 } from 'zod-openapi';
import {
  BucketDigest,
  CollectionPathParams,
  ConflictList,
  ConflictsQuery,
  DigestQuery,
  ErrorBody,
  Health,
  IfMatchHeader,
  IfNoneMatchHeader,
  IncrementRequest,
  Item,
  ItemHistory,
  ItemList,
  ItemPathParams,
  ItemValue,
  MergePatch,
  Readiness,
  RegionDigest,
  RegionStatus,
  SessionTokenHeader,
  historyQuery,
  listQuery,
} from './apiSchemas.js';

export interface ApiDocumentOptions {
  /** HISTORY_MAX_VERSIONS: the largest `limit` of the history endpoint. */
  readonly historyMaxVersions: number;
  /** @default the package version */
  readonly version?: string;
}

// ---------------------------------------------------------------------------------------------
// Response headers

const RegionHeader = z.string().meta({
  description: 'The region that answered (every response: tells which region a front door chose).',
  example: 'us',
  header: { id: 'X-Hothot-Region' },
});
const ETagHeader = z
  .string()
  .regex(/^"\d+\.\d+\.[a-z][a-z0-9-]*"$/)
  .meta({
    description: "The item's version as a strong ETag; send it back in If-Match / If-None-Match.",
    example: '"1795703728240.0.us"',
    header: { id: 'ETag' },
  });
const OriginHeader = z.string().meta({
  description: 'The region that wrote this version.',
  example: 'us',
  header: { id: 'X-Hothot-Origin' },
});
const SessionHeader = z.string().meta({
  description:
    'A session token covering what this response showed or wrote: send it as `Hothot-Session` on later reads (any region) to read your own writes.',
  header: { id: 'Hothot-Session' },
});
const ChallengeHeader = z.string().meta({
  description:
    'The Bearer challenge (RFC 6750): `error="invalid_token"` or `error="insufficient_scope", scope="…"`.',
  example: 'Bearer realm="hothot"',
  header: { id: 'WWW-Authenticate' },
});
const RetryAfterHeader = z.string().meta({
  description: 'Seconds to wait before retrying (retryable errors).',
  example: '1',
  header: { id: 'Retry-After' },
});

const json = (schema: z.ZodType) => ({ 'application/json': { schema } });

function errorResponse(
  description: string,
  headers: Record<string, z.ZodType> = {},
): ZodOpenApiResponseObject {
  return {
    description,
    headers: z.object({ 'X-Hothot-Region': RegionHeader, ...headers }),
    content: json(ErrorBody),
  };
}

const E = {
  400: (what: string) => errorResponse(`Bad input: ${what}. The code and message name what is wrong.`),
  401: errorResponse('No credentials, or credentials that do not verify (`unauthenticated`).', {
    'WWW-Authenticate': ChallengeHeader,
  }),
  403: errorResponse('The credentials lack the scope, or may not use this collection (`forbidden`).', {
    'WWW-Authenticate': ChallengeHeader,
  }),
  404: (what: string) => errorResponse(what),
  409: errorResponse(
    "`policy_conflict`: the operation does not fit the collection's merge policy (e.g. PUT on a counter collection), or the item was written under another policy.",
  ),
  412: errorResponse(
    '`precondition_failed`: If-Match / If-None-Match did not hold; `currentEtag` is the current version.',
  ),
  413: errorResponse(
    '`body_too_large`: over MAX_BODY_BYTES; `item_too_large`: the change event would not fit in a Kafka message.',
  ),
  415: errorResponse(
    '`unsupported_media_type`: the body must be JSON (`Content-Type: application/json`, UTF-8).',
  ),
  500: errorResponse('`internal`: a bug; the region logged it.'),
  503: errorResponse(
    "`database_unavailable`: this region's PostgreSQL does not answer; `session_not_caught_up`: the region has not applied what the session token names in time; `auth_unavailable`: the JWT issuer's keys cannot be read; `loading_snapshot`: the region is being added and its initial snapshot is not loaded yet; `starting`: the region process is starting (migrations not applied yet). Retry.",
    { 'Retry-After': RetryAfterHeader },
  ),
} as const;

const READ: oas31.SecurityRequirementObject[] = [{ apiKey: ['read'] }, { jwt: ['read'] }];
const WRITE: oas31.SecurityRequirementObject[] = [{ apiKey: ['write'] }, { jwt: ['write'] }];
const ADMIN: oas31.SecurityRequirementObject[] = [{ apiKey: ['admin'] }, { jwt: ['admin'] }];
const OPEN: oas31.SecurityRequirementObject[] = [];

function itemResponse(description: string, session: boolean): ZodOpenApiResponseObject {
  return {
    description,
    headers: z.object({
      'X-Hothot-Region': RegionHeader,
      ETag: ETagHeader,
      'X-Hothot-Origin': OriginHeader,
      ...(session ? { 'Hothot-Session': SessionHeader } : {}),
    }),
    content: json(Item),
  };
}

function ok(description: string, schema: z.ZodType, headers: Record<string, z.ZodType> = {}) {
  return {
    description,
    headers: z.object({ 'X-Hothot-Region': RegionHeader, ...headers }),
    content: json(schema),
  };
}

const writeHeaders = (conditional: 'full' | 'match' | 'none') =>
  z.object({
    ...(conditional !== 'none' ? { 'if-match': IfMatchHeader.optional() } : {}),
    ...(conditional === 'full' ? { 'if-none-match': IfNoneMatchHeader.optional() } : {}),
    'hothot-session': SessionTokenHeader.optional(),
  });

function writeOperation(
  summary: string,
  description: string,
  body: z.ZodType | undefined,
  conditional: 'full' | 'match' | 'none',
  extra: Record<string, ZodOpenApiResponseObject>,
): ZodOpenApiOperationObject {
  return {
    summary,
    description,
    tags: ['items'],
    security: WRITE,
    requestParams: { path: ItemPathParams, header: writeHeaders(conditional) },
    ...(body !== undefined ? { requestBody: { required: true, content: json(body) } } : {}),
    responses: {
      ...extra,
      400: E[400]('a bad collection, key, header, session token or body'),
      401: E[401],
      403: E[403],
      409: E[409],
      412: E[412],
      ...(body !== undefined ? { 413: E[413], 415: E[415] } : {}),
      500: E[500],
      503: E[503],
    },
  };
}

function paths(options: ApiDocumentOptions): ZodOpenApiPathsObject {
  return {
    '/healthz': {
      get: {
        summary: 'Liveness',
        description: 'The process answers. Open: no credentials.',
        tags: ['probes'],
        security: OPEN,
        responses: { 200: ok('Alive.', Health) },
      },
    },
    '/readyz': {
      get: {
        summary: 'Readiness',
        description:
          'Migrations applied, the initial snapshot loaded (a region being added), and PostgreSQL answers (within 2 s). The front door (HAProxy) routes only to ready regions. Open: no credentials.',
        tags: ['probes'],
        security: OPEN,
        responses: {
          200: ok('Ready.', Readiness),
          503: errorResponse(
            '`starting` (migrations not applied yet), `loading_snapshot` (a region being added, its initial snapshot not loaded yet) or `database_unavailable`.',
          ),
        },
      },
    },
    '/openapi.json': {
      get: {
        summary: 'This document',
        description: 'The OpenAPI 3.1 document of this API. Open: no credentials (it holds no data).',
        tags: ['docs'],
        security: OPEN,
        responses: {
          200: ok('The document.', z.looseObject({ openapi: z.literal('3.1.0') })),
        },
      },
    },
    '/docs': {
      get: {
        summary: 'API reference page',
        description:
          'This document rendered by Swagger UI, served by the region itself (nothing is fetched from elsewhere). Open.',
        tags: ['docs'],
        security: OPEN,
        responses: {
          200: {
            description: 'An HTML page.',
            headers: z.object({ 'X-Hothot-Region': RegionHeader }),
            content: { 'text/html': { schema: z.string() } },
          },
        },
      },
    },
    '/docs/{file}': {
      get: {
        summary: 'A file of the reference page',
        description: 'Swagger UI from the swagger-ui-dist package, and the page script. Open.',
        tags: ['docs'],
        security: OPEN,
        requestParams: {
          path: z.object({
            file: z
              .enum(['swagger-ui.css', 'swagger-ui-bundle.js', 'init.js', 'favicon-32x32.png'])
              .meta({ description: 'One of the page files.' }),
          }),
        },
        responses: {
          200: {
            description: 'The file.',
            headers: z.object({ 'X-Hothot-Region': RegionHeader }),
            content: {
              'text/css': { schema: z.string() },
              'text/javascript': { schema: z.string() },
              'image/png': { schema: z.string() },
            },
          },
          404: E[404]('`route_not_found`: no such file.'),
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics',
        tags: ['operations'],
        security: ADMIN,
        responses: {
          200: {
            description: 'Metrics in the Prometheus text format.',
            headers: z.object({ 'X-Hothot-Region': RegionHeader }),
            content: { 'text/plain': { schema: z.string() } },
          },
          401: E[401],
          403: E[403],
        },
      },
    },
    '/v1/status': {
      get: {
        summary: 'Region status',
        tags: ['operations'],
        security: ADMIN,
        responses: {
          200: ok('The status.', RegionStatus),
          401: E[401],
          403: E[403],
          500: E[500],
          503: E[503],
        },
      },
    },
    '/v1/digest': {
      get: {
        summary: 'Item digests (anti-entropy)',
        description:
          "This region's digest per bucket and its peers' last reports; with `bucket`, that bucket's items (what `hothot repair --check` compares). Admin: it names keys of every collection.",
        tags: ['operations'],
        security: ADMIN,
        requestParams: { query: DigestQuery },
        responses: {
          200: ok('Every bucket, or one bucket with `bucket`.', z.union([RegionDigest, BucketDigest])),
          400: E[400]('`invalid_query` (bucket)'),
          401: E[401],
          403: E[403],
          500: E[500],
          503: E[503],
        },
      },
    },
    '/v1/conflicts': {
      get: {
        summary: 'Recorded conflicts',
        description:
          'Oldest first, paged by id. A key limited to collections sees only theirs (and 403 when it names another).',
        tags: ['conflicts'],
        security: READ,
        requestParams: { query: ConflictsQuery },
        responses: {
          200: ok('A page of conflicts.', ConflictList),
          400: E[400]('`invalid_collection`, `invalid_key` or `invalid_query`'),
          401: E[401],
          403: E[403],
          500: E[500],
          503: E[503],
        },
      },
    },
    '/v1/items/{collection}': {
      get: {
        summary: 'List items',
        description: 'Live items of a collection in key order, paged by key (`after`).',
        tags: ['items'],
        security: READ,
        requestParams: { path: CollectionPathParams, query: listQuery() },
        responses: {
          200: ok('A page of items.', ItemList),
          400: E[400]('`invalid_collection`, `invalid_key` (after) or `invalid_query`'),
          401: E[401],
          403: E[403],
          500: E[500],
          503: E[503],
        },
      },
    },
    '/v1/items/{collection}/{key}': {
      get: {
        summary: 'Read an item',
        description:
          'With `Hothot-Session`: waits (bounded) until this region has applied what the session saw. With `If-None-Match`: 304 when it matches.',
        tags: ['items'],
        security: READ,
        requestParams: {
          path: ItemPathParams,
          header: z.object({
            'if-none-match': IfNoneMatchHeader.optional(),
            'hothot-session': SessionTokenHeader.optional(),
          }),
        },
        responses: {
          200: itemResponse('The item.', true),
          304: {
            description: 'Not modified: If-None-Match matched the current version.',
            headers: z.object({
              'X-Hothot-Region': RegionHeader,
              ETag: ETagHeader,
              'Hothot-Session': SessionHeader,
            }),
          },
          400: E[400]('a bad collection, key, If-None-Match or session token'),
          401: E[401],
          403: E[403],
          404: E[404]('`not_found`: no such item (or it was deleted).'),
          500: E[500],
          503: E[503],
        },
      },
      put: writeOperation(
        'Write an item',
        'Replaces the value (a `fields` collection: the fields given, each merged per field across regions). Refused on `counter` collections (409).',
        ItemValue,
        'full',
        {
          200: itemResponse('Replaced.', true),
          201: itemResponse('Created.', true),
        },
      ),
      patch: writeOperation(
        'Merge-patch an item',
        'RFC 7396 JSON Merge Patch of the current value (`lww`, `fields`); creates the item when there is none.',
        MergePatch,
        'match',
        {
          200: itemResponse('Patched.', true),
          201: itemResponse('Created.', true),
        },
      ),
      delete: writeOperation(
        'Delete an item',
        'Writes a tombstone, replicated to every region (deletes stay deleted).',
        undefined,
        'match',
        {
          204: {
            description: 'Deleted.',
            headers: z.object({
              'X-Hothot-Region': RegionHeader,
              ETag: ETagHeader,
              'Hothot-Session': SessionHeader,
            }),
          },
          404: E[404]('`not_found`: no such item.'),
        },
      ),
    },
    '/v1/items/{collection}/{key}/increment': {
      post: writeOperation(
        'Increment a counter',
        'Adds `by` to a field of a `counter` collection item; counts exactly across regions.',
        IncrementRequest,
        'none',
        {
          200: itemResponse('Incremented.', true),
          201: itemResponse('Created.', true),
          422: errorResponse(
            '`counter_overflow`: the total would leave the range of exact integers (±2^53 − 1); nothing is written.',
          ),
        },
      ),
    },
    '/v1/items/{collection}/{key}/history': {
      get: {
        summary: 'Version history',
        description: 'Every version of the item this region saw and what became of it, newest first.',
        tags: ['items'],
        security: READ,
        requestParams: { path: ItemPathParams, query: historyQuery(options.historyMaxVersions) },
        responses: {
          200: ok('The history.', ItemHistory),
          400: E[400]('a bad collection, key or limit'),
          401: E[401],
          403: E[403],
          404: E[404]('`not_found`: this region has no history of the item.'),
          500: E[500],
          503: E[503],
        },
      },
    },
  };
}

/** The OpenAPI 3.1 document (a plain object, ready for JSON). */
export type ApiDocument = ReturnType<typeof createDocument>;

export function buildApiDocument(options: ApiDocumentOptions): ApiDocument {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'hothot region API',
      version: options.version ?? '0.1.0',
      description:
        'An active-active multi-region data service: every region serves reads and writes; writes reach the other regions through Kafka. ' +
        'Every request but /healthz, /readyz, /openapi.json and /docs needs `Authorization: Bearer <API key or JWT>`; each operation names the scope it needs (`admin` ⊇ `write` ⊇ `read`). ' +
        'Errors are `{ "error": { "code", "message" } }` with a stable code. An unknown path answers 404 `route_not_found`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    security: [{ apiKey: [] }, { jwt: [] }],
    tags: [
      { name: 'items', description: 'Items: write, read, list, history.' },
      { name: 'conflicts', description: 'The conflict audit.' },
      { name: 'operations', description: 'Status and metrics.' },
      { name: 'probes', description: 'Liveness and readiness (open).' },
      { name: 'docs', description: 'This document and its reference page (open).' },
    ],
    components: {
      securitySchemes: {
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'hh_<16 characters>_<43 characters>',
          description:
            "A hothot API key (`hothot keys create --scopes read|write|admin [--collections …]`), checked against this region's `api_key` table. The scopes an operation lists are the roles it needs.",
        },
        jwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT signed by the configured issuer (JWT_ISSUER, JWT_AUDIENCE, JWT_JWKS_*): `scope` claim with read/write/admin, optional collection limit. See docs/security.md.',
        },
      },
    },
    paths: paths(options),
  });
}
