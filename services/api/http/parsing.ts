/** Validation of everything a request carries. Bad input is rejected here, before any query. */
import { formatStamp, parseStamp, type HlcStamp } from '../../../shared/domain/hlc.js';
import { AppError, BadRequestError } from '../../../shared/errors/appError.js';

export const MAX_COLLECTION_LENGTH = 64;
export const MAX_KEY_LENGTH = 512;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

const COLLECTION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Control characters are refused (PostgreSQL rejects NUL); "/" separates collection and key in
// message keys.
// eslint-disable-next-line no-control-regex
const KEY_FORBIDDEN = /[\u0000-\u001f\u007f/]/;

export function parseCollection(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_COLLECTION_LENGTH || !COLLECTION_PATTERN.test(raw)) {
    throw new BadRequestError(
      'invalid_collection',
      `collection ${JSON.stringify(raw)} is invalid: use 1-${MAX_COLLECTION_LENGTH} letters, digits, "_", "." or "-", starting with a letter or digit`,
    );
  }
  return raw;
}

export function parseKey(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_KEY_LENGTH || KEY_FORBIDDEN.test(raw) || !raw.isWellFormed()) {
    throw new BadRequestError(
      'invalid_key',
      `key is invalid: use 1-${MAX_KEY_LENGTH} characters without "/" or control characters`,
    );
  }
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
      throw new BadRequestError('invalid_precondition', `${name} must be * or a list of ETags as returned by this API (got ${JSON.stringify(tag)})`);
    }
    if (m[1] === undefined) stamps.push(m[2]!);
  }
  return { any: false, stamps };
}

/** Check a request body is an acceptable item value: JSON, not null, no NUL characters. */
export function parseItemValue(body: unknown, contentType: string | undefined): unknown {
  if (body === undefined) {
    throw new AppError(
      'unsupported_media_type',
      415,
      `the body must be JSON with Content-Type: application/json (got ${contentType === undefined ? 'no Content-Type' : JSON.stringify(contentType)})`,
    );
  }
  if (body === null) throw new BadRequestError('invalid_value', 'an item value cannot be null: use DELETE to remove an item');
  if (containsNul(body)) throw new BadRequestError('invalid_value', 'the value contains a NUL character (\\u0000), which cannot be stored');
  return body;
}

function containsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(containsNul);
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).some(([k, x]) => k.includes('\u0000') || containsNul(x));
  }
  return false;
}

export interface ListQuery {
  readonly after: string | undefined;
  readonly limit: number;
}

export function parseListQuery(query: Record<string, unknown>): ListQuery {
  const after = query.after;
  const limitRaw = query.limit;
  if (after !== undefined && typeof after !== 'string') throw new BadRequestError('invalid_query', 'after must be given once, as a key');
  if (after !== undefined && after !== '') parseKey(after);
  let limit = DEFAULT_LIST_LIMIT;
  if (limitRaw !== undefined) {
    const n = typeof limitRaw === 'string' && /^\d{1,6}$/.test(limitRaw) ? Number(limitRaw) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > MAX_LIST_LIMIT) {
      throw new BadRequestError('invalid_query', `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
    }
    limit = n;
  }
  return { after: after === '' ? undefined : after, limit };
}
