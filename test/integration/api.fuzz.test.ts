/**
 * Hostile requests against a real region API (PostgreSQL, Kafka): property-based, fast-check.
 *
 * Every generated request — odd bodies (deep, wide, huge, odd numbers, `__proto__` members, bad
 * text, invalid UTF-8, gzip bombs, chunked past the body limit), paths (odd collections and keys,
 * bad percent-encoding, `..`, overlong), methods and headers (ETags, session tokens, sizes near
 * Node's 16 KB header limit), and some raw bytes on a socket — must be answered below 500 (Node's
 * own 400/431 for what its HTTP parser refuses included; a reset socket is counted, not failed),
 * the process must keep answering `/healthz`, and nothing stored may change unless the request
 * was an accepted write, which changes its own item only.
 *
 * The seed is printed; replay with `FC_SEED=<seed> npx vitest run --project integration
 * test/integration/api.fuzz.test.ts` (FC_NUM_RUNS changes the number of requests; FUZZ_LOG=1 prints
 * each request with its answer and time).
 */
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { INSECURE_DEV_SESSION_KEY } from '../../services/api/http/sessionToken.js';
import { sealToken } from '../../shared/security/tokenMac.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { seeded } from '../unit/support/fc.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const fcRuns = seeded(import.meta.url);
console.log(
  `fuzz seed=${fcRuns.seed} (replay: FC_SEED=${fcRuns.seed} npx vitest run --project integration test/integration/api.fuzz.test.ts)`,
);

/** The region's body limit here: small enough that bodies past it stay cheap to send. */
const BODY_LIMIT = 256 * 1024;
const NUM_RUNS = 1200;
/** A `/healthz` every this many requests. */
const BATCH = 100;
const WRITE_METHODS = new Set(['PUT', 'PATCH', 'POST', 'DELETE']);

// ---------------------------------------------------------------------------------------------
// What is sent

interface Case {
  readonly kind: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer | undefined;
  /** Send the body with Transfer-Encoding: chunked, in pieces of these sizes (cycled). */
  readonly chunks: readonly number[] | undefined;
  /** Raw bytes on a fresh socket instead of an HTTP client request. */
  readonly raw: Buffer | undefined;
}

interface Outcome {
  readonly status: number | undefined;
  readonly contentType: string | undefined;
  readonly body: string;
  /** Set when no response came: the socket was reset or closed. */
  readonly error: string | undefined;
}

const SEEDS: readonly { c: string; k: string; value: unknown; increment?: true }[] = [
  { c: 'seed', k: 'a', value: { n: 1, tags: ['x', 'y'], nested: { deep: { er: true } } } },
  // Parsed, so that __proto__ is an own member as in a request body (a literal would set the prototype).
  { c: 'seed', k: '__proto__', value: JSON.parse('{"__proto__":"ordinary member","constructor":1}') },
  { c: 'seed', k: 'constructor', value: ['constructor'] },
  { c: 'constructor', k: 'prototype', value: 'a string value' },
  { c: 'toString', k: 'valueOf', value: 42 },
  { c: 'fcarts', k: 'a', value: { apples: 1, pears: { ripe: true } } },
  { c: 'flikes', k: 'a', value: { field: 'n', by: 3 }, increment: true },
];

/** Percent-encode every byte of `s` (as UTF-8) except unreserved ones, as a client would. */
function encodeAll(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8'))
    out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

const oddText = fc.string({
  unit: fc.constantFrom(
    'a',
    'Z',
    '0',
    '.',
    '-',
    '_',
    '/',
    ' ',
    '%',
    '?',
    '#',
    'é',
    '😀',
    '\u0000',
    '\u0001',
    '\u007f',
    '\ud800',
  ),
  maxLength: 12,
});

/** A path segment: mostly the seeded names, else odd ones, already in URL form. */
const segmentArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SEEDS.flatMap((s) => [s.c, s.k]).map(encodeAll)) },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '__proto__',
      'prototype',
      'hasOwnProperty',
      '..',
      '.',
      '%2e%2e',
      '%2E',
      '%00',
      'a%00b',
      '%zz',
      '%',
      '%e9',
      '%ed%a0%80',
      '%c0%af',
      '%ff%fe',
      'a%2Fb',
      '%5C',
      'a%20b',
      '~',
      'x'.repeat(64),
      'x'.repeat(65),
      'k'.repeat(512),
      'k'.repeat(513),
      '%F0%9F%98%80',
    ),
  },
  { weight: 2, arbitrary: oddText.map(encodeAll) },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 6 })
      .map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 12_000 }).map((n) => 'k'.repeat(n)) },
);

