/**
 * Who is calling, and may they? Clients send `Authorization: Bearer <credential>`: a hothot API key
 * (`hh_<id>_<secret>`, shared/security/apiKey.ts, looked up in this region's `api_key` table) or a
 * JWT (verified with `jose` against the configured issuer, audience and JWKS). Either gives a
 * {@link Principal}: scopes (`read`, `write`, `admin`) and, optionally, the collections it is
 * limited to.
 *
 * - `authenticate` runs before the body is parsed and before routing, for every path but
 *   `/healthz` and `/readyz`: no credential, or one that does not verify → 401 `unauthenticated`
 *   with `WWW-Authenticate: Bearer realm="hothot"` (+ `error="invalid_token"` when one was sent).
 * - `requireScope` is put on each route: the wrong scope, or a collection outside the key's limit
 *   → 403 `forbidden` with `WWW-Authenticate: Bearer realm="hothot", error="insufficient_scope",
 *   scope="…"`.
 *
 * Scopes: `admin` ⊇ `write` ⊇ `read`. Write implies read because a write already answers with the
 * item it produced (PATCH and increment: the merged value; 412: the current version), so a
 * write-only key could read anyway and pretending otherwise would mislead.
 *
 * `SECURITY_MODE=insecure-dev`: no credential is asked for or checked; every request acts with every
 * scope (the region logs a warning at start).
 *
 * Looked-up API keys are cached per process for `API_KEY_CACHE_MS` (default 5 s): a revoked key
 * stops working within that time. Nothing here logs or echoes a credential.
 */
import { readFileSync, statSync } from 'node:fs';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWSAlgorithm,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { SecurityMode, type SecurityConfig } from '../../../shared/config/loadConfig.js';
import { findApiKey, type ApiKeyRecord } from '../../../shared/db/queries/apiKey.js';
import type { Queryable } from '../../../shared/db/pool.js';
import { isValidCollection } from '../../../shared/domain/itemRules.js';
import { AppError, UnavailableError } from '../../../shared/errors/appError.js';
import { Scope, SCOPES, apiKeySecretMatches, isScope, parseApiKey } from '../../../shared/security/apiKey.js';

export const REALM = 'hothot';
/**
 * Paths anyone may call: launchers and load balancers poll them without credentials. (The API's
 * description, /openapi.json and /docs, is open too: its router is mounted before authentication.)
 */
