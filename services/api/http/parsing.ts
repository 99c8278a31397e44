/**
 * Validation of everything a request carries. Bad input is rejected here, before any query, with a
 * stable code and a message naming what is wrong. Parameters, queries and bodies are checked with
 * the zod schemas the OpenAPI document is generated from (openapi/apiSchemas.ts).
 */
import type * as z from 'zod';
import { formatStamp, parseStamp, type HlcStamp } from '../../../shared/domain/hlc.js';
import { COLLECTION_RULE, KEY_RULE } from '../../../shared/domain/itemRules.js';
import { AppError, BadRequestError } from '../../../shared/errors/appError.js';
import {
  CollectionName,
  ConflictsQuery,
  DEFAULT_LIST_LIMIT,
  IncrementRequest,
  ItemKey,
  ItemValue,
  MAX_CONFLICT_LIMIT,
  MAX_INCREMENT,
  MAX_INCREMENT_FIELD_LENGTH,
  MAX_LIST_LIMIT,
  limitParam,
} from '../openapi/apiSchemas.js';

export { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT };

export function parseCollection(raw: unknown): string {
  const r = CollectionName.safeParse(raw);
  if (!r.success) {
    throw new BadRequestError(
      'invalid_collection',
      `collection ${JSON.stringify(raw)} is invalid: use ${COLLECTION_RULE}`,
    );
  }
  return r.data;
}

export function parseKey(raw: unknown): string {
  const r = ItemKey.safeParse(raw);
  if (!r.success) throw new BadRequestError('invalid_key', `key is invalid: use ${KEY_RULE}`);
  return r.data;
}

/** ETag of a version: the HLC stamp, quoted (strong validator). */
export function etagOf(hlc: HlcStamp): string {
  return `"${formatStamp(hlc)}"`;
}

/** A parsed `If-Match` / `If-None-Match` header: `*`, or the stamps it lists. */
export type EtagCondition = { any: true } | { any: false; stamps: string[] };

export function parseEtagCondition(header: string | undefined, name: string): EtagCondition | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (text === '*') return { any: true };
  const stamps: string[] = [];
  for (const part of text.split(',')) {
    const tag = part.trim();
    // Weak validators (W/"…") never match a strong comparison; hothot issues only strong ones.
    const m = /^(W\/)?"([^"]*)"$/.exec(tag);
    if (!m || parseStamp(m[2]!) === undefined) {
      throw new BadRequestError(
        'invalid_precondition',
        `${name} must be * or a list of ETags as returned by this API (got ${JSON.stringify(tag)})`,
      );
    }
    if (m[1] === undefined) stamps.push(m[2]!);
  }
  return { any: false, stamps };
}

/**
 * Check a request body (a PUT value, a PATCH merge patch, an increment) is acceptable: JSON, not
 * null, within the limits on values and with text PostgreSQL can store (see `findValueProblem`).
 * Nothing walks the body before this (`JSON.parse` is iterative), and nothing that recurses over it
 * runs before it has passed.
 */
export function parseItemValue(body: unknown, contentType: string | undefined): unknown {
  if (body === undefined) {
    // express.json leaves the body undefined for a body of another type, and for no body at all.
    if (contentType !== undefined && isJsonContentType(contentType))
      throw new BadRequestError('invalid_value', 'the body is empty: send a JSON value');
    throw new AppError(
      'unsupported_media_type',
      415,
      `the body must be JSON with Content-Type: application/json (got ${contentType === undefined ? 'no Content-Type' : JSON.stringify(contentType.slice(0, 200))})`,
    );
  }
  const r = ItemValue.safeParse(body);
  if (!r.success) throw new BadRequestError('invalid_value', firstMessage(r.error));
  return r.data;
}

const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
/** A well-formed JSON media type, as express.json reads it (app.ts): application/json or application/*+json. */
const JSON_CONTENT_TYPE = new RegExp(
  `^\\s*application/(?:${TOKEN}\\+)?json\\s*(?:;\\s*${TOKEN}=(?:${TOKEN}|"[^"]*")\\s*)*$`,
  'i',
);

function isJsonContentType(contentType: string): boolean {
  return contentType.length <= 1000 && JSON_CONTENT_TYPE.test(contentType);
}

/** `{ "field": "...", "by": n }` of an increment. */
export function parseIncrement(body: unknown): { field: string; by: number } {
  const r = IncrementRequest.safeParse(body);
  if (r.success) return r.data;
  // The message names the first thing wrong: the shape, then field, then by.
  const at = (name: string) => r.error.issues.some((i) => i.path[0] === name);
  if (r.error.issues.some((i) => i.path.length === 0))
    throw new BadRequestError(
      'invalid_increment',
      'an increment is a JSON object {"field": "<name>", "by": <integer>}',
    );
  if (at('field'))
    throw new BadRequestError(
      'invalid_increment',
      `field must be a non-empty string of at most ${MAX_INCREMENT_FIELD_LENGTH} characters, without NUL or lone UTF-16 surrogates`,
    );
  throw new BadRequestError(
    'invalid_increment',
    `by must be an integer from -${MAX_INCREMENT} to ${MAX_INCREMENT}`,
  );
}

const limitSchemas = new Map<number, ReturnType<typeof limitParam>>();

/** A `limit` query parameter: an integer from 1 to `max`, `fallback` when absent. */
export function parseLimit(raw: unknown, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  let schema = limitSchemas.get(max);
  if (schema === undefined) {
    schema = limitParam(max, 'entries');
    limitSchemas.set(max, schema);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new BadRequestError('invalid_query', `limit must be an integer from 1 to ${max}`);
  return r.data;
}

export interface ListQuery {
  readonly after: string | undefined;
  readonly limit: number;
}

export function parseListQuery(query: Record<string, unknown>): ListQuery {
  const after = query.after;
  if (after !== undefined && typeof after !== 'string')
    throw new BadRequestError('invalid_query', 'after must be given once, as a key');
  if (after !== undefined && after !== '') parseKey(after);
  return {
    after: after === '' ? undefined : after,
    limit: parseLimit(query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT),
  };
}

export interface ConflictsFilter {
  readonly collection: string | undefined;
  readonly key: string | undefined;
  readonly since: Date | undefined;
  readonly after: string | undefined;
  readonly limit: number;
}

/** The query of `GET /v1/conflicts`. */
export function parseConflictsQuery(q: Record<string, unknown>): ConflictsFilter {
  const shape = ConflictsQuery.shape;
  const collection = q.collection === undefined ? undefined : parseCollection(q.collection);
  const key = q.key === undefined ? undefined : parseKey(q.key);
  if (q.since !== undefined && !shape.since.safeParse(q.since).success)
    throw new BadRequestError('invalid_query', 'since must be an ISO-8601 timestamp');
  if (q.after !== undefined && !shape.after.safeParse(q.after).success)
    throw new BadRequestError('invalid_query', 'after must be a conflict id');
  return {
    collection,
    key,
    since: q.since === undefined ? undefined : new Date(q.since as string),
    after: q.after as string | undefined,
    limit: parseLimit(q.limit, DEFAULT_LIST_LIMIT, MAX_CONFLICT_LIMIT),
  };
}

function firstMessage(error: z.ZodError): string {
  return error.issues[0]?.message ?? 'invalid value';
}