const queryValueArb = fc.constantFrom(
  '1',
  '0',
  '-1',
  '1e3',
  '1000',
  '1001',
  'abc',
  '',
  '%00',
  '%zz',
  '99999999999999999999',
  '2024-01-01T00:00:00Z',
  'yesterday',
  'a%26limit%3D2',
  'x'.repeat(600),
);

/** Collection and key of an item: mostly a seeded one (so bodies reach the checks), else odd segments. */
const itemArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(...SEEDS).map((s) => `${encodeAll(s.c)}/${encodeAll(s.k)}`),
  },
  { weight: 2, arbitrary: fc.tuple(segmentArb, segmentArb).map(([c, k]) => `${c}/${k}`) },
);

const pathArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: itemArb.map((item) => `/v1/items/${item}`) },
  { weight: 3, arbitrary: itemArb.map((item) => `/v1/items/${item}/increment`) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(segmentArb, segmentArb, queryValueArb)
      .map(([c, k, q]) => `/v1/items/${c}/${k}/history?limit=${q}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(segmentArb, segmentArb, queryValueArb, fc.boolean())
      .map(([c, k, q, twice]) => `/v1/items/${c}?after=${k}&limit=${q}${twice ? `&limit=${q}&after=x` : ''}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(segmentArb, segmentArb, queryValueArb)
      .map(([c, k, q]) => `/v1/conflicts?collection=${c}&key=${k}&since=${q}&after=${q}&limit=${q}`),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/v1/items/seed/a/../../status',
      '/v1/items/seed/a/extra/segments',
      '/v1//items/seed/a',
      '/v1/items/',
      '/v1/items//a',
      '/v1/items/seed/',
      '//',
      '/v1/status',
      '/healthz',
      '/readyz',
      '/metrics',
      '/v1/nothing',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/v1/items/seed/a?__proto__[polluted]=1&constructor[prototype][polluted]=1',
      '/v1/items/seed?after[]=a&limit[]=1',
      '/v1/items/seed/a#fragment',
      '*',
    ),
  },
);