export const OPEN_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/** Asymmetric JWS algorithms only: a JWKS holds public keys; `none` and HMAC are never accepted. */
const JWT_ALGORITHMS: JWSAlgorithm[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
/** Allowed difference between the issuer's clock and ours for `exp` and `nbf`. */
export const JWT_CLOCK_TOLERANCE_S = 5;
/** How often a JWKS file is checked for a change (rotation without a restart). */
const JWKS_FILE_CHECK_MS = 5_000;
/** Unknown key ids are remembered this long at most (a key created meanwhile works after it). */
const NEGATIVE_CACHE_MS = 1_000;
/** Bound of the API key cache (random ids must not grow it without limit). */
const MAX_CACHED_KEYS = 10_000;

/** Who a request acts for. Its `id` (a key id or the JWT subject) is safe to log; nothing else is secret either. */
export interface Principal {
  readonly kind: 'api-key' | 'jwt' | 'insecure-dev';
  readonly id: string;
  /** Effective scopes, implications applied (admin ⇒ write ⇒ read). */
  readonly scopes: ReadonlySet<Scope>;
  /** Collections it may touch; null: every one. */
  readonly collections: ReadonlySet<string> | null;
}

const INSECURE_DEV_PRINCIPAL: Principal = Object.freeze({
  kind: 'insecure-dev',
  id: 'insecure-dev',
  scopes: new Set(SCOPES),
  collections: null,
});

/** The scopes a set of granted scopes amounts to: admin ⇒ write ⇒ read. */
export function effectiveScopes(granted: Iterable<Scope>): ReadonlySet<Scope> {
  const out = new Set<Scope>(granted);
  if (out.has(Scope.Admin)) out.add(Scope.Write);
  if (out.has(Scope.Write)) out.add(Scope.Read);
  return out;
}

/** A 401 or 403 with its `WWW-Authenticate` challenge (the error handler sets it from `headers`). */
export class AuthError extends AppError {
  override readonly name = 'AuthError';
  constructor(
    status: 401 | 403,
    message: string,
    readonly challenge: string,
  ) {
    super(status === 401 ? 'unauthenticated' : 'forbidden', status, message, {
      headers: { 'WWW-Authenticate': challenge },
    });
  }
}

const challenge = (params: Record<string, string> = {}) =>
  [`Bearer realm="${REALM}"`, ...Object.entries(params).map(([k, v]) => `${k}="${v}"`)].join(', ');

function unauthenticated(message: string, tokenPresented: boolean): AuthError {
  return new AuthError(401, message, challenge(tokenPresented ? { error: 'invalid_token' } : {}));
}

export function forbidden(message: string, scope: Scope): AuthError {
  return new AuthError(403, message, challenge({ error: 'insufficient_scope', scope }));
}

export interface AuthenticatorDeps {
  readonly pool: Queryable;
  readonly security: SecurityConfig;
  /** For tests. @default Date.now */
  readonly now?: () => number;
}

interface CachedKey {
  expiresAt: number;
  readonly record: Promise<ApiKeyRecord | undefined>;
}

/** Resolves a request's `Authorization` header to a {@link Principal}, or throws an {@link AuthError}. */
export class Authenticator {
  /** False in `insecure-dev`: every request is let through with every scope. */
  readonly required: boolean;
  private readonly keys = new Map<string, CachedKey>();
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly jwt: JwtVerifier | undefined;

  constructor(private readonly deps: AuthenticatorDeps) {
    this.required = deps.security.mode === SecurityMode.On;
    this.cacheMs = deps.security.apiKeyCacheMs;
    this.now = deps.now ?? Date.now;
    this.jwt =
      deps.security.jwt !== undefined
        ? new JwtVerifier(deps.security.jwt, this.cacheMs, this.now)
        : undefined;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (!this.required) return INSECURE_DEV_PRINCIPAL;
    if (authorization === undefined || authorization.trim() === '')
      throw unauthenticated('this API needs credentials: send Authorization: Bearer <API key or JWT>', false);
    const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m === null)
      throw unauthenticated(
        'only Bearer credentials are accepted: send Authorization: Bearer <API key or JWT>',
        false,
      );
    const token = m[1]!;
    if (token.startsWith('hh_')) return this.apiKey(token);
    if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
      if (this.jwt === undefined)
        throw unauthenticated('this region accepts API keys only (no JWT issuer is configured)', true);
      return this.jwt.verify(token);
    }
    throw unauthenticated('the bearer token is neither a hothot API key (hh_…) nor a JWT', true);
  }

  private async apiKey(token: string): Promise<Principal> {
    const parts = parseApiKey(token);
    if (parts === undefined)
      throw unauthenticated('the API key is malformed: expected hh_<16 characters>_<43 characters>', true);
    const record = await this.lookup(parts.id);
    // One message for unknown, revoked and wrong secret: no oracle for which it was.
    if (record === undefined || record.revoked || !apiKeySecretMatches(parts.secret, record.secretHash))
      throw unauthenticated('the API key is not valid (unknown, revoked, or a wrong secret)', true);
    return {
      kind: 'api-key',
      id: record.id,
      scopes: effectiveScopes(record.scopes.filter(isScope)),
      collections: record.collections === null ? null : new Set(record.collections),
    };
  }

  /** The key with this id, from the cache while fresh (concurrent lookups share one query). */
  private lookup(id: string): Promise<ApiKeyRecord | undefined> {
    const now = this.now();
    const hit = this.keys.get(id);
    if (hit !== undefined && hit.expiresAt > now) return hit.record;
    const record = findApiKey(this.deps.pool, id);
    // Expiry counted from before the query: a revocation committed at T is seen from T + cacheMs on.
    const entry: CachedKey = { expiresAt: now + this.cacheMs, record };
    this.keys.delete(id);
    this.keys.set(id, entry);
    if (this.keys.size > MAX_CACHED_KEYS) this.keys.delete(this.keys.keys().next().value!);
    record.then(
      (r) => {
        if (r === undefined) entry.expiresAt = Math.min(entry.expiresAt, now + NEGATIVE_CACHE_MS);
      },
      () => {
        if (this.keys.get(id) === entry) this.keys.delete(id);
      },
    );
    return record;
  }
}

