/**
 * API keys: `hh_<id>_<secret>`. The id (public, 16 lower-case base32 characters) finds the key; the
 * secret (32 random bytes, base64url) proves it. Only SHA-256 of the secret is stored: with 256 bits
 * of randomness a slow password hash would add nothing but CPU per request. Comparison is constant
 * time. Pure apart from the random source.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const Scope = { Read: 'read', Write: 'write', Admin: 'admin' } as const;
export type Scope = (typeof Scope)[keyof typeof Scope];
export const SCOPES: readonly Scope[] = [Scope.Read, Scope.Write, Scope.Admin];

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const KEY_PATTERN = /^hh_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyParts {
  /** Public id, stored in clear and shown by `hothot keys list`. */
  readonly id: string;
  readonly secret: string;
}

export interface NewApiKey extends ApiKeyParts {
  /** What the client sends (`Authorization: Bearer <token>`): shown once, never stored. */
  readonly token: string;
  /** SHA-256 of the secret: what is stored. */
  readonly secretHash: Buffer;
}

export function isScope(s: unknown): s is Scope {
  return typeof s === 'string' && (SCOPES as readonly string[]).includes(s);
}

export function generateApiKey(random: (n: number) => Buffer = randomBytes): NewApiKey {
  const idBytes = random(16);
  const id = Array.from(idBytes, (b) => BASE32[b & 31]).join('');
  const secret = random(32).toString('base64url');
  return { id, secret, token: `hh_${id}_${secret}`, secretHash: hashApiKeySecret(secret) };
}

/** The id and secret of a token that has the shape of a hothot API key, else undefined. */
export function parseApiKey(token: string): ApiKeyParts | undefined {
  const m = KEY_PATTERN.exec(token);
  return m === null ? undefined : { id: m[1]!, secret: m[2]! };
}

export function hashApiKeySecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time check of a presented secret against a stored hash. */
export function apiKeySecretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashApiKeySecret(secret);
  return storedHash.length === presented.length && timingSafeEqual(presented, storedHash);
}