const methodArb = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('PUT', 'PATCH', 'POST', 'DELETE', 'GET') },
  { weight: 1, arbitrary: fc.constantFrom('HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'FOO', 'LINK') },
);

const tokenOf = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
/** Hostile payloads, unsigned (refused by the MAC check) and sealed with insecure-dev's public key (parsed). */
const sessionPayloads = [
  tokenOf({ v: 1, o: { us: 1 } }),
  tokenOf({ v: 1, o: { eu: 1 } }),
  tokenOf({ v: 1, o: { constructor: 1 } }),
  Buffer.from('{"v":1,"o":{"__proto__":1}}').toString('base64url'),
  tokenOf({ v: 2, o: {} }),
  tokenOf({ v: 1, o: { us: -1 } }),
  Buffer.from('{"v":1,"o":{"us":1e400}}').toString('base64url'),
  tokenOf([1]),
  Buffer.from('['.repeat(3000) + ']'.repeat(3000)).toString('base64url'),
  'not base64 !!',
  '%%%',
  '',
  ' ',
  'A'.repeat(4097),
  'A'.repeat(15_000),
];
const sessionArb = fc.constantFrom(
  ...sessionPayloads,
  ...sessionPayloads.map((p) => sealToken([INSECURE_DEV_SESSION_KEY], p)),
);

const etagArb = fc.constantFrom(
  '*',
  '"1.0.us"',
  'W/"1.0.us"',
  '"1795703728240.0.us", W/"x"',
  '"',
  '""',
  'nonsense',
  '"1.0.US"',
  '"-1.0.us"',
  `"${'9'.repeat(5000)}.0.us"`,
  Array.from({ length: 800 }, (_, i) => `"${i}.0.us"`).join(','),
  ',,,,',
  '"1.0.us",',
  'W/',
);

const contentTypeArb = fc.oneof(
  { weight: 20, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=latin1',
      'application/json; charset=utf-16le',
      'application/json; charset=utf-7',
      'application/merge-patch+json',
      'APPLICATION/JSON',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json;;',
      'application/json; charset="utf-8',
      'application/*',
      '*/*',
      '',
      'json',
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** A body and, when it is encoded, its Content-Encoding. */
interface Body {
  readonly kind: string;
  readonly bytes: Buffer;
  readonly encoding?: string;
}

const text =
  (kind: string) =>
  (s: string): Body => ({ kind, bytes: Buffer.from(s, 'utf8') });
const nested = (open: string, inner: string, close: string, n: number) =>
  open.repeat(n) + inner + close.repeat(n);
const membersOf = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`;
const zeros = (n: number) => `[${new Array<string>(n).fill('0').join(',')}]`;

const bodyArb: fc.Arbitrary<Body> = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => text('json')(JSON.stringify(v))) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(1, 63, 64, 65, 66, 1_000, 5_000, 40_000), fc.boolean())
      .map(([n, objects]) =>
        text(`deep ${objects ? 'objects' : 'arrays'} ${n}`)(
          objects ? nested('{"a":', '1', '}', n) : nested('[', '', ']', n),
        ),
      ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      text('100,000-deep arrays')(nested('[', '', ']', 100_000)),
      text('10,000 members')(membersOf(10_000)),
      text('10,001 members')(membersOf(10_001)),
      text('10,001 elements')(zeros(10_001)),
      // 1 + 10 arrays + 99,990 zeros = 100,001 nodes.
      text('100,001 nodes')(`[${Array.from({ length: 10 }, () => zeros(9_999)).join(',')}]`),
      text('100,000 nodes')(
        `[${Array.from({ length: 10 }, (_, i) => zeros(i === 9 ? 9_998 : 9_999)).join(',')}]`,
      ),
      text('key of 1,024')(`{"${'k'.repeat(1024)}":1}`),
      text('key of 1,025')(`{"${'k'.repeat(1025)}":1}`),
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: -4, max: 4 })
      .map((d) => text(`string near the limit ${d}`)(`"${'x'.repeat(BODY_LIMIT - 2 + d)}"`)),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        '1e400',
        '-1e400',
        '-0',
        '12345678901234567890',
        '1e-400',
        '0.1e99999',
        '[1e400]',
        '{"n":-0}',
        '{"n":123456789012345678901234567890}',
        '{"n":9007199254740993}',
        '1E+308',
        '{"n":-1.7976931348623157e309}',
        '{"a":[0,-0,1e-400,5e-324]}',
      )
      .map(text('odd number')),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        '{"__proto__":{"polluted":true}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '{"__proto__":null}',
        '{"__proto__":1,"__proto__":2}',
        '{"a":{"__proto__":[1]},"b":{"constructor":null}}',
        '[{"__proto__":{}}]',
        '{"toString":"x","valueOf":1,"hasOwnProperty":2}',
        '{"field":"__proto__","by":1}',
        '{"field":"constructor","by":1}',
      )
      .map(text('__proto__ member')),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        '{"a":"\\u0000"}',
        '{"\\u0000":1}',
        '{"a":"\\ud800"}',
        '{"\\udfff":1}',
        '"\\udc00\\ud800"',
        '"\\ud83d\\ude00"',
        '{"a":{"b":["ok","\\u0000"]}}',
        '{"field":"\\u0000","by":1}',
        '{"field":"\\ud800","by":1}',
      )
      .map(text('bad text')),
  },
  {
    weight: 2,
    arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((bytes): Body => ({
      kind: 'invalid UTF-8',
      bytes: Buffer.concat([
        Buffer.from('{"a":"'),
        Buffer.from([...bytes].map((b) => b | 0x80)),
        Buffer.from('"}'),
      ]),
    })),
  },
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        '',
        '{',
        '{"a":1,}',
        '[1,]',
        "{'a':1}",
        '\ufeff{"a":1}',
        'NaN',
        'Infinity',
        'undefined',
        '{"a":1}garbage',
        '{"a" 1}',
        'tru',
        'null',
        '"just a string"',
        '  \n\t',
        '{"a":1}{"b":2}',
      )
      .map(text('malformed or odd JSON')),
  },
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          '"n"',
          '"__proto__"',
          '"constructor"',
          '""',
          `"${'f'.repeat(257)}"`,
          '1',
          'null',
          '["n"]',
        ),
        fc.constantFrom(
          '1',
          '-1',
          '0',
          '1.5',
          '1e12',
          '1e13',
          '1e400',
          '"1"',
          '9007199254740993',
          '-0',
          'null',
          'true',
        ),
        fc.boolean(),
      )
      .map(([f, by, extra]) => text('increment')(`{"field":${f},"by":${by}${extra ? ',"extra":1' : ''}}`)),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 200 })
      .map((b): Body => ({ kind: 'random bytes', bytes: Buffer.from(b) })),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Body>(
      { kind: 'gzip, valid', bytes: gzipSync('{"zipped":true}'), encoding: 'gzip' },
      { kind: 'gzip bomb', bytes: gzipSync(`"${'0'.repeat(BODY_LIMIT * 8)}"`), encoding: 'gzip' },
      { kind: 'gzip of a deep value', bytes: gzipSync(nested('[', '', ']', 200_000)), encoding: 'gzip' },
      { kind: 'gzip header, plain body', bytes: Buffer.from('{"a":1}'), encoding: 'gzip' },
      { kind: 'deflate header, plain body', bytes: Buffer.from('{"a":1}'), encoding: 'deflate' },
      { kind: 'br', bytes: Buffer.from('{"a":1}'), encoding: 'br' },
      { kind: 'zstd', bytes: Buffer.from('{"a":1}'), encoding: 'zstd' },
      { kind: 'unknown encoding', bytes: Buffer.from('{"a":1}'), encoding: 'x-unknown' },
      { kind: 'double gzip header', bytes: gzipSync('{"a":1}'), encoding: 'gzip, gzip' },
    ),
  },
);

/** A body past the limit, sent chunked so the server cannot refuse it by its Content-Length. */
const overLimitArb = fc
  .tuple(
    fc.integer({ min: 1, max: 64 * 1024 }),
    fc.constantFrom('[', 'x', ' '),
    fc.constantFrom(1024, 16_384, 65_536),
  )
  .map(([extra, fill, chunk]): { body: Body | undefined; chunks: number[] | undefined } => ({
    body: {
      kind: `chunked past the limit (+${extra})`,
      bytes: Buffer.alloc(BODY_LIMIT + extra, fill),
    },
    chunks: [chunk],
  }));

/** `arb` once in `every` cases, else null. */
const sometimes = <T>(arb: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: 1, arbitrary: arb }, { weight: every - 1, arbitrary: fc.constant(null) });

const headersArb = fc
  .record(
    {
      contentType: contentTypeArb,
      ifMatch: sometimes(etagArb, 6),
      ifNoneMatch: sometimes(etagArb, 6),
      session: sometimes(sessionArb, 6),
      pad: sometimes(fc.integer({ min: 1, max: 17_000 }), 8),
      duplicateIfMatch: fc.boolean(),
    },
    { noNullPrototype: true },
  )
  .map((h) => {
    const out: Record<string, string | string[]> = {};
    if (h.contentType !== undefined) out['content-type'] = h.contentType;
    if (h.ifMatch !== null) out['if-match'] = h.duplicateIfMatch ? [h.ifMatch, '*'] : h.ifMatch;
    if (h.ifNoneMatch !== null) out['if-none-match'] = h.ifNoneMatch;
    if (h.session !== null) out['hothot-session'] = h.session;
    if (h.pad !== null) out['x-pad'] = 'p'.repeat(h.pad);
    return out;
  });

/** Method and path: mostly a route the method has (so bodies reach the API's checks), else any. */
const requestLineArb = methodArb.chain((method) => {
  const own =
    method === 'POST'
      ? itemArb.map((item) => `/v1/items/${item}/increment`)
      : WRITE_METHODS.has(method) || method === 'GET'
        ? itemArb.map((item) => `/v1/items/${item}`)
        : pathArb;
  return fc
    .oneof({ weight: 3, arbitrary: own }, { weight: 1, arbitrary: pathArb })
    .map((path) => ({ method, path }));
});

const clientCaseArb: fc.Arbitrary<Case> = fc
  .tuple(
    requestLineArb,
    headersArb,
    fc.oneof(
      { weight: 20, arbitrary: bodyArb.map((body) => ({ body, chunks: undefined as number[] | undefined })) },
      {
        weight: 3,
        arbitrary: fc
          .tuple(bodyArb, fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 4 }))
          .map(([body, chunks]) => ({ body, chunks: chunks })),
      },
      { weight: 2, arbitrary: overLimitArb },
      {
        weight: 2,
        arbitrary: fc.constant({
          body: undefined as Body | undefined,
          chunks: undefined as number[] | undefined,
        }),
      },
    ),
  )
  .map(([{ method, path }, headers, { body, chunks }]) => ({
    kind: `${method} ${body?.kind ?? 'no body'}${chunks ? ' chunked' : ''}`,
    method,
    path,
    headers: body?.encoding === undefined ? headers : { ...headers, 'content-encoding': body.encoding },
    body: body?.bytes,
    chunks,
    raw: undefined,
  }));

const CRLF = '\r\n';
const rawRequest = (head: string, body: Buffer | string = '') =>
  Buffer.concat([Buffer.from(head.replaceAll('\n', CRLF), 'latin1'), Buffer.from(body)]);

/** Bytes an HTTP client library would not send. */
const rawCaseArb: fc.Arbitrary<Case> = fc
  .constantFrom<[string, Buffer]>(
    [
      'NUL in the path',
      rawRequest(
        'PUT /v1/items/seed/a\x00b HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 2\n\n',
        '{}',
      ),
    ],
    [
      'raw UTF-8 in the path',
      Buffer.concat([
        Buffer.from('GET /v1/items/seed/'),
        Buffer.from('é😀', 'utf8'),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
      ]),
    ],
    [
      'invalid UTF-8 in the path',
      Buffer.concat([
        Buffer.from('PUT /v1/items/seed/'),
        Buffer.from([0xff, 0xc0, 0xaf]),
        Buffer.from(' HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'),
      ]),
    ],
    ['space in the path', rawRequest('GET /v1/items/seed/a b HTTP/1.1\nHost: x\n\n')],
    [
      'NUL in a header value',
      rawRequest('GET /v1/items/seed/a HTTP/1.1\nHost: x\nIf-None-Match: "a\x00b"\n\n'),
    ],
    ['a header name with a space', rawRequest('GET /v1/items/seed/a HTTP/1.1\nHost: x\nIf Match: *\n\n')],
    [
      'an obs-fold header',
      rawRequest('GET /v1/items/seed/a HTTP/1.1\nHost: x\nIf-None-Match: "1.0.us",\n "2.0.us"\n\n'),
    ],
    [
      'Content-Length and Transfer-Encoding',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 7\nTransfer-Encoding: chunked\n\n7\n{"a":1}\n0\n\n',
      ),
    ],
    [
      'two Content-Lengths',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 7\nContent-Length: 8\n\n{"a":1}',
      ),
    ],
    [
      'a negative Content-Length',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: -1\n\n{}',
      ),
    ],
    [
      'a Content-Length of 2^64',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 18446744073709551616\n\n{}',
      ),
    ],
    [
      'a Content-Length past the limit',
      rawRequest(
        `PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: ${BODY_LIMIT * 100}\n\n{}`,
      ),
    ],
    [
      'a bad chunk size',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n\nzz\n{}\n0\n\n',
      ),
    ],
    [
      'a chunk size of 2^64',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nTransfer-Encoding: chunked\n\n10000000000000000\n{}\n0\n\n',
      ),
    ],
    [
      'headers past 16 KB',
      rawRequest(`GET /v1/items/seed/a HTTP/1.1\nHost: x\nX-Pad: ${'p'.repeat(17_000)}\n\n`),
    ],
    [
      'a request line past 16 KB',
      rawRequest(`GET /v1/items/seed/${'k'.repeat(17_000)} HTTP/1.1\nHost: x\n\n`),
    ],
    [
      '20,000 tiny headers',
      rawRequest(`GET /v1/items/seed/a HTTP/1.1\nHost: x\n${'a:b\n'.repeat(20_000)}\n`),
    ],
    [
      'HTTP/1.0 without Host',
      rawRequest(
        'PUT /v1/items/seed/h10 HTTP/1.0\nContent-Type: application/json\nContent-Length: 7\n\n{"a":1}',
      ),
    ],
    ['HTTP/2.0 in the request line', rawRequest('GET /v1/items/seed/a HTTP/2.0\nHost: x\n\n')],
    [
      'absolute-form target',
      rawRequest(
        'PUT http://evil.example/v1/items/seed/abs HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 7\n\n{"a":1}',
      ),
    ],
    ['an asterisk target', rawRequest('OPTIONS * HTTP/1.1\nHost: x\n\n')],
    ['a lowercase method', rawRequest('put /v1/items/seed/a HTTP/1.1\nHost: x\n\n')],
    [
      'Expect: 100-continue',
      rawRequest(
        'PUT /v1/items/seed/exp HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 7\nExpect: 100-continue\n\n{"a":1}',
      ),
    ],
    [
      'an unknown Expect',
      rawRequest(
        'PUT /v1/items/seed/a HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: 7\nExpect: 999-nonsense\n\n{"a":1}',
      ),
    ],
    [
      'garbage',
      Buffer.from('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n', 'latin1'),
    ],
  )
  .map(([kind, raw]) => ({
    kind: `raw: ${kind}`,
    method: 'RAW',
    path: '',
    headers: {},
    body: undefined,
    chunks: undefined,
    raw,
  }));

/** A case as fast-check prints a counterexample: short, bodies and long headers summarised. */
function describeCase(c: Case): string {
  const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…(${s.length} chars)` : s);
  const headers = Object.entries(c.headers).map(([k, v]) => `${k}: ${clip(JSON.stringify(v), 80)}`);
  const bytes = c.raw ?? c.body;
  return (
    `${c.kind}: ${c.method} ${clip(c.path, 200)} [${headers.join('; ')}]` +
    (bytes === undefined
      ? ''
      : ` body ${bytes.length} bytes ${JSON.stringify(clip(bytes.toString('latin1'), 120))}`) +
    (c.chunks === undefined ? '' : ` chunked ${JSON.stringify(c.chunks)}`)
  );
}

const caseArb = fc
  .oneof({ weight: 24, arbitrary: clientCaseArb }, { weight: 1, arbitrary: rawCaseArb })
  .map((c): Case => Object.assign(c, { [fc.toStringMethod]: () => describeCase(c) }));

// ---------------------------------------------------------------------------------------------
// How it is sent

function sendHttp(base: URL, agent: http.Agent, c: Case): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...c.headers };
    if (c.body !== undefined && c.chunks === undefined) headers['content-length'] = String(c.body.length);
    if (c.chunks !== undefined) headers['transfer-encoding'] = 'chunked';
    const req = http.request({
      host: base.hostname,
      port: base.port,
      method: c.method,
      path: c.path,
      headers,
      agent,
      timeout: 20_000,
    });
    let settled = false;
    const done = (o: Outcome) => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    req.on('timeout', () => {
      req.destroy();
      if (!settled) {
        settled = true;
        reject(new Error(`no answer in 20 s to ${c.method} ${c.path.slice(0, 200)} (${c.kind})`));
      }
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      done({ status: undefined, contentType: undefined, body: '', error: err.code ?? err.message }),
    );
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', () => undefined);
      res.on('end', () =>
        done({
          status: res.statusCode,
          contentType: res.headers['content-type'],
          body: Buffer.concat(parts).toString('utf8'),
          error: undefined,
        }),
      );
      res.on('close', () =>
        done({
          status: res.statusCode,
          contentType: res.headers['content-type'],
          body: Buffer.concat(parts).toString('utf8'),
          error: undefined,
        }),
      );
    });
    const body = c.body;
    if (body !== undefined && c.chunks !== undefined) {
      let at = 0;
      let i = 0;
      const writeMore = () => {
        while (at < body.length && !req.destroyed) {
          const size = c.chunks![i++ % c.chunks!.length]!;
          const piece = body.subarray(at, at + size);
          at += size;
          if (!req.write(piece)) {
            req.once('drain', writeMore);
            return;
          }
        }
        if (!req.destroyed) req.end();
      };
      writeMore();
    } else {
      req.end(body);
    }
  });
}

