/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- response bodies are probed loosely */
/**
 * Client authentication and authorisation (issue 10): API keys with scopes and collection limits,
 * JWT bearer tokens, revocation within API_KEY_CACHE_MS, MAC'd session tokens, and no secret in
 * logs, /v1/status or error bodies. Two in-process regions with SECURITY_MODE=on; requests go out
 * over node:http, so exactly the headers written here are sent.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import pg from 'pg';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { addKeysCommands } from '../../infra/ops/keysCommands.js';
import { itemsRouter, type ItemsRouteDeps } from '../../services/api/routes/items.js';
import { statusRouter, type StatusRouteDeps } from '../../services/api/routes/status.js';
import { bootstrapAdminKey } from '../../services/region/bootstrapAdminKey.js';
import { Region } from '../../services/region/region.js';
import { loadConfig, type Config } from '../../shared/config/loadConfig.js';
import { insertApiKey } from '../../shared/db/queries/apiKey.js';
import { SCOPES, generateApiKey, type NewApiKey, type Scope } from '../../shared/security/apiKey.js';
import { testAdminKey, testLogger, waitFor } from '../support/harness.js';
import { startTestRegions } from '../support/regionHarness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

// ---------------------------------------------------------------------------------------------
// HTTP without fetch: nothing (no global dispatcher, no test setup) adds or changes a header.

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any;
}

interface Send {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Sent as the `Authorization` header as it is. */
  authorization?: string;
  body?: unknown;
  /** Sent as the body as it is (with `content-type: application/json`). */
  rawBody?: string;
  headers?: Record<string, string>;
}

