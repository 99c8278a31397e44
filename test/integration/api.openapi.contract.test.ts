/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-return -- the document and bodies are probed loosely */
/**
 * The OpenAPI document against the API it describes (issue 14). Two in-process regions with
 * SECURITY_MODE=on; requests go out over node:http, so exactly the headers written here are sent.
 *
 * - `/openapi.json` is served without credentials and validates as OpenAPI 3.1
 *   (@seriousme/openapi-schema-validator);
 * - every operation of the document is called, with success and error cases, and every answer —
 *   status, content type, body (ajv, JSON Schema 2020-12, the document's own schemas) and the
 *   documented headers — must be one the document lists for that operation;
 * - the operations called are exactly the document's, and the document's are exactly the routes the
 *   Express app registers: neither can drift from the other.
 */
import http from 'node:http';
import pg from 'pg';
import { Registry } from 'prom-client';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../../services/api/app.js';
import { insertApiKey } from '../../shared/db/queries/apiKey.js';
import { generateApiKey, type NewApiKey, type Scope } from '../../shared/security/apiKey.js';
import { testAdminKey, testLogger, waitFor } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv2020,
) => Ajv2020;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any;
}

interface Send {
  token?: string | null;
  body?: unknown;
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
  const headers: Record<string, string> = {};
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  const token = options.token === undefined ? testAdminKey() : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  Object.assign(headers, options.headers);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = text === '' ? null : JSON.parse(text);
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

async function createKey(
  urls: readonly string[],
  scopes: readonly Scope[],
  collections: string[] | null = null,
) {
  const key: NewApiKey = generateApiKey();
  for (const url of urls) {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      await insertApiKey(pool, {
        id: key.id,
        secretHash: key.secretHash,
        scopes,
        collections,
        name: 'contract',
      });
    } finally {
      await pool.end();
    }
  }
  return key.token;
}

const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;
const MESSAGE_MAX_BYTES = 4096;
const MAX_BODY_BYTES = 16_384;

/** The routes an Express app registers, as `METHOD /path/{param}`. */
function appRoutes(app: any): Set<string> {
  const out = new Set<string>();
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        const path = String(layer.route.path).replace(/:(\w+)/g, '{$1}');
        for (const [method, on] of Object.entries(layer.route.methods as Record<string, boolean>))
          if (on && method !== '_all') out.add(`${method.toUpperCase()} ${path}`);
      } else if (Array.isArray(layer.handle?.stack)) {
        walk(layer.handle.stack);
      }
    }
  };
  walk(app.router.stack);
  return out;
}

let t: TestRegions;
let us: string;
let eu: string;
let doc: any;
let readKey: string;
let cartsOnlyKey: string;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const validators = new Map<object, ReturnType<typeof ajv.compile>>();
/** `METHOD /template` of every operation called, and the statuses seen per operation. */
const exercised = new Map<string, Set<number>>();
let checked = 0;

const test = regionsTest(() =>
  startTestRegions(['us', 'eu'], {
    SECURITY_MODE: 'on',
    COLLECTION_POLICIES: 'carts=fields,likes=counter',
    MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    KAFKA_MESSAGE_MAX_BYTES: String(MESSAGE_MAX_BYTES),
    HISTORY_MAX_VERSIONS: '20',
  }),
);

