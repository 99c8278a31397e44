/**
 * Session tokens for cross-region read-your-writes. A token names, per origin region, the greatest
 * stamp wall (ms) the client has written or read from that origin. A region answers a read that
 * presents a token only once its applied watermark of every origin named is past that stamp.
 *
 * Wire form: header `Hothot-Session: <base64url(JSON {"v":1,"o":{region: wall}})>`.
 */
import { BadRequestError } from '../../../shared/errors/appError.js';

export const SESSION_HEADER = 'hothot-session';
const REGION_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
const MAX_TOKEN_LENGTH = 4096;

/** origin → stamp wall (ms). */
export type SessionToken = Readonly<Record<string, number>>;

export function parseSessionToken(header: string | undefined): SessionToken | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const bad = (why: string) =>
    new BadRequestError(
      'invalid_session',
      `${SESSION_HEADER} is not a token this API issued (${why}); send the header value from a previous response`,
    );
  if (header.length > MAX_TOKEN_LENGTH) throw bad('too long');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(header.trim(), 'base64url').toString('utf8'));
  } catch {
    throw bad('not base64url JSON');
  }
  const o = (parsed as { v?: unknown; o?: unknown } | null)?.o;
  if ((parsed as { v?: unknown } | null)?.v !== 1 || typeof o !== 'object' || o === null || Array.isArray(o))
    throw bad('wrong shape');
  const out: Record<string, number> = {};
  for (const [region, wall] of Object.entries(o)) {
    if (!REGION_PATTERN.test(region) || !Number.isSafeInteger(wall) || (wall as number) < 0)
      throw bad(`bad entry ${JSON.stringify(region)}`);
    out[region] = wall as number;
  }
  return out;
}

export function formatSessionToken(token: SessionToken): string {
  const o: Record<string, number> = {};
  for (const region of Object.keys(token).sort()) o[region] = token[region]!;
  return Buffer.from(JSON.stringify({ v: 1, o })).toString('base64url');
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
