/**
 * Message authentication for tokens a region hands to clients and later gets back (session tokens):
 * `<payload>.<HMAC-SHA256(key, payload), base64url>`. Several keys may verify (rotation: the first
 * signs, every one verifies), so a secret can be replaced without invalidating live sessions.
 * Pure.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The least key length accepted: 32 bytes, as HMAC-SHA256's block of randomness. */
export const MIN_MAC_KEY_BYTES = 32;

export function macOf(key: Buffer, payload: string): string {
  return createHmac('sha256', key).update(payload, 'utf8').digest('base64url');
}

/** `payload` with its MAC under the first key. */
export function sealToken(keys: readonly Buffer[], payload: string): string {
  const key = keys[0];
  if (key === undefined) throw new Error('no key to sign tokens with');
  return `${payload}.${macOf(key, payload)}`;
}

/** The payload of a token whose MAC verifies under one of `keys`, else undefined. */
export function openToken(keys: readonly Buffer[], token: string): string | undefined {
  const dot = token.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const payload = token.slice(0, dot);
  // Compared as text, not decoded bytes: base64url has unused bits in its last character.
  const presented = Buffer.from(token.slice(dot + 1));
  for (const key of keys) {
    const expected = Buffer.from(macOf(key, payload));
    if (presented.length === expected.length && timingSafeEqual(presented, expected)) return payload;
  }
  return undefined;
}