function send(base: string, method: string, path: string, options: Send = {}): Promise<Reply> {
  const url = new URL(path, base);
  const body =
    options.rawBody !== undefined
      ? Buffer.from(options.rawBody)
      : options.body === undefined
        ? undefined
        : Buffer.from(JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text === '' ? null : (JSON.parse(text) as unknown);
          } catch {
            parsed = null;
          }
          resolve({ status: res.statusCode!, headers: res.headers, text, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Regions with SECURITY_MODE=on and their log lines.

const ISSUER = 'https://issuer.test.hothot';
const AUDIENCE = 'hothot-api';
const KEY_CACHE_MS = 500;

/** The configuration with SECURITY_MODE=on (the harness gives every credential it requires). */
function secureConfig(env: Record<string, string>): Config {
  return loadConfig({ ...env, SECURITY_MODE: 'on' });
}

interface Regions {
  readonly regions: Readonly<Record<string, Region>>;
  readonly databaseUrls: Readonly<Record<string, string>>;
  /** Every log line of every region (JSON text), at debug. */
  readonly logs: string[];
  stop(): Promise<void>;
}

async function startRegions(
  names: readonly string[],
  env: Record<string, string>,
  configFor: (env: Record<string, string>) => Config = secureConfig,
): Promise<Regions> {
  const logs: string[] = [];
  const t = await startTestRegions(
    names,
    { HEARTBEAT_INTERVAL_MS: '200', HEARTBEAT_MARK_INTERVAL_MS: '20', ...env },
    () => ({}),
    {
      logDestination: { write: (line: string) => void logs.push(line) },
      logLevel: 'debug',
      loadConfig: configFor,
    },
  );
  return { regions: t.regions, databaseUrls: t.databaseUrls, logs, stop: () => t.stop() };
}

/** `hothot keys …` in this process: its exit code, stdout and stderr. */
async function keysCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command('hothot').exitOverride();
  addKeysCommands(program);
  let stdout = '';
  let stderr = '';
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  const capture = (append: (s: string) => void) =>
    ((s: string | Uint8Array) => {
      append(typeof s === 'string' ? s : Buffer.from(s).toString('utf8'));
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture((s) => (stdout += s));
  process.stderr.write = capture((s) => (stderr += s));
  const before = process.exitCode;
  try {
    await program.parseAsync(['keys', ...args], { from: 'user' });
    return { code: Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exitCode = before;
  }
}

async function createKey(
  databaseUrls: readonly string[],
  scopes: readonly Scope[],
  collections: readonly string[] | null = null,
): Promise<NewApiKey> {
  const key = generateApiKey();
  for (const url of databaseUrls) {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await insertApiKey(pool, { id: key.id, secretHash: key.secretHash, scopes, collections, name: 'test' });
    } finally {
      await pool.end();
    }
  }
  return key;
}

const CHALLENGE = 'Bearer realm="hothot"';
const INVALID_TOKEN = 'Bearer realm="hothot", error="invalid_token"';
const insufficient = (scope: Scope) => `Bearer realm="hothot", error="insufficient_scope", scope="${scope}"`;

/** Every route of the API but /healthz and /readyz, with the scope it needs. */
const ROUTES: readonly { method: string; path: string; body?: unknown; scope: Scope }[] = [
  { method: 'PUT', path: '/v1/items/things/a', body: { v: 1 }, scope: 'write' },
  { method: 'PATCH', path: '/v1/items/things/a', body: { v: 2 }, scope: 'write' },
  { method: 'POST', path: '/v1/items/counts/a/increment', body: { field: 'n', by: 1 }, scope: 'write' },
  { method: 'DELETE', path: '/v1/items/things/a', scope: 'write' },
  { method: 'GET', path: '/v1/items/things/a', scope: 'read' },
  { method: 'GET', path: '/v1/items/things/a/history', scope: 'read' },
  { method: 'GET', path: '/v1/items/things', scope: 'read' },
  { method: 'GET', path: '/v1/conflicts', scope: 'read' },
  { method: 'GET', path: '/v1/status', scope: 'admin' },
  { method: 'GET', path: '/metrics', scope: 'admin' },
];

let t: Regions;
let us: string;
let eu: string;
let dir: string;
let admin: NewApiKey;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
let publicJwk: JWK;
const sessionKey = randomBytes(32).toString('base64url');
/** Every secret this test hands out: none may appear in a log line, /v1/status or an error. */
const secrets: string[] = [sessionKey, testAdminKey()];

const jwt = (
  claims: Record<string, unknown>,
  options: {
    key?: CryptoKey;
    kid?: string;
    iss?: string;
    aud?: string;
    exp?: number | string;
    nbf?: number;
  } = {},
) => {
  let b = new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: options.kid ?? 'k1' })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setSubject('alice')
    .setIssuedAt();
  if (options.exp !== undefined) b = b.setExpirationTime(options.exp);
  else b = b.setExpirationTime('5m');
  if (options.nbf !== undefined) b = b.setNotBefore(options.nbf);
  return b.sign(options.key ?? signingKey).then((token) => {
    secrets.push(token);
    return token;
  });
};

const test = regionsTest(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hothot-auth-'));
  const pair = await generateKeyPair('EdDSA', { extractable: true });
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('EdDSA')).privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' };
  const jwksFile = join(dir, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [publicJwk] }));
  return startRegions(['us', 'eu'], {
    SESSION_TOKEN_KEYS: sessionKey,
    API_KEY_CACHE_MS: String(KEY_CACHE_MS),
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    JWT_JWKS_FILE: jwksFile,
    COLLECTION_POLICIES: 'counts=counter',
  });
});

