import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';

describe('API input validation', () => {
  let t: TestRegions;
  let base: string;
  let db: pg.Pool;

  beforeAll(async () => {
    t = await startTestRegions(['us'], { MAX_BODY_BYTES: '1024', HEARTBEAT_INTERVAL_MS: '0' });
    base = t.regions.us!.url;
    db = new pg.Pool({ connectionString: t.databaseUrls.us });
  });
  afterAll(async () => {
    await db?.end();
    await t?.stop();
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