describe('the OpenAPI document', () => {
  test.beforeAll(async ({ regions }) => {
    t = regions;
    us = t.regions.us!.url;
    eu = t.regions.eu!.url;
    const urls = Object.values(t.databaseUrls);
    readKey = await createKey(urls, ['read']);
    cartsOnlyKey = await createKey(urls, ['write'], ['carts']);
  }, REGIONS_START_MS);

  function resolve(node: any): any {
    while (node !== undefined && typeof node.$ref === 'string') {
      node = (node.$ref as string)
        .slice(2)
        .split('/')
        .reduce((n: any, part: string) => n?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    }
    return node;
  }

  function validate(schema: object, value: unknown): string[] {
    let v = validators.get(schema);
    if (v === undefined) {
      // The schema with the document's components beside it: its #/components/… refs resolve.
      v = ajv.compile({ ...schema, components: doc.components });
      validators.set(schema, v);
    }
    return v(value)
      ? []
      : (v.errors ?? []).map(
          (e: ErrorObject) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`,
        );
  }

  /** The document's template for a concrete path. */
  function templateOf(path: string): string | undefined {
    const pathname = path.split('?')[0]!;
    const matches = Object.keys(doc.paths).filter((template) =>
      new RegExp(`^${template.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/]+')}$`).test(pathname),
    );
    expect(matches.length, `${pathname} matches ${matches.join(', ')}`).toBeLessThanOrEqual(1);
    return matches[0];
  }

  /** Check a reply against the document: the status, content type, body and headers it lists. */
  function conform(method: string, path: string, reply: Reply): void {
    const template = templateOf(path);
    const what = `${method} ${path} → ${reply.status} ${reply.text.slice(0, 300)}`;
    if (template === undefined || doc.paths[template][method.toLowerCase()] === undefined) {
      // Not an operation (an unknown path, or a method the path does not have): the 404 of an
      // unknown route, in the document's error shape.
      expect(reply.status, what).toBe(404);
      expect(validate(doc.components.schemas.Error, reply.body), what).toEqual([]);
      expect(reply.body.error.code).toBe('route_not_found');
      return;
    }
    const operation = doc.paths[template][method.toLowerCase()];
    const id = `${method} ${template}`;
    if (!exercised.has(id)) exercised.set(id, new Set());
    exercised.get(id)!.add(reply.status);
    const response = resolve(operation.responses[String(reply.status)] ?? operation.responses.default);
    expect(response, `${what}: the status is documented`).toBeDefined();
    const contentType = String(reply.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (response.content === undefined) {
      expect(reply.text, `${what}: no body`).toBe('');
    } else {
      const media = response.content[contentType];
      expect(
        media,
        `${what}: content type ${contentType} is documented (${Object.keys(response.content).join(', ')})`,
      ).toBeDefined();
      if (contentType === 'application/json') expect(validate(media.schema, reply.body), what).toEqual([]);
    }
    for (const [name, ref] of Object.entries(response.headers ?? {})) {
      const header = resolve(ref);
      const value = reply.headers[name.toLowerCase()];
      if (header.required === true) expect(value, `${what}: header ${name}`).toBeDefined();
      if (value !== undefined) expect(validate(header.schema, value), `${what}: header ${name}`).toEqual([]);
    }
    checked += 1;
  }

  /** Send, check against the document, and expect this status. */
  async function call(
    base: string,
    method: string,
    path: string,
    status: number,
    options: Send = {},
  ): Promise<Reply> {
    const reply = await send(base, method, path, options);
    expect(reply.status, `${method} ${path}: ${reply.text.slice(0, 300)}`).toBe(status);
    conform(method, path, reply);
    return reply;
  }

  it('when fetched without credentials, then /openapi.json validates as OpenAPI 3.1', async () => {
    const reply = await send(us, 'GET', '/openapi.json', { token: null });
    expect(reply.status).toBe(200);
    doc = reply.body;
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    conform('GET', '/openapi.json', reply);
    const operations = Object.values(doc.paths).reduce(
      (n: number, item: any) => n + METHODS.filter((m) => item[m] !== undefined).length,
      0,
    );
    console.log(
      `openapi.json: ${reply.text.length} bytes, ${Object.keys(doc.paths).length} paths, ${operations} operations`,
    );
    expect(operations).toBeGreaterThanOrEqual(15);
  });

  it('when the reference page is loaded, then it and its files come from the region, nothing from elsewhere', async () => {
    const page = await call(us, 'GET', '/docs', 200, { token: null });
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'/);
    const sources = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThanOrEqual(3);
    for (const src of sources) {
      expect(src, 'a local path').toMatch(/^\/(docs\/|openapi\.json)/);
      if (src.startsWith('/docs/')) await call(us, 'GET', src, 200, { token: null });
    }
    const init = await send(us, 'GET', '/docs/init.js', { token: null });
    expect(init.text).toContain("url: '/openapi.json'");
    expect(init.text).toContain('validatorUrl: null');
    await call(us, 'GET', '/docs/init.js', 200, { token: null });
    await call(us, 'GET', '/docs/favicon-32x32.png', 200, { token: null });
    await call(us, 'GET', '/docs/secrets.txt', 404, { token: null });
  });

  it('when every operation is called with good and bad requests, then every answer is one the document lists', async () => {
    // Probes: open.
    await call(us, 'GET', '/healthz', 200, { token: null });
    await call(us, 'GET', '/readyz', 200, { token: null });

    // Authentication and scopes: 401 without or with a bad credential, 403 with too small a scope.
    await call(us, 'GET', '/v1/items/people/ada', 401, { token: null });
    await call(us, 'PUT', '/v1/items/people/ada', 401, { token: 'hh_nope', body: { a: 1 } });
    await call(us, 'PUT', '/v1/items/people/ada', 403, { token: readKey, body: { a: 1 } });
    await call(us, 'PUT', '/v1/items/people/ada', 403, { token: cartsOnlyKey, body: { a: 1 } });
    await call(us, 'GET', '/v1/status', 403, { token: readKey });
    await call(us, 'GET', '/v1/status', 401, { token: null });
    await call(us, 'GET', '/metrics', 403, { token: readKey });
    await call(us, 'GET', '/metrics', 401, { token: null });
    await call(us, 'GET', '/v1/conflicts?collection=people', 403, { token: cartsOnlyKey });
    await call(us, 'GET', '/v1/conflicts', 401, { token: null });

    // PUT: create, replace, conditions, bad input, sizes, media type.
    const created = await call(us, 'PUT', '/v1/items/people/ada', 201, { body: { name: 'Ada', born: 1815 } });
    const etag = String(created.headers.etag);
    const session = String(created.headers['hothot-session']);
    await call(us, 'PUT', '/v1/items/people/ada', 200, {
      body: { name: 'Ada Lovelace', born: 1815 },
      headers: { 'if-match': etag },
    });
    await call(us, 'PUT', '/v1/items/people/ada', 412, { body: { a: 1 }, headers: { 'if-match': etag } });
    await call(us, 'PUT', '/v1/items/people/ada', 412, { body: { a: 1 }, headers: { 'if-none-match': '*' } });
    await call(us, 'PUT', '/v1/items/people/ada', 400, { body: { a: 1 }, headers: { 'if-match': 'nope' } });
    await call(us, 'PUT', '/v1/items/people/ada', 400, { rawBody: '{"name":' });
    await call(us, 'PUT', '/v1/items/people/ada', 400, { rawBody: 'null' });
    await call(us, 'PUT', '/v1/items/bad!collection/ada', 400, { body: { a: 1 } });
    await call(us, 'PUT', `/v1/items/people/${'k'.repeat(600)}`, 400, { body: { a: 1 } });
    await call(us, 'PUT', '/v1/items/people/ada', 400, {
      body: { a: 1 },
      headers: { 'hothot-session': 'forged.token' },
    });
    await call(us, 'PUT', '/v1/items/people/ada', 415, {
      rawBody: 'name=Ada',
      headers: { 'content-type': 'text/plain' },
    });
    await call(us, 'PUT', '/v1/items/people/big', 413, {
      rawBody: JSON.stringify({ s: 'x'.repeat(MAX_BODY_BYTES) }),
    });
    await call(us, 'PUT', '/v1/items/people/big', 413, { body: { s: 'x'.repeat(MESSAGE_MAX_BYTES + 100) } });
    await call(us, 'PUT', '/v1/items/likes/one', 409, { body: { n: 1 } });
    await call(us, 'PUT', '/v1/items/carts/c1', 201, { token: cartsOnlyKey, body: { apples: 1 } });
    await call(us, 'PUT', '/v1/items/carts/c1', 400, { body: [1, 2] });

    // PATCH.
    await call(us, 'PATCH', '/v1/items/carts/c1', 200, { body: { pears: 2 } });
    await call(us, 'PATCH', '/v1/items/people/ada', 200, { body: { born: 1816 } });
    await call(us, 'PATCH', '/v1/items/people/ada', 412, {
      body: { born: 1 },
      headers: { 'if-match': etag },
    });
    await call(us, 'PATCH', '/v1/items/people/ada', 400, { body: [1] });
    await call(us, 'PATCH', '/v1/items/likes/one', 409, { body: { n: 1 } });

    // Increment.
    await call(us, 'POST', '/v1/items/likes/one/increment', 201, { body: { field: 'n', by: 2 } });
    await call(us, 'POST', '/v1/items/likes/one/increment', 200, { body: { field: 'n', by: -1 } });
    await call(us, 'POST', '/v1/items/likes/one/increment', 400, { body: { field: 'n', by: 1.5 } });
    await call(us, 'POST', '/v1/items/likes/one/increment', 400, {
      body: { field: 'n', by: 1, extra: true },
    });
    await call(us, 'POST', '/v1/items/people/ada/increment', 409, { body: { field: 'n', by: 1 } });
    await call(us, 'POST', '/v1/items/likes/one/increment', 403, {
      token: readKey,
      body: { field: 'n', by: 1 },
    });

    // GET one item, with a session token in the other region, conditional, missing.
    // eu may still be joining its consumer group: 503 session_not_caught_up (documented) until it applied.
    const read = await waitFor('eu to serve the session read', async () => {
      const r = await send(eu, 'GET', '/v1/items/people/ada', { headers: { 'hothot-session': session } });
      conform('GET', '/v1/items/people/ada', r);
      return r.status === 200 ? r : undefined;
    });
    expect(read.body.origin).toBe('us');
    await call(us, 'GET', '/v1/items/people/ada', 304, {
      headers: { 'if-none-match': String(read.headers.etag) },
    });
    await call(us, 'GET', '/v1/items/people/nobody', 404, { token: readKey });
    await call(us, 'GET', '/v1/items/people/ada', 400, { headers: { 'if-none-match': 'W/nope' } });
    await call(us, 'GET', '/v1/items/people/ada', 400, { headers: { 'hothot-session': 'x.y' } });

    // History.
    await call(us, 'GET', '/v1/items/people/ada/history', 200, { token: readKey });
    await call(us, 'GET', '/v1/items/people/ada/history?limit=1', 200);
    await call(us, 'GET', '/v1/items/people/ada/history?limit=21', 400);
    await call(us, 'GET', '/v1/items/people/nobody/history', 404);

    // Listings.
    const page = await call(us, 'GET', '/v1/items/people?limit=1', 200);
    expect(page.body.next).toBe('ada');
    await call(us, 'GET', '/v1/items/people?after=ada', 200);
    await call(us, 'GET', '/v1/items/people?limit=0', 400);
    await call(us, 'GET', '/v1/items/people?after=a&after=b', 400);
    await call(us, 'GET', '/v1/items/bad!collection', 400);

    // DELETE.
    await call(us, 'DELETE', '/v1/items/people/ada', 412, { headers: { 'if-match': etag } });
    await call(us, 'DELETE', '/v1/items/people/ada', 204);
    await call(us, 'DELETE', '/v1/items/people/ada', 404);
    await call(us, 'DELETE', '/v1/items/likes/one', 409);

    // Conflicts: concurrent writes to one key in both regions until one is recorded.
    for (let i = 0; ; i += 1) {
      const key = `both-${i}`;
      await Promise.all([
        send(us, 'PUT', `/v1/items/people/${key}`, { body: { by: 'us' } }),
        send(eu, 'PUT', `/v1/items/people/${key}`, { body: { by: 'eu' } }),
      ]);
      const seen = await waitFor(
        `a conflict on people/${key}`,
        async () => {
          for (const base of [us, eu]) {
            const r = await send(base, 'GET', `/v1/conflicts?key=${key}`);
            if (r.body?.conflicts?.length > 0) return base;
          }
          return undefined;
        },
        { timeoutMs: 10_000 },
      ).catch(() => undefined);
      if (seen !== undefined) {
        await call(seen, 'GET', `/v1/conflicts?key=${key}`, 200, { token: readKey });
        await call(seen, 'GET', '/v1/conflicts?collection=people&limit=1', 200);
        break;
      }
      expect(i, 'a conflict within 5 tries').toBeLessThan(5);
    }
    await call(us, 'GET', '/v1/conflicts?since=yesterday', 400);
    await call(us, 'GET', '/v1/conflicts?limit=1001', 400);
    await call(us, 'GET', '/v1/conflicts?after=x', 400);

    // Operations.
    await call(us, 'GET', '/v1/status', 200);
    await call(eu, 'GET', '/v1/status', 200);
    await call(us, 'GET', '/metrics', 200);
    await call(us, 'GET', '/v1/digest', 200);
    await call(us, 'GET', '/v1/digest?bucket=0', 200);
    await call(us, 'GET', '/v1/digest?bucket=99999', 400);
    await call(us, 'GET', '/v1/digest', 403, { token: readKey });

    // Unknown paths: the documented error shape.
    await call(us, 'GET', '/v2/nothing', 404);
    await call(us, 'POST', '/v1/items/people', 404, { body: { a: 1 } });
  });

  it('when everything was called, then every operation of the document was exercised and the app serves exactly those', () => {
    const documented = new Set<string>();
    for (const [template, item] of Object.entries(doc.paths as Record<string, any>))
      for (const m of METHODS) if (item[m] !== undefined) documented.add(`${m.toUpperCase()} ${template}`);
    expect([...exercised.keys()].sort()).toEqual([...documented].sort());

    const app = createApp({
      log: testLogger('contract'),
      metrics: new Registry(),
      auth: {},
      maxBodyBytes: 1024,
      historyMaxVersions: 20,
      sessionKeys: [Buffer.alloc(32)],
      region: 'us',
    } as unknown as AppDeps);
    expect([...appRoutes(app)].sort()).toEqual([...documented].sort());

    const statuses = [...exercised.values()].reduce((n, s) => n + s.size, 0);
    console.log(
      `contract: ${checked} answers checked against the document, ${exercised.size} operations, ${statuses} operation × status pairs`,
    );
    expect(checked).toBeGreaterThanOrEqual(70);
    expect(statuses).toBeGreaterThanOrEqual(45);
  });
});