describe('client authentication and authorisation (SECURITY_MODE=on)', () => {
  test.beforeAll(async ({ regions }) => {
    t = regions;
    us = t.regions.us!.url;
    eu = t.regions.eu!.url;
    admin = await createKey(Object.values(t.databaseUrls), SCOPES);
    secrets.push(admin.token, admin.secret);
  }, REGIONS_START_MS);

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('when the route list is compared with the routers, then it names every route', () => {
    interface Layer {
      route?: { path: string; methods: Record<string, boolean> };
    }
    const routes = (router: unknown) =>
      (router as { stack: Layer[] }).stack.flatMap((l) =>
        l.route === undefined
          ? []
          : Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${l.route!.path}`),
      );
    const registered = [
      ...routes(itemsRouter({ sessionKeys: [] } as unknown as ItemsRouteDeps)),
      ...routes(statusRouter({} as StatusRouteDeps)),
    ].filter((r) => r !== 'GET /healthz' && r !== 'GET /readyz');
    const listed = ROUTES.map((r) => `${r.method} ${r.path}`);
    for (const route of registered) {
      const pattern = new RegExp(`^${route.replace(/:[a-z]+/g, '[^/]+')}$`);
      expect(
        listed.some((l) => pattern.test(l)),
        `${route} is in ROUTES (with its scope)`,
      ).toBe(true);
    }
  });

  it('when a request has no credentials, then every route but /healthz and /readyz answers 401 with the challenge', async () => {
    for (const r of [...ROUTES, { method: 'GET', path: '/v1/no-such-route', scope: 'read' as Scope }]) {
      const reply = await send(us, r.method, r.path, { body: r.body });
      expect(reply.status, `${r.method} ${r.path}`).toBe(401);
      expect(reply.headers['www-authenticate'], `${r.method} ${r.path}`).toBe(CHALLENGE);
      expect(reply.body.error.code).toBe('unauthenticated');
    }
    expect((await send(us, 'GET', '/healthz')).status).toBe(200);
    expect((await send(us, 'GET', '/readyz')).status).toBe(200);
    // A malformed body from an anonymous client is not even parsed.
    const garbage = await send(us, 'PUT', '/v1/items/things/a', { rawBody: '{"not json' });
    expect(garbage.status).toBe(401);
  });

  it('when the credentials are not valid, then 401 with error="invalid_token" (Basic or empty: the plain challenge)', async () => {
    const unknown = generateApiKey();
    const wrongSecret = `hh_${admin.id}_${generateApiKey().secret}`;
    secrets.push(wrongSecret);
    for (const authorization of [
      'Bearer hh_short_secret',
      `Bearer ${unknown.token}`,
      `Bearer ${wrongSecret}`,
      'Bearer not-a-key',
      `Bearer ${admin.token}x`,
    ]) {
      const reply = await send(us, 'GET', '/v1/items/things', { authorization });
      expect(reply.status, authorization).toBe(401);
      expect(reply.headers['www-authenticate']).toBe(INVALID_TOKEN);
      expect(reply.body.error.code).toBe('unauthenticated');
      expect(reply.text).not.toContain(authorization.slice(7));
    }
    for (const authorization of [`Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer', '   ']) {
      const reply = await send(us, 'GET', '/v1/items/things', { authorization });
      expect(reply.status, authorization).toBe(401);
      expect(reply.headers['www-authenticate']).toBe(CHALLENGE);
    }
    // A key is per region database: one created only in eu does not open us.
    const euOnly = await createKey([t.databaseUrls.eu!], ['read']);
    secrets.push(euOnly.token);
    expect((await send(us, 'GET', '/v1/items/things', { token: euOnly.token })).status).toBe(401);
    expect((await send(eu, 'GET', '/v1/items/things', { token: euOnly.token })).status).toBe(200);
  });

  it('when a read key writes, then 403 insufficient_scope; it reads; a write key writes and reads; only admin sees status and metrics', async () => {
    const urls = Object.values(t.databaseUrls);
    const read = await createKey(urls, ['read']);
    const write = await createKey(urls, ['write']);
    secrets.push(read.token, write.token);
    expect(
      (await send(us, 'PUT', '/v1/items/things/r1', { token: admin.token, body: { v: 1 } })).status,
    ).toBe(201);

    expect((await send(us, 'GET', '/v1/items/things/r1', { token: read.token })).status).toBe(200);
    for (const r of ROUTES) {
      const reply = await send(us, r.method, r.path, { token: read.token, body: r.body });
      if (r.scope === 'read') {
        expect(reply.status, `${r.method} ${r.path}`).not.toBe(403);
        expect(reply.status, `${r.method} ${r.path}`).not.toBe(401);
      } else {
        expect(reply.status, `${r.method} ${r.path}`).toBe(403);
        expect(reply.headers['www-authenticate']).toBe(insufficient(r.scope));
        expect(reply.body.error.code).toBe('forbidden');
      }
    }

    const put = await send(us, 'PUT', '/v1/items/things/w1', { token: write.token, body: { v: 1 } });
    expect(put.status).toBe(201);
    expect((await send(us, 'GET', '/v1/items/things/w1', { token: write.token })).status).toBe(200);
    expect((await send(us, 'GET', '/v1/status', { token: write.token })).status).toBe(403);
    expect((await send(us, 'GET', '/metrics', { token: write.token })).status).toBe(403);

    const status = await send(us, 'GET', '/v1/status', { token: admin.token });
    expect(status.status).toBe(200);
    expect(status.body.region).toBe('us');
    const metrics = await send(us, 'GET', '/metrics', { token: admin.token });
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('hothot_http_requests_total');
  });

  it('when a key is limited to collections, then other collections answer 403 and conflicts are filtered to its own', async () => {
    const urls = Object.values(t.databaseUrls);
    const limited = await createKey(urls, ['read', 'write'], ['mine', 'counts']);
    secrets.push(limited.token);
    expect((await send(us, 'PUT', '/v1/items/mine/a', { token: limited.token, body: { v: 1 } })).status).toBe(
      201,
    );
    expect((await send(us, 'GET', '/v1/items/mine/a', { token: limited.token })).status).toBe(200);
    expect((await send(us, 'GET', '/v1/items/mine', { token: limited.token })).status).toBe(200);
    for (const [method, path, body] of [
      ['PUT', '/v1/items/theirs/a', { v: 1 }],
      ['GET', '/v1/items/theirs/a', undefined],
      ['GET', '/v1/items/theirs', undefined],
      ['GET', '/v1/items/theirs/a/history', undefined],
      ['DELETE', '/v1/items/theirs/a', undefined],
      ['GET', '/v1/conflicts?collection=theirs', undefined],
    ] as const) {
      const reply = await send(us, method, path, { token: limited.token, body });
      expect(reply.status, `${method} ${path}`).toBe(403);
      expect(reply.headers['www-authenticate']).toMatch(/^Bearer realm="hothot", error="insufficient_scope"/);
    }

    const pool = t.regions.us!.pool;
    const version = (region: string) => ({
      value: { v: region },
      hlc: { wall: 1, logical: 0, region },
      vv: { [region]: 1 },
      deleted: false,
    });
    for (const collection of ['mine', 'theirs'])
      await pool.query(
        `INSERT INTO conflict (collection, key, winner, loser, winner_origin, loser_origin, rule, event_id)
         VALUES ($1, 'k', $2, $3, 'us', 'eu', 'lww', $4)`,
        [collection, JSON.stringify(version('us')), JSON.stringify(version('eu')), `e-${collection}`],
      );
    const all = await send(us, 'GET', '/v1/conflicts', { token: admin.token });
    const collectionsOf = (r: Reply) =>
      (r.body.conflicts as { collection: string }[]).map((c) => c.collection);
    expect(collectionsOf(all).sort()).toEqual(['mine', 'theirs']);
    const own = await send(us, 'GET', '/v1/conflicts', { token: limited.token });
    expect(own.status).toBe(200);
    expect(collectionsOf(own)).toEqual(['mine']);
    expect((await send(us, 'GET', '/v1/conflicts?collection=mine', { token: limited.token })).status).toBe(
      200,
    );
  });

  it('when a key is revoked with `hothot keys revoke`, then it stops working within API_KEY_CACHE_MS', async () => {
    const created = await keysCli([
      'create',
      '--scopes',
      'read',
      '--name',
      'to revoke',
      '--json',
      '--database-url',
      t.databaseUrls.us!,
      '--database-url',
      t.databaseUrls.eu!,
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stderr).toContain('only time the key is shown');
    const key = JSON.parse(created.stdout) as { id: string; token: string; regions: string[] };
    secrets.push(key.token);
    expect(key.regions).toHaveLength(2);
    for (const base of [us, eu])
      expect((await send(base, 'GET', '/v1/items/things', { token: key.token })).status).toBe(200);

    const listed = await keysCli(['list', '--database-url', t.databaseUrls.us!]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${key.id}\\s+to revoke\\s+read\\s+\\*`));
    expect(listed.stdout).not.toContain(key.token.slice(20));

    // Freshly cached in both regions: the revocation has the whole cache time to wait out.
    for (const base of [us, eu])
      expect((await send(base, 'GET', '/v1/items/things', { token: key.token })).status).toBe(200);
    const revoked = await keysCli([
      'revoke',
      key.id,
      '--database-url',
      t.databaseUrls.us!,
      '--database-url',
      t.databaseUrls.eu!,
    ]);
    expect(revoked.code, revoked.stderr).toBe(0);
    const revokedAt = Date.now();
    // Each region process caches on its own: both must refuse it within the bound.
    const refusedAfter = await Promise.all(
      [us, eu].map((base) =>
        waitFor(
          'the revoked key to be refused',
          async () =>
            (await send(base, 'GET', '/v1/items/things', { token: key.token })).status === 401 &&
            Date.now() - revokedAt,
          { timeoutMs: 10_000, intervalMs: 20 },
        ),
      ),
    );
    console.log(
      `[auth] revoked key refused ${refusedAfter.join(' / ')} ms (us / eu) after revocation (API_KEY_CACHE_MS=${KEY_CACHE_MS})`,
    );
    for (const ms of refusedAfter) expect(ms).toBeLessThanOrEqual(KEY_CACHE_MS + 500);
    for (const base of [us, eu])
      expect((await send(base, 'GET', '/v1/items/things', { token: key.token })).status).toBe(401);
    const again = await keysCli(['revoke', key.id, '--database-url', t.databaseUrls.us!]);
    expect(again.stdout).toContain('was already revoked');
    expect((await keysCli(['revoke', 'aaaaaaaaaaaaaaaa', '--database-url', t.databaseUrls.us!])).code).toBe(
      1,
    );
  });

  it('when a JWT is presented, then a good one grants its scopes and an expired, foreign or unsigned one answers 401', async () => {
    const good = await jwt({ scope: 'read write' });
    expect((await send(us, 'PUT', '/v1/items/things/j1', { token: good, body: { v: 1 } })).status).toBe(201);
    expect((await send(us, 'GET', '/v1/items/things/j1', { token: good })).status).toBe(200);
    const noAdmin = await send(us, 'GET', '/v1/status', { token: good });
    expect(noAdmin.status).toBe(403);
    expect(noAdmin.headers['www-authenticate']).toBe(insufficient('admin'));
    expect((await send(us, 'GET', '/v1/status', { token: await jwt({ scope: ['admin'] }) })).status).toBe(
      200,
    );

    // Valid, but without a scope of ours: authenticated, allowed nothing.
    const noScope = await jwt({ scope: 'openid profile' });
    for (const r of ROUTES) {
      const reply = await send(us, r.method, r.path, { token: noScope, body: r.body });
      expect(reply.status, `${r.method} ${r.path}`).toBe(403);
      expect(reply.headers['www-authenticate']).toBe(insufficient(r.scope));
    }

    const limited = await jwt({ scope: 'read', hothot_collections: ['mine'] });
    expect((await send(us, 'GET', '/v1/items/mine', { token: limited })).status).toBe(200);
    expect((await send(us, 'GET', '/v1/items/things', { token: limited })).status).toBe(403);

    const now = Math.floor(Date.now() / 1000);
    const header = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'mallory', scope: 'read write admin', exp: now + 300 };
    const hsKey = new TextEncoder().encode(String(publicJwk.x));
    const invalid: Record<string, string> = {
      expired: await jwt({ scope: 'read' }, { exp: now - 60 }),
      'wrong issuer': await jwt({ scope: 'read' }, { iss: 'https://elsewhere' }),
      'wrong audience': await jwt({ scope: 'read' }, { aud: 'another-api' }),
      'another key, same kid': await jwt({ scope: 'read' }, { key: otherKey }),
      'unknown kid': await jwt({ scope: 'read' }, { key: otherKey, kid: 'k2' }),
      'not yet valid': await jwt({ scope: 'read' }, { nbf: now + 600 }),
      'alg none': `${header({ alg: 'none' })}.${header(claims)}.`,
      'HS256 with the public key as secret': await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
        .sign(hsKey),
      'no exp': await new SignJWT({ scope: 'read' })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .sign(signingKey),
      tampered: (() => {
        const [h, , s] = good.split('.');
        return `${h}.${header({ ...claims, sub: 'alice' })}.${s}`;
      })(),
    };
    for (const [what, token] of Object.entries(invalid)) {
      secrets.push(token);
      const reply = await send(us, 'GET', '/v1/items/things', { token });
      expect(reply.status, what).toBe(401);
      expect(reply.headers['www-authenticate'], what).toBe(INVALID_TOKEN);
      expect(reply.text, what).not.toContain(token.split('.')[2] || token);
    }
  });

  it('when a session token is forged or altered, then 400 invalid_session; a genuine one reads your write in the other region', async () => {
    // eu consumes us's topic (its heartbeats arrive): from then on a session read waits a replication lag.
    await waitFor('eu to hear from us', async () => {
      const status = await send(eu, 'GET', '/v1/status', { token: admin.token });
      return (status.body.peers as { region: string; state: string }[]).some(
        (p) => p.region === 'us' && p.state === 'up',
      );
    });
    const w = await send(us, 'PUT', '/v1/items/things/s1', { token: admin.token, body: { n: 1 } });
    expect(w.status).toBe(201);
    const token = w.headers['hothot-session'] as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const r = await send(eu, 'GET', '/v1/items/things/s1', {
      token: admin.token,
      headers: { 'hothot-session': token },
    });
    expect(r.status).toBe(200);
    expect(r.body.value).toEqual({ n: 1 });

    const [payload, mac] = token.split('.') as [string, string];
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString()) as {
      v: number;
      o: Record<string, number>;
    };
    expect(decoded.o.us).toBeGreaterThan(0);
    const future = Buffer.from(JSON.stringify({ v: 1, o: { us: Date.now() + 3_600_000 } })).toString(
      'base64url',
    );
    const forged: Record<string, string> = {
      'future watermark, old MAC': `${future}.${mac}`,
      'MAC under another key': `${future}.${createHmac('sha256', randomBytes(32)).update(future).digest('base64url')}`,
      'unsigned (the old format)': future,
      'MAC cut short': `${payload}.${mac.slice(0, 20)}`,
    };
    for (const [what, bad] of Object.entries(forged)) {
      const started = Date.now();
      const reply = await send(eu, 'GET', '/v1/items/things/s1', {
        token: admin.token,
        headers: { 'hothot-session': bad },
      });
      expect(reply.status, what).toBe(400);
      expect(reply.body.error.code, what).toBe('invalid_session');
      expect(Date.now() - started, `${what}: answered at once, no wait`).toBeLessThan(1000);
    }
  });

  it('when everything above has run, then no secret appears in a log line, /v1/status or an error body', async () => {
    const status = await send(us, 'GET', '/v1/status', { token: admin.token });
    const bad = await send(us, 'GET', '/v1/items/things', { token: `${admin.token.slice(0, -1)}A` });
    const haystacks = { logs: t.logs.join('\n'), status: status.text, error: bad.text };
    expect(t.logs.length).toBeGreaterThan(10);
    // The access log saw 401s and 403s (they are logged at info), so requests with credentials were logged.
    expect(haystacks.logs).toContain('"statusCode":401');
    // …and they name who (a key id, a JWT subject), never with what.
    expect(haystacks.logs).toMatch(/"principal":"api-key:[a-z2-7]{16}"/);
    expect(haystacks.logs).toContain('"principal":"jwt:alice"');
    for (const [where, text] of Object.entries(haystacks)) {
      for (const secret of secrets) {
        for (const fragment of [secret, ...secret.split(/[._]/).filter((f) => f.length >= 24)])
          expect(text.includes(fragment), `${where} contains a secret (${secret.slice(0, 6)}…)`).toBe(false);
      }
    }
  });
});

describe('JWKS from a URL', () => {
  it('when JWT_JWKS_URL is set, then tokens verify against the keys it serves, fetched once', async () => {
    const pair = await generateKeyPair('RS256');
    const jwks = JSON.stringify({
      keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'r1', alg: 'RS256' }],
    });
    let fetches = 0;
    const server = http.createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(jwks);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const t = await startRegions(['ap'], {
      ROLES: 'api',
      HEARTBEAT_INTERVAL_MS: '0',
      SESSION_TOKEN_KEYS: randomBytes(32).toString('base64url'),
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      JWT_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    });
    try {
      const url = t.regions.ap!.url;
      const sign = (claims: Record<string, unknown>) =>
        new SignJWT(claims)
          .setProtectedHeader({ alg: 'RS256', kid: 'r1' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .sign(pair.privateKey);
      for (let i = 0; i < 3; i++)
        expect(
          (await send(url, 'GET', '/v1/items/things', { token: await sign({ scope: 'read', i }) })).status,
        ).toBe(200);
      expect(fetches).toBe(1);
      expect(
        (await send(url, 'PUT', '/v1/items/things/a', { token: await sign({ scope: 'read' }), body: {} }))
          .status,
      ).toBe(403);
    } finally {
      await t.stop();
      server.close();
    }
  });
});

describe('SECURITY_MODE=insecure-dev', () => {
  it('when a region runs insecure-dev, then it says so once, loudly, and serves without credentials', async () => {
    const t = await startRegions(
      ['ap'],
      { ROLES: 'api', HEARTBEAT_INTERVAL_MS: '0', SESSION_TOKEN_KEYS: '' },
      (env) => loadConfig({ ...env, SECURITY_MODE: 'insecure-dev' }),
    );
    try {
      const url = t.regions.ap!.url;
      const warnings = t.logs
        .map((l) => JSON.parse(l) as { level: number; msg: string })
        .filter((l) => l.msg.includes('the API accepts requests without credentials'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe(40);
      expect(warnings[0]!.msg).toContain('SECURITY_MODE=insecure-dev');
      expect(warnings[0]!.msg).toContain('public development key');
      const put = await send(url, 'PUT', '/v1/items/things/a', { body: { v: 1 } });
      expect(put.status).toBe(201);
      const token = put.headers['hothot-session'] as string;
      expect(token).toMatch(/\.[A-Za-z0-9_-]{43}$/);
      expect(
        (await send(url, 'GET', '/v1/items/things/a', { headers: { 'hothot-session': token } })).status,
      ).toBe(200);
      expect((await send(url, 'GET', '/v1/status')).status).toBe(200);
    } finally {
      await t.stop();
    }
  });
});

describe('BOOTSTRAP_ADMIN_KEY_FILE', () => {
  it('when a region starts with a bootstrap key file, then that key is an admin key; revoked, it stays revoked; another key of the same id is never taken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hothot-bootstrap-'));
    const key = generateApiKey();
    const file = join(dir, 'admin-key');
    writeFileSync(file, `${key.token}\n`, { mode: 0o600 });
    // No SECURITY_MODE: on by default.
    const t = await startRegions(
      ['ap'],
      { ROLES: 'api', HEARTBEAT_INTERVAL_MS: '0', BOOTSTRAP_ADMIN_KEY_FILE: file },
      (env) => loadConfig(env),
    );
    const pool = new pg.Pool({ connectionString: t.databaseUrls.ap!, max: 1 });
    try {
      const url = t.regions.ap!.url;
      expect((await send(url, 'GET', '/v1/status')).status).toBe(401);
      expect((await send(url, 'GET', '/v1/status', { token: key.token })).status).toBe(200);
      expect((await send(url, 'PUT', '/v1/items/boot/a', { token: key.token, body: { v: 1 } })).status).toBe(
        201,
      );
      const listed = await keysCli(['list', '--database-url', t.databaseUrls.ap!]);
      expect(listed.stdout).toMatch(new RegExp(`${key.id}\\s+bootstrap admin\\s+read,write,admin`));

      // A restart with the same file finds it present; once revoked, a restart leaves it revoked.
      const silent = testLogger('bootstrap');
      expect(await bootstrapAdminKey(pool, file, silent)).toBe('present');
      expect((await keysCli(['revoke', key.id, '--database-url', t.databaseUrls.ap!])).code).toBe(0);
      expect(await bootstrapAdminKey(pool, file, silent)).toBe('revoked');
      await waitFor(
        'the revoked bootstrap key to stop working',
        async () => (await send(url, 'GET', '/v1/status', { token: key.token })).status === 401 || undefined,
      );

      // A file whose token has an existing id but another secret: refused, the stored key untouched.
      const impostor = `hh_${key.id}_${generateApiKey().secret}`;
      writeFileSync(file, impostor);
      expect(await bootstrapAdminKey(pool, file, silent)).toBe('mismatch');
      writeFileSync(file, 'not a key');
      await expect(bootstrapAdminKey(pool, file, silent)).rejects.toThrow(
        /BOOTSTRAP_ADMIN_KEY_FILE: .* does not hold a hothot API key/,
      );
      await expect(bootstrapAdminKey(pool, join(dir, 'missing'), silent)).rejects.toThrow(/ENOENT/);
      for (const line of t.logs) expect(line).not.toContain(key.secret);
    } finally {
      await pool.end();
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
