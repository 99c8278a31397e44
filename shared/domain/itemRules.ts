/**
 * What a collection name, a key and a value may be. Shared by the API (rejecting requests) and the
 * applier's decoder (dead-lettering events), so nothing that PostgreSQL would refuse — and that
 * would stall a partition — ever reaches a write. Pure.
 */

export const MAX_COLLECTION_LENGTH = 64;
export const MAX_KEY_LENGTH = 512;

const COLLECTION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Control characters are refused (PostgreSQL rejects NUL in text); "/" separates collection and
// key in message keys.
// eslint-disable-next-line no-control-regex
const KEY_FORBIDDEN = /[\u0000-\u001f\u007f/]/;

export const COLLECTION_RULE = `1-${MAX_COLLECTION_LENGTH} letters, digits, "_", "." or "-", starting with a letter or digit`;
export const KEY_RULE = `1-${MAX_KEY_LENGTH} characters without "/" or control characters`;

export function isValidCollection(s: unknown): s is string {
  return (
    typeof s === 'string' && s.length > 0 && s.length <= MAX_COLLECTION_LENGTH && COLLECTION_PATTERN.test(s)
  );
}

export function isValidKey(s: unknown): s is string {
  return (
    typeof s === 'string' &&
    s.length > 0 &&
    s.length <= MAX_KEY_LENGTH &&
    !KEY_FORBIDDEN.test(s) &&
    s.isWellFormed()
  );
}

/**
 * True when a JSON value has text jsonb cannot store in any string or object key: a NUL character
 * or a lone UTF-16 surrogate.
 */
export function hasUnstorableText(v: unknown): boolean {
  if (typeof v === 'string') return !isStorableString(v);
  if (Array.isArray(v)) return v.some(hasUnstorableText);
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).some(([k, x]) => !isStorableString(k) || hasUnstorableText(x));
  }
  return false;
}

function isStorableString(s: string): boolean {
  return !s.includes('\u0000') && s.isWellFormed();
}

/** `text` made safe for a PostgreSQL text column: no NUL, no lone surrogates, bounded length. */
export function safeText(text: string, maxLength = 2000): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\u0000/g, '\\u0000').toWellFormed();
  return clean.length > maxLength ? `${clean.slice(0, maxLength)}…` : clean;
}