/** The first final (non-1xx) response in `text`: its status and where its head ends. */
function finalResponse(text: string): { status: number; headEnd: number; head: string } | undefined {
  let at = 0;
  for (;;) {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(text.slice(at));
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (!m || headEnd < 0) return undefined;
    const status = Number(m[1]);
    if (status >= 200) return { status, headEnd: headEnd + 4, head: text.slice(at, headEnd) };
    at = headEnd + 4; // 100 Continue and friends come before the answer
  }
}

/** Raw bytes on a fresh socket; the status of the first final response, if any comes. */
function sendRaw(base: URL, raw: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const parts: Buffer[] = [];
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      const text = Buffer.concat(parts).toString('latin1');
      const r = finalResponse(text);
      resolve({
        status: r?.status,
        contentType: r === undefined ? undefined : /\r\ncontent-type: ([^\r]*)/i.exec(r.head)?.[1],
        body: r === undefined ? '' : text.slice(r.headEnd),
        error: r ? undefined : (error ?? 'closed without a response'),
      });
    };
    socket.setTimeout(1000, () => finish('no response in 1 s'));
    socket.on('data', (d: Buffer) => {
      parts.push(d);
      // One answer is enough: stop shortly after its head (bodies here are small).
      if (finalResponse(Buffer.concat(parts).toString('latin1')) !== undefined)
        setTimeout(() => finish(), 20);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('close', () => finish());
    socket.write(raw);
  });
}