type JwtSettings = NonNullable<SecurityConfig['jwt']>;

/**
 * JWT verification: signature against the JWKS, `iss`, `aud`, `exp` (required), `nbf`. A verified
 * token is remembered (by its text) until it expires or for the key cache time, whichever comes
 * first: a signature check costs orders of magnitude more CPU than the cache lookup (figures:
 * bench/README.md, "Figures quoted from code comments"), and clients send the same token many times. A key removed from the JWKS stops its tokens within the
 * cache time.
 */
class JwtVerifier {
  private readonly getKey: JWTVerifyGetKey;
  private readonly verified = new Map<string, { expiresAt: number; principal: Principal }>();

  constructor(
    private readonly settings: JwtSettings,
    private readonly cacheMs: number,
    private readonly now: () => number,
  ) {
    if (settings.jwksUrl !== undefined) {
      this.getKey = createRemoteJWKSet(new URL(settings.jwksUrl), {
        timeoutDuration: 5_000,
        cooldownDuration: 30_000,
        cacheMaxAge: 600_000,
      });
    } else if (settings.jwksFile !== undefined) {
      this.getKey = jwksFromFile(settings.jwksFile);
    } else {
      throw new Error('JWT: JWT_JWKS_FILE or JWT_JWKS_URL is needed');
    }
  }

  async verify(token: string): Promise<Principal> {
    const now = this.now();
    const hit = this.verified.get(token);
    if (hit !== undefined && hit.expiresAt > now) return hit.principal;
    if (hit !== undefined) this.verified.delete(token);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.getKey, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: JWT_ALGORITHMS,
        clockTolerance: JWT_CLOCK_TOLERANCE_S,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw jwtFailure(err);
    }
    const principal: Principal = {
      kind: 'jwt',
      id: typeof payload.sub === 'string' ? payload.sub : 'jwt',
      scopes: effectiveScopes(claimScopes(payload[this.settings.scopeClaim])),
      collections: claimCollections(payload[this.settings.collectionsClaim], this.settings.collectionsClaim),
    };
    // `exp` is required, so present; remembered no longer than it is valid (without the tolerance).
    const expiresAt = Math.min(now + this.cacheMs, (payload.exp ?? 0) * 1000);
    if (expiresAt > now) {
      this.verified.set(token, { expiresAt, principal });
      if (this.verified.size > MAX_CACHED_KEYS) this.verified.delete(this.verified.keys().next().value!);
    }
    return principal;
  }
}

/** A key resolver over a JWKS file, re-read when the file changes (checked every few seconds). */
function jwksFromFile(file: string): JWTVerifyGetKey {
  const load = () => {
    const text = readFileSync(file, 'utf8');
    let jwks: JSONWebKeySet;
    try {
      jwks = JSON.parse(text) as JSONWebKeySet;
    } catch (err) {
      throw new Error(`JWT_JWKS_FILE ${file} is not JSON: ${(err as Error).message}`);
    }
    return createLocalJWKSet(jwks);
  };
  let current = load();
  let mtimeMs = statSync(file).mtimeMs;
  let checkedAt = Date.now();
  return (header, token) => {
    const now = Date.now();
    if (now - checkedAt >= JWKS_FILE_CHECK_MS) {
      checkedAt = now;
      try {
        const m = statSync(file).mtimeMs;
        if (m !== mtimeMs) {
          current = load();
          mtimeMs = m;
        }
      } catch {
        // Keep the keys we have: a file being replaced is briefly missing or half written.
      }
    }
    return current(header, token);
  };
}

