/**
 * Session tokens for cross-region read-your-writes. A token names, per origin region, the greatest
 * stamp wall (ms) the client has written or read from that origin. A region answers a read that
 * presents a token only once its applied watermark of every origin named is past that stamp.
 *
 * Wire form: header `Hothot-Session: <base64url(JSON {"v":1,"o":{region: wall}})>.<MAC>`, the MAC
 * an HMAC-SHA256 under the first of `SESSION_TOKEN_KEYS` (shared/security/tokenMac.ts; every key
 * verifies, for rotation). The keys are the same in every region, so a token from one region is
 * accepted by the others, and a client cannot make one up: no watermark from the future to make a
 * region wait, no claim to have read what it did not. A token whose MAC does not verify is
 * `400 invalid_session`, like a malformed one.
 */
import { createHash } from 'node:crypto';
import { SecurityMode, type SecurityConfig } from '../../../shared/config/loadConfig.js';
import { BadRequestError } from '../../../shared/errors/appError.js';
import { openToken, sealToken } from '../../../shared/security/tokenMac.js';
import { isRegionName } from '../../../shared/domain/regionName.js';

export const SESSION_HEADER = 'hothot-session';
const MAX_TOKEN_LENGTH = 4096;

/**
 * The MAC key of `SECURITY_MODE=insecure-dev` without `SESSION_TOKEN_KEYS`: fixed and public (it is
 * derived from this text), so tokens keep one format, but anyone can forge them. The region says so
 * at start.
 */
export const INSECURE_DEV_SESSION_KEY: Buffer = createHash('sha256')
  .update('hothot insecure-dev session-token key: public, forgeable, for local development only')
  .digest();

/** The keys session tokens are sealed and opened with: the configured ones, or the public dev key. */
export function sessionTokenKeys(security: SecurityConfig): readonly Buffer[] {
  if (security.sessionTokenKeys.length > 0) return security.sessionTokenKeys;
  if (security.mode === SecurityMode.InsecureDev) return [INSECURE_DEV_SESSION_KEY];
  throw new Error('SECURITY_MODE=on needs SESSION_TOKEN_KEYS');
}

/** origin → stamp wall (ms). */
export type SessionToken = Readonly<Record<string, number>>;

export function parseSessionToken(
  header: string | undefined,
  keys: readonly Buffer[],
): SessionToken | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const bad = (why: string) =>
    new BadRequestError(
      'invalid_session',
      `${SESSION_HEADER} is not a token this API issued (${why}); send the header value from a previous response`,
    );
  if (header.length > MAX_TOKEN_LENGTH) throw bad('too long');
  // The MAC first: nothing of an unsigned token is parsed.
  const payload = openToken(keys, header.trim());
  if (payload === undefined) throw bad('its MAC does not verify');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw bad('not base64url JSON');
  }
  const o = (parsed as { v?: unknown; o?: unknown } | null)?.o;
  if ((parsed as { v?: unknown } | null)?.v !== 1 || typeof o !== 'object' || o === null || Array.isArray(o))
    throw bad('wrong shape');
  const out: Record<string, number> = {};
  for (const [region, wall] of Object.entries(o)) {
    if (!isRegionName(region) || !Number.isSafeInteger(wall) || (wall as number) < 0)
      throw bad(`bad entry ${JSON.stringify(region)}`);
    out[region] = wall as number;
  }
  return out;
}

export function formatSessionToken(token: SessionToken, keys: readonly Buffer[]): string {
  const o: Record<string, number> = {};
  for (const region of Object.keys(token).sort()) o[region] = token[region]!;
  return sealToken(keys, Buffer.from(JSON.stringify({ v: 1, o })).toString('base64url'));
}

/** The token extended with a version from `origin` stamped `wall`. */
export function extendSessionToken(
  token: SessionToken | undefined,
  origin: string,
  wall: number,
): SessionToken {
  const current = token !== undefined && Object.hasOwn(token, origin) ? token[origin]! : -1;
  return { ...(token ?? {}), [origin]: Math.max(current, wall) };
}