// ---------------------------------------------------------------------------------------------

let t: TestRegions;
let base: URL;
let db: pg.Pool;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const test = regionsTest(() =>
  startTestRegions(['us'], {
    MAX_BODY_BYTES: String(BODY_LIMIT),
    HEARTBEAT_INTERVAL_MS: '0',
    COLLECTION_POLICIES: 'fcarts=fields,flikes=counter',
    // Authentication is not what this test is about: without credentials every request would
    // stop at 401 before the body parser and the routes.
    SECURITY_MODE: 'insecure-dev',
    // Session tokens MACed with insecure-dev's public key, so the sealed hostile ones reach the parser.
    SESSION_TOKEN_KEYS: '',
  }),
);

describe('API under hostile requests (fast-check)', () => {
  test.beforeAll(async ({ regions }) => {
    t = regions;
    base = new URL(t.regions.us!.url);
    db = new pg.Pool({ connectionString: t.databaseUrls.us, max: 2 });
    for (const s of SEEDS) {
      const path = `/v1/items/${encodeAll(s.c)}/${encodeAll(s.k)}${s.increment ? '/increment' : ''}`;
      const res = await fetch(new URL(path, base), {
        method: s.increment ? 'POST' : 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(s.value),
      });
      expect(res.status, `seeding ${path}: ${await res.text()}`).toBe(201);
    }
  }, REGIONS_START_MS);
  afterAll(async () => {
    agent.destroy();
    await db?.end();
  });

  /**
   * Everything a write could change: each item row's version (its `xmin`, the transaction that
   * wrote it: any update, even to equal content, changes it), the history size and the outbox
   * sequence (the relay empties the outbox itself).
   */
  async function snapshot(): Promise<{ rows: Map<string, string>; history: string; outboxSeq: string }> {
    const r = await db.query<{ rows: [string, string, string][] | null; history: string; seq: string }>(
      `SELECT (SELECT json_agg(json_build_array(collection, key, xmin::text) ORDER BY collection, key) FROM item i) AS rows,
              (SELECT count(*)::text FROM item_history) AS history,
              (SELECT last_value::text || ':' || is_called::text FROM outbox_id_seq) AS seq`,
    );
    const row = r.rows[0]!;
    return {
      rows: new Map((row.rows ?? []).map(([c, k, h]) => [JSON.stringify([c, k]), h])),
      history: row.history,
      outboxSeq: row.seq,
    };
  }

  function changedRows(a: Map<string, string>, b: Map<string, string>): string[] {
    const ids = new Set([...a.keys(), ...b.keys()]);
    return [...ids].filter((id) => a.get(id) !== b.get(id));
  }

  async function healthy(): Promise<void> {
    const res = await fetch(new URL('/healthz', base));
    expect(res.status).toBe(200);
  }

  it(`when ${NUM_RUNS} hostile requests arrive, then none gets a 5xx, the region stays up, and refused ones change nothing`, async () => {
    const started = Date.now();
    const statuses = new Map<string, number>();
    const noResponse = new Map<string, number>();
    let sent = 0;
    let accepted = 0;
    let before = await snapshot();

    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        sent++;
        const t0 = Date.now();
        const out = c.raw !== undefined ? await sendRaw(base, c.raw) : await sendHttp(base, agent, c);
        const label = `${c.kind} → ${out.status ?? out.error} (${c.method} ${c.path.slice(0, 120)})`;
        if (process.env.FUZZ_LOG) console.log(`${Date.now() - t0} ms`, label, out.body.slice(0, 200));
        if (out.status === undefined) {
          noResponse.set(out.error!, (noResponse.get(out.error!) ?? 0) + 1);
          await healthy(); // a reset or a silence is no 5xx, but the region must still be there
        } else statuses.set(String(out.status), (statuses.get(String(out.status)) ?? 0) + 1);

        if (out.status !== undefined) {
          expect(out.status, `${label}: ${out.body.slice(0, 300)}`).toBeLessThan(500);
          // The API's own refusals say what is wrong; Node's parser answers 400/431 bare.
          if (out.status >= 400 && out.contentType?.startsWith('application/json') && c.method !== 'HEAD') {
            const e = (JSON.parse(out.body) as { error?: { code?: unknown; message?: unknown } }).error;
            expect(typeof e?.code, label).toBe('string');
            expect(typeof e?.message === 'string' && e.message.length > 10, label).toBe(true);
          }
        }

        const after = await snapshot();
        const changed = changedRows(before.rows, after.rows);
        const write = WRITE_METHODS.has(c.method) || c.raw !== undefined;
        const acceptedWrite = write && out.status !== undefined && out.status >= 200 && out.status < 300;
        if (acceptedWrite) {
          accepted++;
          expect(changed.length, label).toBeLessThanOrEqual(1);
        } else {
          expect(changed, label).toEqual([]);
          expect(after.history, label).toBe(before.history);
          expect(after.outboxSeq, label).toBe(before.outboxSeq);
        }
        before = after;
        if (sent % BATCH === 0) await healthy();
      }),
      // No shrinking: each step would replay requests against a region whose data has moved on.
      { ...fcRuns.params(NUM_RUNS), endOnFailure: true },
    );

    await healthy();
    // Nothing was answered 5xx on the server side either (a response lost with its socket included).
    const metrics = await (await fetch(new URL('/metrics', base))).text();
    expect(
      metrics.split('\n').filter((l) => /^hothot_http_requests_total\{.*status="5\d\d"/.test(l)),
    ).toEqual([]);
    // No member named __proto__ or constructor reached a prototype.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);

    const seconds = (Date.now() - started) / 1000;
    const sorted = (m: Map<string, number>) =>
      Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)));
    console.log(
      `fuzz: ${sent} requests in ${seconds.toFixed(1)} s (seed=${fcRuns.seed}); ${accepted} accepted writes; ` +
        `statuses ${JSON.stringify(sorted(statuses))}; no response ${JSON.stringify(sorted(noResponse))}`,
    );
    expect(sent).toBe(fcRuns.params(NUM_RUNS).numRuns);
  });
});