const JWT_REASONS: Readonly<Record<string, string>> = {
  ERR_JWT_EXPIRED: 'it has expired',
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'its signature does not verify',
  ERR_JWKS_NO_MATCHING_KEY: 'no key of the issuer matches it',
  ERR_JWKS_MULTIPLE_MATCHING_KEYS: 'several keys of the issuer match it and none verifies',
  ERR_JOSE_ALG_NOT_ALLOWED: 'its algorithm is not accepted',
  ERR_JOSE_NOT_SUPPORTED: 'its algorithm is not supported',
  ERR_JWS_INVALID: 'it is malformed',
  ERR_JWT_INVALID: 'it is malformed',
};

function jwtFailure(err: unknown): AppError {
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return unauthenticated(`the JWT is not valid: ${err.message}`, true);
  if (err instanceof joseErrors.JOSEError) {
    if (err.code === 'ERR_JWKS_TIMEOUT' || err.code === 'ERR_JWKS_INVALID')
      return new UnavailableError(
        'auth_unavailable',
        "the issuer's keys cannot be read right now; retry shortly",
        {
          cause: err,
        },
      );
    return unauthenticated(`the JWT is not valid: ${JWT_REASONS[err.code] ?? 'it does not verify'}`, true);
  }
  // Not jose's own: the JWKS URL did not answer.
  return new UnavailableError(
    'auth_unavailable',
    "the issuer's keys cannot be read right now; retry shortly",
    {
      cause: err,
    },
  );
}

/** Scopes from a claim: a space-separated string (OAuth `scope`) or an array; unknown ones ignored. */
function claimScopes(claim: unknown): Scope[] {
  const items = typeof claim === 'string' ? claim.split(/\s+/) : Array.isArray(claim) ? claim : [];
  return items.filter(isScope);
}

/** The collections limit of a claim: absent → every collection; a list (array or space/comma separated). */
function claimCollections(claim: unknown, name: string): ReadonlySet<string> | null {
  if (claim === undefined) return null;
  const items = typeof claim === 'string' ? claim.split(/[\s,]+/).filter((c) => c !== '') : claim;
  if (!Array.isArray(items) || !items.every((c) => typeof c === 'string' && isValidCollection(c)))
    throw unauthenticated(`the JWT is not valid: claim "${name}" must list collection names`, true);
  return new Set<string>(items);
}

/** The principal `authenticate` attached to this request. */
export function principalOf(res: Response): Principal {
  const p = (res.locals as { principal?: Principal }).principal;
  if (p === undefined) throw new Error('no principal: the authenticate middleware did not run');
  return p;
}

/** App-level middleware: resolve the principal of every request but the open paths. */
export function authenticate(auth: Authenticator): RequestHandler {
  return (req, res, next) => {
    if (OPEN_PATHS.has(req.path)) {
      next();
      return;
    }
    auth.authenticate(req.get('authorization')).then(
      (principal) => {
        (res.locals as { principal?: Principal }).principal = principal;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}

/** Whether the principal may touch this collection. */
export function mayUseCollection(p: Principal, collection: string): boolean {
  return p.collections === null || p.collections.has(collection);
}

/**
 * Route-level middleware: the principal needs `scope`, and, with `collectionParam`, that route
 * parameter must be one of its collections.
 */
export function requireScope(scope: Scope, options: { collectionParam?: string } = {}): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const p = principalOf(res);
    if (!p.scopes.has(scope)) {
      next(forbidden(`this needs the ${scope} scope, which these credentials lack`, scope));
      return;
    }
    const param = options.collectionParam;
    if (param !== undefined) {
      const collection = req.params[param];
      if (typeof collection === 'string' && !mayUseCollection(p, collection)) {
        next(
          forbidden(
            `these credentials are not allowed collection ${JSON.stringify(collection.slice(0, 64))}`,
            scope,
          ),
        );
        return;
      }
    }
    next();
  };
}

/**
 * Throw a 403 unless the principal may use `collection`; for handlers whose collection is not a
 * route parameter (`/v1/conflicts?collection=`).
 */
export function assertCollection(res: Response, collection: string, scope: Scope): void {
  if (!mayUseCollection(principalOf(res), collection))
    throw forbidden(
      `these credentials are not allowed collection ${JSON.stringify(collection.slice(0, 64))}`,
      scope,
    );
}
