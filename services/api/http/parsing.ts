/** Validation of everything a request carries. Bad input is rejected here, before any query. */
import { formatStamp, parseStamp, type HlcStamp } from '../../../shared/domain/hlc.js';
import {
  COLLECTION_RULE,
  KEY_RULE,
  findValueProblem,
  isStorableText,
  isValidCollection,
  isValidKey,
} from '../../../shared/domain/itemRules.js';
import { AppError, BadRequestError } from '../../../shared/errors/appError.js';

export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

export function parseCollection(raw: unknown): string {
  if (!isValidCollection(raw)) {
    throw new BadRequestError(
      'invalid_collection',
      `collection ${JSON.stringify(raw)} is invalid: use ${COLLECTION_RULE}`,
    );
  }
  return raw;
}

export function parseKey(raw: unknown): string {
  if (!isValidKey(raw)) throw new BadRequestError('invalid_key', `key is invalid: use ${KEY_RULE}`);
  return raw;
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
  if (body === null)
    throw new BadRequestError('invalid_value', 'an item value cannot be null: use DELETE to remove an item');
  const problem = findValueProblem(body);
  if (problem !== undefined) throw new BadRequestError('invalid_value', problem);
  return body;
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

const MAX_INCREMENT = 1e12;
const MAX_FIELD_LENGTH = 256;

/** `{ "field": "...", "by": n }` of an increment. */
export function parseIncrement(body: unknown): { field: string; by: number } {
  const b = body as { field?: unknown; by?: unknown } | null;
  const field = b?.field;
  const by = b?.by;
  if (
    typeof b !== 'object' ||
    b === null ||
    Array.isArray(b) ||
    Object.keys(b).some((k) => k !== 'field' && k !== 'by')
  ) {
    throw new BadRequestError(
      'invalid_increment',
      'an increment is a JSON object {"field": "<name>", "by": <integer>}',
    );
  }
  if (
    typeof field !== 'string' ||
    field.length === 0 ||
    field.length > MAX_FIELD_LENGTH ||
    !isStorableText(field)
  ) {
    throw new BadRequestError(
      'invalid_increment',
      `field must be a non-empty string of at most ${MAX_FIELD_LENGTH} characters, without NUL or lone UTF-16 surrogates`,
    );
  }
  if (typeof by !== 'number' || !Number.isSafeInteger(by) || Math.abs(by) > MAX_INCREMENT) {
    throw new BadRequestError(
      'invalid_increment',
      `by must be an integer from -${MAX_INCREMENT} to ${MAX_INCREMENT}`,
    );
  }
  return { field, by };
}

/** A `limit` query parameter: an integer from 1 to `max`, `fallback` when absent. */
export function parseLimit(raw: unknown, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = typeof raw === 'string' && /^\d{1,6}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new BadRequestError('invalid_query', `limit must be an integer from 1 to ${max}`);
  return n;
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
