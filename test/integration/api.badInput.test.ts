import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const validationTest = regionsTest(() =>
  startTestRegions(['us'], { MAX_BODY_BYTES: '1024', HEARTBEAT_INTERVAL_MS: '0' }),
);

describe('API input validation', () => {
  let t: TestRegions;
  let base: string;
  let db: pg.Pool;

  validationTest.beforeAll(({ regions }) => {
    t = regions;
    base = t.regions.us!.url;
    db = new pg.Pool({ connectionString: t.databaseUrls.us });
  }, REGIONS_START_MS);
  afterAll(async () => {
    await db?.end();
  });

  /** What a write would change: every item row, and the outbox sequence (the relay empties the table itself). */
  async function rowCounts(): Promise<{ items: string; outboxSeq: string }> {
    const r = await db.query<{ items: string | null; outboxSeq: string }>(
      `SELECT (SELECT md5(string_agg(i::text, '|' ORDER BY collection, key)) FROM item i) AS items,
              (SELECT last_value::text || ':' || is_called::text FROM outbox_id_seq) AS "outboxSeq"`,
    );
    return { items: r.rows[0]!.items ?? '', outboxSeq: r.rows[0]!.outboxSeq };
  }

  const put = (
    path: string,
    body: string,
    headers: Record<string, string> = { 'content-type': 'application/json' },
  ) => fetch(`${base}${path}`, { method: 'PUT', body, headers });

  const cases: { name: string; send: () => Promise<Response>; status: number; code: string }[] = [
    {
      name: 'malformed JSON',
      send: () => put('/v1/items/c/k', '{"a":'),
      status: 400,
      code: 'malformed_json',
    },
    {
      name: 'an empty JSON body (body-parser would read it as {})',
      send: () => put('/v1/items/c/k', ''),
      status: 400,
      code: 'invalid_value',
    },
    {
      name: 'a body that is not valid UTF-8',
      send: () =>
        fetch(`${base}/v1/items/c/k`, {
          method: 'PUT',
          body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
          headers: { 'content-type': 'application/json' },
        }),
      status: 400,
      code: 'malformed_json',
    },
    {
      name: 'a text/plain body',
      send: () => put('/v1/items/c/k', 'hello', { 'content-type': 'text/plain' }),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'no content type',
      send: () => put('/v1/items/c/k', '{"a":1}', {}),
      status: 415,
      code: 'unsupported_media_type',
    },
    {
      name: 'an oversized body',
      send: () => put('/v1/items/c/k', JSON.stringify({ a: 'x'.repeat(2000) })),
      status: 413,
      code: 'body_too_large',
    },
    { name: 'a null value', send: () => put('/v1/items/c/k', 'null'), status: 400, code: 'invalid_value' },
    {
      name: 'a NUL character in the value',
      send: () => put('/v1/items/c/k', '{"a":"x\\u0000y"}'),
      status: 400,
      code: 'invalid_value',
    },
    {
      name: 'a lone surrogate in the value',
      send: () => put('/v1/items/c/k', '{"a":"\\ud800"}'),
      status: 400,
      code: 'invalid_value',
    },
    {
      name: 'an invalid collection',
      send: () => put('/v1/items/bad$coll/k', '{"a":1}'),
      status: 400,
      code: 'invalid_collection',
    },
    {
      name: 'a key that is too long',
      send: () => put(`/v1/items/c/${'k'.repeat(600)}`, '{"a":1}'),
      status: 400,
      code: 'invalid_key',
    },
    {
      name: 'a key with a control character',
      send: () => put('/v1/items/c/a%01b', '{"a":1}'),
      status: 400,
      code: 'invalid_key',
    },
    {
      name: 'a key with an encoded slash',
      send: () => put('/v1/items/c/a%2Fb', '{"a":1}'),
      status: 400,
      code: 'invalid_key',
    },
    {
      name: 'a malformed If-Match',
      send: () =>
        put('/v1/items/c/k', '{"a":1}', { 'content-type': 'application/json', 'if-match': 'nonsense' }),
      status: 400,
      code: 'invalid_precondition',
    },
    {
      name: 'a bad list limit',
      send: () => fetch(`${base}/v1/items/c?limit=0`),
      status: 400,
      code: 'invalid_query',
    },
    {
      name: 'a list limit that is not a number',
      send: () => fetch(`${base}/v1/items/c?limit=ten`),
      status: 400,
      code: 'invalid_query',
    },
    {
      name: 'a bad conflicts since',
      send: () => fetch(`${base}/v1/conflicts?since=yesterday`),
      status: 400,
      code: 'invalid_query',
    },
    {
      name: 'an unknown route',
      send: () => fetch(`${base}/v1/nothing`),
      status: 404,
      code: 'route_not_found',
    },
  ];

  for (const c of cases) {
    it(`when the request has ${c.name}, then it gets ${c.status} ${c.code} and nothing is written`, async () => {
      const before = await rowCounts();
      const res = await c.send();
      expect(res.status).toBe(c.status);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(c.code);
      expect(body.error.message.length).toBeGreaterThan(10);
      expect(await rowCounts()).toEqual(before);
    });
  }

  it('when If-Match names a stale ETag, then 412 and the item is unchanged', async () => {
    const first = await put('/v1/items/cond/k', '{"n":1}');
    expect(first.status).toBe(201);
    const staleEtag = first.headers.get('etag')!;
    const second = await put('/v1/items/cond/k', '{"n":2}', {
      'content-type': 'application/json',
      'if-match': staleEtag,
    });
    expect(second.status).toBe(200);
    const currentEtag = second.headers.get('etag')!;
    expect(currentEtag).not.toBe(staleEtag);

    const before = await rowCounts();
    const rejected = await put('/v1/items/cond/k', '{"n":3}', {
      'content-type': 'application/json',
      'if-match': staleEtag,
    });
    expect(rejected.status).toBe(412);
    expect(((await rejected.json()) as { error: { code: string; currentEtag: string } }).error).toMatchObject(
      {
        code: 'precondition_failed',
        currentEtag,
      },
    );
    expect(await rowCounts()).toEqual(before);
    const read = await fetch(`${base}/v1/items/cond/k`);
    expect(read.headers.get('etag')).toBe(currentEtag);
    expect(((await read.json()) as { value: unknown }).value).toEqual({ n: 2 });

    const delRejected = await fetch(`${base}/v1/items/cond/k`, {
      method: 'DELETE',
      headers: { 'if-match': staleEtag },
    });
    expect(delRejected.status).toBe(412);
    expect((await fetch(`${base}/v1/items/cond/k`)).status).toBe(200);
  });

  it('when If-None-Match: * is sent for an existing item, then 412; for a new one, then 201', async () => {
    const h = { 'content-type': 'application/json', 'if-none-match': '*' };
    expect((await put('/v1/items/inm/k', '{"v":1}', h)).status).toBe(201);
    expect((await put('/v1/items/inm/k', '{"v":2}', h)).status).toBe(412);
    expect(((await (await fetch(`${base}/v1/items/inm/k`)).json()) as { value: unknown }).value).toEqual({
      v: 1,
    });
  });

  it('when an item is deleted, then GET is 404, it is not listed, and a second DELETE is 404', async () => {
    expect((await put('/v1/items/del/a', '{"v":1}')).status).toBe(201);
    expect((await put('/v1/items/del/b', '{"v":2}')).status).toBe(201);
    expect((await fetch(`${base}/v1/items/del/a`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${base}/v1/items/del/a`)).status).toBe(404);
    expect((await fetch(`${base}/v1/items/del/a`, { method: 'DELETE' })).status).toBe(404);
    const list = (await (await fetch(`${base}/v1/items/del`)).json()) as { items: { key: string }[] };
    expect(list.items.map((i) => i.key)).toEqual(['b']);
    // Re-creating a deleted item is allowed, and If-None-Match: * treats a tombstone as absent.
    const again = await put('/v1/items/del/a', '{"v":3}', {
      'content-type': 'application/json',
      'if-none-match': '*',
    });
    expect(again.status).toBe(201);
  });

  it('when a collection is listed page by page, then every live item appears once in key order', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    for (const k of keys) expect((await put(`/v1/items/page/${k}`, JSON.stringify({ k }))).status).toBe(201);
    const seen: string[] = [];
    let after: string | null = '';
    while (after !== null) {
      const res = await fetch(`${base}/v1/items/page?limit=10${after ? `&after=${after}` : ''}`);
      const body = (await res.json()) as { items: { key: string }[]; next: string | null };
      seen.push(...body.items.map((i) => i.key));
      after = body.next;
    }
    expect(seen).toEqual(keys);
  });
});

const limitsTest = regionsTest(() =>
  startTestRegions(['us'], {
    HEARTBEAT_INTERVAL_MS: '0',
    COLLECTION_POLICIES: 'lcarts=fields,llikes=counter',
    // Input validation, not authentication: every request is let in.
    SECURITY_MODE: 'insecure-dev',
  }),
);

describe('API limits on values, and __proto__ / constructor members', () => {
  let t: TestRegions;
  let base: string;
  let db: pg.Pool;

  limitsTest.beforeAll(({ regions }) => {
    // The default body limit (1 MiB): the values below are refused by their shape, not their size.
    t = regions;
    base = t.regions.us!.url;
    db = new pg.Pool({ connectionString: t.databaseUrls.us });
  }, REGIONS_START_MS);
  afterAll(async () => {
    await db?.end();
  });

  async function stored(): Promise<string> {
    const r = await db.query<{ items: string | null; seq: string }>(
      `SELECT (SELECT md5(string_agg(i::text, '|' ORDER BY collection, key)) FROM item i) AS items,
              (SELECT last_value::text || ':' || is_called::text FROM outbox_id_seq) AS seq`,
    );
    return `${r.rows[0]!.items ?? ''}/${r.rows[0]!.seq}`;
  }

  const send = (
    method: string,
    path: string,
    body: string | Uint8Array,
    headers: Record<string, string> = {},
  ) => fetch(`${base}${path}`, { method, body, headers: { 'content-type': 'application/json', ...headers } });

  const nest = (open: string, inner: string, close: string, n: number) =>
    open.repeat(n) + inner + close.repeat(n);
  const members = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
  const zeros = (n: number) => `[${new Array<string>(n).fill('0').join(',')}]`;

  const refused: {
    name: string;
    method: string;
    path: string;
    body: string | Uint8Array;
    headers?: Record<string, string>;
    code: string;
    message: RegExp;
  }[] = [
    {
      name: 'arrays nested 100,000 deep',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: nest('[', '', ']', 100_000),
      code: 'invalid_value',
      message: /^the value is nested deeper than 64 levels \(at value(\[0\]){64}\)$/,
    },
    {
      name: 'objects nested 65 deep',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: nest('{"a":', '1', '}', 65),
      code: 'invalid_value',
      message: /nested deeper than 64 levels/,
    },
    {
      name: 'a merge patch nested 100,000 deep',
      method: 'PATCH',
      path: '/v1/items/lim/k',
      body: nest('{"a":', '1', '}', 100_000),
      code: 'invalid_value',
      message: /nested deeper than 64 levels/,
    },
    {
      name: 'a fields patch nested 65 deep',
      method: 'PATCH',
      path: '/v1/items/lcarts/k',
      body: `{"f":${nest('[', '', ']', 64)}}`,
      code: 'invalid_value',
      message: /nested deeper than 64 levels \(at value\.f/,
    },
    {
      name: 'an increment nested 100,000 deep',
      method: 'POST',
      path: '/v1/items/llikes/k/increment',
      body: `{"field":"n","by":1,"x":${nest('[', '', ']', 100_000)}}`,
      code: 'invalid_value',
      message: /nested deeper than 64 levels/,
    },
    {
      name: 'an object of 10,001 members',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: members(10_001),
      code: 'invalid_value',
      message: /an object of 10001 members, more than 10000 \(at value\)/,
    },
    {
      name: 'an array of 10,001 elements',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: `{"a":${zeros(10_001)}}`,
      code: 'invalid_value',
      message: /an array of 10001 elements, more than 10000 \(at value\.a\)/,
    },
    {
      name: '100,001 nodes',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: `[${Array.from({ length: 10 }, () => zeros(9_999)).join(',')}]`,
      code: 'invalid_value',
      message: /more than 100000 nodes/,
    },
    {
      name: 'a key of 1,025 characters',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: `{"${'k'.repeat(1025)}":1}`,
      code: 'invalid_value',
      message: /object key of 1025 characters, more than 1024/,
    },
    {
      name: '1e400 (Infinity once parsed)',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: '{"n":[1e400]}',
      code: 'invalid_value',
      message: /number beyond the range of a 64-bit float .*\(at value\.n\[0\]\)/,
    },
    {
      name: 'a NUL in a nested key',
      method: 'PATCH',
      path: '/v1/items/lim/k',
      body: '{"a":{"b\\u0000":1}}',
      code: 'invalid_value',
      message: /object key with a NUL character/,
    },
    {
      name: 'an invalid percent escape in the key',
      method: 'PUT',
      path: '/v1/items/lim/%e9',
      body: '{}',
      code: 'invalid_path',
      message: /not valid percent-encoded UTF-8/,
    },
    {
      name: 'a gzip header on a plain body',
      method: 'PUT',
      path: '/v1/items/lim/k',
      body: '{"a":1}',
      headers: { 'content-encoding': 'gzip' },
      code: 'malformed_body',
      message: /does not decode as its Content-Encoding says/,
    },
  ];

  for (const c of refused) {
    it(`when a ${c.method} has ${c.name}, then 400 ${c.code} says what is wrong and nothing is written`, async () => {
      const before = await stored();
      const res = await send(c.method, c.path, c.body, c.headers);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status, body.error.message).toBe(400);
      expect(body.error.code).toBe(c.code);
      expect(body.error.message).toMatch(c.message);
      expect(await stored()).toBe(before);
    });
  }

  it('when values sit exactly at the limits, then they are stored and read back unchanged', async () => {
    const atLimits = [
      nest('[', '', ']', 64),
      nest('{"a":', '"x"', '}', 63),
      members(10_000),
      `[${Array.from({ length: 10 }, (_, i) => zeros(i === 9 ? 9_998 : 9_999)).join(',')}]`,
      `{"${'k'.repeat(1024)}":1}`,
    ];
    for (const [i, text] of atLimits.entries()) {
      const res = await send('PUT', `/v1/items/lim/at${i}`, text);
      expect(res.status, await res.clone().text()).toBe(201);
      const read = (await (await fetch(`${base}/v1/items/lim/at${i}`)).json()) as { value: unknown };
      expect(read.value).toEqual(JSON.parse(text));
    }
  });

  it('when members are named __proto__ or constructor, then they are stored and returned as ordinary members', async () => {
    const put = await send(
      'PUT',
      '/v1/items/proto/k',
      '{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":2}},"a":1}',
    );
    expect(put.status).toBe(201);
    const patched = await send(
      'PATCH',
      '/v1/items/proto/k',
      '{"__proto__":{"more":true},"constructor":null,"b":{"__proto__":[1]}}',
    );
    expect(patched.status).toBe(200);
    const valueOf = async (path: string) =>
      (JSON.parse(await (await fetch(`${base}${path}`)).text()) as { value: Record<string, unknown> }).value;
    const value = await valueOf('/v1/items/proto/k');
    expect(Object.keys(value).sort()).toEqual(['__proto__', 'a', 'b']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(value).toEqual(JSON.parse('{"__proto__":{"polluted":1,"more":true},"a":1,"b":{"__proto__":[1]}}'));

    // The fields policy keeps a field per top-level member; the counter policy a counter per field.
    expect((await send('PUT', '/v1/items/lcarts/p', '{"__proto__":1,"constructor":2}')).status).toBe(201);
    const fields = await send(
      'PATCH',
      '/v1/items/lcarts/p',
      '{"__proto__":{"x":1},"toString":3,"constructor":null}',
    );
    expect(fields.status).toBe(200);
    expect(await valueOf('/v1/items/lcarts/p')).toEqual(JSON.parse('{"__proto__":{"x":1},"toString":3}'));
    for (const field of ['__proto__', 'constructor', '__proto__'])
      expect(
        (await send('POST', '/v1/items/llikes/p/increment', JSON.stringify({ field, by: 2 }))).status,
      ).toBeLessThan(300);
    expect(await valueOf('/v1/items/llikes/p')).toEqual(JSON.parse('{"__proto__":4,"constructor":2}'));

    // Nothing reached a prototype in the region's process (this process).
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).more).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });
});
