import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { incrementCounter, EMPTY_COUNTERS } from '../../shared/domain/policies/counterState.js';
import { putFields } from '../../shared/domain/policies/fieldsState.js';
import {
  decodeEvent,
  encodeEvent,
  MAX_EVENT_BYTES,
  MAX_REASON,
  type ChangeEvent,
  type HeartbeatEvent,
  type PeerEvent,
} from '../../shared/kafka/envelope.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** Events of region eu, read off eu's topic unless a case says otherwise. */
const TOPIC_ORIGIN = 'eu';
const NOW = 1_800_000_000_000;
const stamp = { wall: NOW, logical: 3, region: 'eu' };

const goodChange: ChangeEvent = {
  v: 1,
  type: 'change',
  origin: 'eu',
  collection: 'people',
  key: 'ada',
  value: { name: 'Ada', born: 1815, tags: ['x'] },
  deleted: false,
  hlc: stamp,
  vv: { eu: 2, us: 1 },
  writtenAt: NOW,
};

const goodHeartbeat: HeartbeatEvent = {
  v: 1,
  type: 'heartbeat',
  origin: 'eu',
  hlc: stamp,
  sentAt: NOW,
  partition: 1,
  partitions: 3,
  safeBefore: NOW - 5,
  watermarks: { us: NOW - 100, ap: NOW - 200 },
  policies: { carts: 'fields', likes: 'counter' },
};

const bytes = (text: string) => Buffer.from(text, 'utf8');
/** `base` with `patch` applied; a field patched to `undefined` is left out of the JSON. */
const json = (base: object, patch: Record<string, unknown> = {}) =>
  bytes(JSON.stringify({ ...base, ...patch }));
const change = (patch: Record<string, unknown>) => json(goodChange, patch);
const heartbeat = (patch: Record<string, unknown>) => json(goodHeartbeat, patch);
/** A good change's JSON with one string value swapped for raw JSON text (escapes, big numbers). */
const changeText = (from: string, to: string) => {
  const text = JSON.stringify(goodChange);
  if (!text.includes(from)) throw new Error(`the good change has no ${from}`);
  return bytes(text.replace(from, to));
};
/** The good change, encoded. */
const goodBytes = encodeEvent(goodChange);
/** `raw` with `inserted` put in at byte `at`. */
const splice = (raw: Buffer, at: number, inserted: number[]) =>
  Buffer.concat([raw.subarray(0, at), Buffer.from(inserted), raw.subarray(at)]);

interface BadCase {
  readonly name: string;
  readonly raw: Buffer | null;
  /** What the reason must say. */
  readonly reason: RegExp;
  /** Topic the message was read from. @default eu */
  readonly topicOrigin?: string;
}

const BAD: readonly BadCase[] = [
  // envelope version
  { name: 'v 0', raw: change({ v: 0 }), reason: /^unsupported envelope version 0 \(this region reads 1\)$/ },
  { name: 'v 2', raw: change({ v: 2 }), reason: /^unsupported envelope version 2\b/ },
  { name: 'v "1" (a string)', raw: change({ v: '1' }), reason: /^unsupported envelope version "1"/ },
  { name: 'v 1.5', raw: change({ v: 1.5 }), reason: /^unsupported envelope version 1\.5/ },
  { name: 'v null', raw: change({ v: null }), reason: /^unsupported envelope version null/ },
  {
    name: 'v an object',
    raw: change({ v: { major: 1 } }),
    reason: /^unsupported envelope version an object/,
  },
  { name: 'v missing', raw: change({ v: undefined }), reason: /^no envelope version \(v\)$/ },
  { name: 'heartbeat v 2', raw: heartbeat({ v: 2 }), reason: /^unsupported envelope version 2\b/ },
  // event type
  { name: 'unknown type', raw: change({ type: 'delete' }), reason: /^unknown event type "delete"$/ },
  { name: 'type missing', raw: change({ type: undefined }), reason: /^no event type$/ },
  { name: 'type a number', raw: change({ type: 7 }), reason: /^unknown event type 7$/ },
  { name: 'type in capitals', raw: change({ type: 'CHANGE' }), reason: /^unknown event type "CHANGE"$/ },
  {
    name: 'a very long type',
    raw: change({ type: 'x'.repeat(100_000) }),
    reason: /^unknown event type "x{59}…$/,
  },
  // merge policy
  {
    name: 'unknown policy',
    raw: change({ policy: 'mvr' }),
    reason: /^invalid change event: policy: .*"lww"/,
  },
  { name: 'policy null', raw: change({ policy: null }), reason: /policy: / },
  {
    name: 'counter policy without crdt',
    raw: change({ policy: 'counter' }),
    reason: /crdt does not match the policy/,
  },
  {
    name: 'lww with a crdt',
    raw: change({ crdt: incrementCounter(EMPTY_COUNTERS, 'eu', 'n', 1) }),
    reason: /crdt does not match the policy/,
  },
  {
    name: 'fields policy with a counter crdt',
    raw: change({ policy: 'fields', crdt: incrementCounter(EMPTY_COUNTERS, 'eu', 'n', 1) }),
    reason: /crdt does not match the policy/,
  },
  {
    name: 'counter policy with a fields crdt',
    raw: change({ policy: 'counter', crdt: putFields({ a: 1 }, stamp, { region: 'eu', n: 2 }) }),
    reason: /crdt does not match the policy/,
  },
  {
    name: 'counter crdt with a negative count',
    raw: change({ policy: 'counter', crdt: { counters: { n: { eu: { p: -1, n: 0 } } } } }),
    reason: /crdt does not match the policy/,
  },
  // version vectors
  { name: 'vv zero count', raw: change({ vv: { eu: 2, us: 0 } }), reason: /vv\.us: .*>0/ },
  { name: 'vv negative count', raw: change({ vv: { eu: 2, us: -1 } }), reason: /vv\.us: / },
  { name: 'vv fractional count', raw: change({ vv: { eu: 1.5 } }), reason: /vv\.eu: .*int/ },
  { name: 'vv count a string', raw: change({ vv: { eu: '2' } }), reason: /vv\.eu: .*number/ },
  {
    name: 'vv count beyond 2^53',
    raw: changeText('"vv":{"eu":2,', '"vv":{"eu":9007199254740993,'),
    reason: /vv\.eu: /,
  },
  {
    name: 'vv key not a region',
    raw: change({ vv: { eu: 1, 'US!': 1 } }),
    reason: /vv\.US!: invalid key: not a region id/,
  },
  {
    name: 'vv key upper case',
    raw: change({ vv: { eu: 1, US: 1 } }),
    reason: /vv\.US: invalid key: not a region id/,
  },
  {
    name: 'vv key __proto__',
    raw: changeText('"us":1', '"__proto__":1'),
    reason: /^invalid change event: vv: has a "__proto__" key$/,
  },
  {
    name: 'vv key empty',
    raw: change({ vv: { eu: 1, '': 1 } }),
    reason: /vv\.: invalid key: not a region id/,
  },
  { name: 'vv without the origin', raw: change({ vv: { us: 3 } }), reason: /vv has no entry for the origin/ },
  { name: 'vv empty', raw: change({ vv: {} }), reason: /vv has no entry for the origin/ },
  { name: 'vv an array', raw: change({ vv: [1, 2] }), reason: /vv: .*expected record, received array/ },
  { name: 'vv a string', raw: change({ vv: 'eu:1' }), reason: /vv: .*expected record/ },
  { name: 'vv null', raw: change({ vv: null }), reason: /vv: .*expected record/ },
  { name: 'vv missing', raw: change({ vv: undefined }), reason: /vv: .*expected record/ },
  {
    name: 'vv with thousands of bad entries',
    raw: change({ vv: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`r${i}`, -i])) }),
    reason: /^invalid change event: vv\.r0: .*; and \d+ more$/,
  },
  {
    name: 'vv with a huge bad key',
    raw: change({ vv: { eu: 1, ['X'.repeat(100_000)]: 1 } }),
    reason: /vv\.X{60}…: invalid key: not a region id/,
  },
  // HLC stamps
  {
    name: 'hlc of another region',
    raw: change({ hlc: { ...stamp, region: 'us' } }),
    reason: /hlc\.region differs from origin/,
  },
  { name: 'hlc wall negative', raw: change({ hlc: { ...stamp, wall: -1 } }), reason: /hlc\.wall: .*>=0/ },
  {
    name: 'hlc wall fractional',
    raw: change({ hlc: { ...stamp, wall: NOW + 0.5 } }),
    reason: /hlc\.wall: .*int/,
  },
  {
    name: 'hlc wall beyond MAX_SAFE_INTEGER',
    raw: changeText(`"wall":${NOW}`, '"wall":9007199254740993'),
    reason: /hlc\.wall: Too big/,
  },
  { name: 'hlc wall 1e300', raw: changeText(`"wall":${NOW}`, '"wall":1e300'), reason: /hlc\.wall: Too big/ },
  {
    name: 'hlc wall a string',
    raw: change({ hlc: { ...stamp, wall: String(NOW) } }),
    reason: /hlc\.wall: .*number/,
  },
  { name: 'hlc logical negative', raw: change({ hlc: { ...stamp, logical: -1 } }), reason: /hlc\.logical: / },
  {
    name: 'hlc logical beyond 2^31-1',
    raw: change({ hlc: { ...stamp, logical: 2 ** 31 } }),
    reason: /hlc\.logical: Too big/,
  },
  { name: 'hlc region missing', raw: change({ hlc: { wall: NOW, logical: 0 } }), reason: /hlc\.region: / },
  { name: 'hlc a string', raw: change({ hlc: `${NOW}.0.eu` }), reason: /hlc: .*expected object/ },
  { name: 'hlc missing', raw: change({ hlc: undefined }), reason: /hlc: .*expected object/ },
  // origin
  {
    name: 'an ap event on the topic of eu',
    raw: change({ origin: 'ap', hlc: { ...stamp, region: 'ap' }, vv: { ap: 1 } }),
    reason: /^event from ap on the topic of eu$/,
  },
  {
    name: 'an eu heartbeat on the topic of us',
    raw: encodeEvent(goodHeartbeat),
    reason: /^event from eu on the topic of us$/,
    topicOrigin: 'us',
  },
  { name: 'origin not a region id', raw: change({ origin: 'EU' }), reason: /origin: / },
  { name: 'origin missing', raw: change({ origin: undefined }), reason: /origin: / },
  // not JSON, not UTF-8, not an object
  { name: 'truncated JSON', raw: goodBytes.subarray(0, goodBytes.length - 7), reason: /^not JSON: / },
  { name: 'truncated to one byte', raw: goodBytes.subarray(0, 1), reason: /^not JSON: / },
  { name: 'trailing garbage', raw: Buffer.concat([goodBytes, bytes('}')]), reason: /^not JSON: / },
  { name: 'two events in one message', raw: Buffer.concat([goodBytes, goodBytes]), reason: /^not JSON: / },
  { name: 'JSON with a comment', raw: bytes(`/* hi */${goodBytes.toString()}`), reason: /^not JSON: / },
  { name: 'NaN', raw: bytes('NaN'), reason: /^not JSON: / },
  { name: 'an empty message', raw: Buffer.alloc(0), reason: /^empty message$/ },
  { name: 'a null message (a Kafka tombstone)', raw: null, reason: /^empty message$/ },
  { name: 'whitespace only', raw: bytes(' \n\t '), reason: /^not JSON: / },
  {
    name: 'a byte order mark',
    raw: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), goodBytes]),
    reason: /^not JSON: starts with a byte order mark$/,
  },
  {
    name: 'invalid UTF-8 byte 0xff',
    raw: splice(goodBytes, 10, [0xff]),
    reason: /^not valid UTF-8 \(first bad byte near offset 10\)$/,
  },
  {
    // Before: toString('utf8') turned the byte into U+FFFD, and the event was applied with it.
    name: 'invalid UTF-8 inside a string value',
    raw: splice(goodBytes, goodBytes.indexOf('"Ada"') + 2, [0x80]),
    reason: /^not valid UTF-8 \(first bad byte near offset \d+\)$/,
  },
  {
    name: 'UTF-8 cut inside a character',
    raw: Buffer.concat([bytes('{"v":1,"type":"change","key":"'), Buffer.from([0xe2, 0x82])]),
    reason: /^not valid UTF-8 /,
  },
  {
    name: 'overlong UTF-8 (C0 80 for NUL)',
    raw: Buffer.concat([bytes('{"v":1,"key":"'), Buffer.from([0xc0, 0x80]), bytes('"}')]),
    reason: /^not valid UTF-8 /,
  },
  {
    name: 'UTF-8-encoded surrogate (CESU-8)',
    raw: Buffer.concat([bytes('{"v":1,"key":"'), Buffer.from([0xed, 0xa0, 0x80]), bytes('"}')]),
    reason: /^not valid UTF-8 /,
  },
  { name: 'UTF-16 text', raw: Buffer.from(goodBytes.toString(), 'utf16le'), reason: /^not JSON: / },
  {
    name: 'a JSON array',
    raw: bytes(`[${goodBytes.toString()}]`),
    reason: /^event is not a JSON object but an array$/,
  },
  { name: 'a JSON number', raw: bytes('42'), reason: /^event is not a JSON object but a number$/ },
  { name: 'JSON null', raw: bytes('null'), reason: /^event is not a JSON object but null$/ },
  { name: 'a JSON string', raw: bytes('"change"'), reason: /^event is not a JSON object but a string$/ },
  { name: 'JSON true', raw: bytes('true'), reason: /^event is not a JSON object but a boolean$/ },
  { name: 'an empty object', raw: bytes('{}'), reason: /^no envelope version \(v\)$/ },
  // deleted and value
  { name: 'deleted with a value', raw: change({ deleted: true }), reason: /deleted and value disagree/ },
  { name: 'not deleted, value null', raw: change({ value: null }), reason: /deleted and value disagree/ },
  { name: 'not deleted, value missing', raw: change({ value: undefined }), reason: /value: / },
  { name: 'deleted "yes"', raw: change({ deleted: 'yes' }), reason: /deleted: .*boolean/ },
  { name: 'deleted missing', raw: change({ deleted: undefined }), reason: /deleted: .*boolean/ },
  // text PostgreSQL cannot store, values no walk should meet
  { name: 'NUL in a value string', raw: change({ value: { name: 'A\u0000da' } }), reason: /NUL/ },
  { name: 'NUL in a value key', raw: change({ value: { 'na\u0000me': 'Ada' } }), reason: /NUL/ },
  { name: 'a lone surrogate in the value', raw: changeText('"Ada"', '"\\ud800"'), reason: /surrogate/ },
  {
    name: 'NUL in a fields crdt',
    raw: change({ policy: 'fields', crdt: putFields({ name: 'A\u0000' }, stamp, { region: 'eu', n: 2 }) }),
    reason: /NUL/,
  },
  {
    name: 'a value nested 100,000 levels deep',
    raw: changeText(
      '{"name":"Ada","born":1815,"tags":["x"]}',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    ),
    reason: /nested|deep|depth|stack/i,
  },
  // collection and key
  {
    name: 'collection with "/"',
    raw: change({ collection: 'a/b' }),
    reason: /^invalid change event: collection: collection must be/,
  },
  { name: 'collection empty', raw: change({ collection: '' }), reason: /collection: collection must be/ },
  {
    name: 'collection of 65 characters',
    raw: change({ collection: 'c'.repeat(65) }),
    reason: /collection: collection must be/,
  },
  {
    name: 'collection starting with "."',
    raw: change({ collection: '.hidden' }),
    reason: /collection: collection must be/,
  },
  { name: 'collection a number', raw: change({ collection: 5 }), reason: /collection: .*string/ },
  { name: 'key with "/"', raw: change({ key: 'a/b' }), reason: /^invalid change event: key: key must be/ },
  { name: 'key empty', raw: change({ key: '' }), reason: /key: key must be/ },
  { name: 'key with a newline', raw: change({ key: 'a\nb' }), reason: /key: key must be/ },
  { name: 'key with NUL', raw: change({ key: 'a\u0000b' }), reason: /key: key must be/ },
  { name: 'key of 513 characters', raw: change({ key: 'k'.repeat(513) }), reason: /key: key must be/ },
  { name: 'key with a lone surrogate', raw: changeText('"ada"', '"\\udc00"'), reason: /key: key must be/ },
  { name: 'key missing', raw: change({ key: undefined }), reason: /key: .*string/ },
  // other fields
  { name: 'writtenAt missing', raw: change({ writtenAt: undefined }), reason: /writtenAt: / },
  { name: 'writtenAt negative', raw: change({ writtenAt: -5 }), reason: /writtenAt: / },
  { name: 'writtenAt beyond the Date range', raw: change({ writtenAt: 9e15 }), reason: /writtenAt: Too big/ },
  {
    name: 'everything missing',
    raw: bytes('{"v":1,"type":"change"}'),
    reason: /^invalid change event: origin: .*; and \d+ more$/,
  },
  // heartbeats
  {
    name: 'heartbeat watermark negative',
    raw: heartbeat({ watermarks: { us: -1 } }),
    reason: /^invalid heartbeat event: watermarks\.us: /,
  },
  {
    name: 'heartbeat watermark fractional',
    raw: heartbeat({ watermarks: { us: NOW + 0.25 } }),
    reason: /watermarks\.us: .*int/,
  },
  {
    name: 'heartbeat watermark a string',
    raw: heartbeat({ watermarks: { us: String(NOW) } }),
    reason: /watermarks\.us: .*number/,
  },
  {
    name: 'heartbeat watermark of a non-region',
    raw: heartbeat({ watermarks: { 'U S': NOW } }),
    reason: /watermarks\.U S: invalid key: not a region id/,
  },
  {
    name: 'heartbeat watermark keyed __proto__',
    raw: bytes(JSON.stringify(goodHeartbeat).replace('"ap":', '"__proto__":')),
    reason: /^invalid heartbeat event: watermarks: has a "__proto__" key$/,
  },
  {
    name: 'heartbeat watermarks an array',
    raw: heartbeat({ watermarks: [NOW] }),
    reason: /watermarks: .*record/,
  },
  {
    name: 'heartbeat watermark beyond the Date range',
    raw: heartbeat({ watermarks: { us: 9e15 } }),
    reason: /watermarks\.us: Too big/,
  },
  { name: 'heartbeat safeBefore negative', raw: heartbeat({ safeBefore: -1 }), reason: /safeBefore: / },
  { name: 'heartbeat sentAt missing', raw: heartbeat({ sentAt: undefined }), reason: /sentAt: / },
  {
    name: 'heartbeat partition not below partitions',
    raw: heartbeat({ partition: 3 }),
    reason: /partition is not below partitions/,
  },
  { name: 'heartbeat partitions 0', raw: heartbeat({ partitions: 0 }), reason: /partitions: / },
  { name: 'heartbeat partition negative', raw: heartbeat({ partition: -1 }), reason: /partition: / },
  {
    name: 'heartbeat unknown policy',
    raw: heartbeat({ policies: { carts: 'mvr' } }),
    reason: /policies\.carts: /,
  },
  {
    name: 'heartbeat policy of a bad collection',
    raw: heartbeat({ policies: { 'a\u0000b': 'lww' } }),
    reason: /policies\.a\\u0000b: invalid key: not a collection/,
  },
  {
    name: 'heartbeat hlc of another region',
    raw: heartbeat({ hlc: { ...stamp, region: 'us' } }),
    reason: /hlc\.region differs from origin/,
  },
  // size
  {
    name: `an event over MAX_EVENT_BYTES (${MAX_EVENT_BYTES})`,
    raw: change({ junk: 'x'.repeat(MAX_EVENT_BYTES) }),
    reason: new RegExp(
      `^event of ${MAX_EVENT_BYTES + goodBytes.length + 10} bytes is larger than ${MAX_EVENT_BYTES}$`,
    ),
  },
  {
    name: 'one byte over MAX_EVENT_BYTES, and not JSON',
    raw: Buffer.alloc(MAX_EVENT_BYTES + 1, 0x7b),
    reason: new RegExp(`^event of ${MAX_EVENT_BYTES + 1} bytes is larger than ${MAX_EVENT_BYTES}$`),
  },
];

/** Same checks for a result that must be a refusal: a reason that is storable and bounded. */
function expectRefusal(r: ReturnType<typeof decodeEvent>): string {
  expect(r.ok).toBe(false);
  const reason = (r as { reason: string }).reason;
  expect(reason.length).toBeGreaterThan(0);
  expect(reason.length).toBeLessThanOrEqual(MAX_REASON + 1);
  expect(reason).not.toContain('\u0000');
  expect(reason.isWellFormed()).toBe(true);
  return reason;
}

describe('decodeEvent', () => {
  it.each(BAD.map((c) => [c.name, c] as const))(
    'when the event is bad (%s), then it is refused with a reason naming the problem',
    (_, c) => {
      const r = decodeEvent(c.raw, c.topicOrigin ?? TOPIC_ORIGIN);
      expect(r.ok, JSON.stringify(r).slice(0, 300)).toBe(false);
      expect(expectRefusal(r)).toMatch(c.reason);
    },
  );

  it('when the test table is built, then every bad case is distinct and each good encoding is valid', () => {
    expect(new Set(BAD.map((c) => c.name)).size).toBe(BAD.length);
    expect(decodeEvent(goodBytes, TOPIC_ORIGIN).ok).toBe(true);
    expect(decodeEvent(encodeEvent(goodHeartbeat), TOPIC_ORIGIN).ok).toBe(true);
  });

  const GOOD: readonly [string, PeerEvent][] = [
    ['a change', goodChange],
    ['a delete (tombstone)', { ...goodChange, value: null, deleted: true }],
    ['a change with a scalar value', { ...goodChange, value: 0 }],
    ['an lww change that says so', { ...goodChange, policy: 'lww' }],
    [
      'a fields change',
      {
        ...goodChange,
        collection: 'carts',
        policy: 'fields',
        crdt: putFields({ a: 1, b: [2] }, stamp, { region: 'eu', n: 2 }),
      },
    ],
    [
      'a counter change',
      {
        ...goodChange,
        collection: 'likes',
        value: { n: 3 },
        policy: 'counter',
        crdt: incrementCounter(EMPTY_COUNTERS, 'eu', 'n', 3),
      },
    ],
    [
      'a change of the largest key and collection',
      { ...goodChange, collection: 'c'.repeat(64), key: 'ü'.repeat(512) },
    ],
    ['a change with a huge vector count', { ...goodChange, vv: { eu: Number.MAX_SAFE_INTEGER } }],
    ['a full heartbeat', goodHeartbeat],
    ['a bare heartbeat', { v: 1, type: 'heartbeat', origin: 'eu', hlc: stamp, sentAt: NOW }],
    // Far-future stamps are valid events: the applier (not the decoder) parks them as clock_skew.
    ['a change stamped a year ahead', { ...goodChange, hlc: { ...stamp, wall: NOW + 365 * 86_400_000 } }],
    [
      'a heartbeat with far-future marks',
      { ...goodHeartbeat, safeBefore: NOW * 2, watermarks: { us: NOW * 2 } },
    ],
  ];

  it.each(GOOD)('when %s is encoded, then it decodes to the same event', (_, event) => {
    const r = decodeEvent(encodeEvent(event), TOPIC_ORIGIN);
    expect(r).toEqual({ ok: true, event });
  });

  it('when the origin of the topic is not known, then any origin is accepted', () => {
    const ap = { ...goodChange, origin: 'ap', hlc: { ...stamp, region: 'ap' }, vv: { ap: 1 } };
    expect(decodeEvent(encodeEvent(ap), undefined)).toEqual({ ok: true, event: ap });
  });

  it('when an event has fields this version does not know, then they are dropped and the event is accepted', () => {
    const r = decodeEvent(change({ future: { anything: [1, 2, 3] }, trace: 'abc' }), TOPIC_ORIGIN);
    expect(r).toEqual({ ok: true, event: goodChange });
  });

  it('when an event is exactly MAX_EVENT_BYTES long, then it is accepted', () => {
    const pad = MAX_EVENT_BYTES - goodBytes.length;
    const raw = Buffer.concat([goodBytes, Buffer.alloc(pad, 0x20)]); // trailing whitespace is JSON
    expect(raw.length).toBe(MAX_EVENT_BYTES);
    expect(decodeEvent(raw, TOPIC_ORIGIN)).toEqual({ ok: true, event: goodChange });
  });

  it('when the value holds U+FFFD or other non-ASCII text written correctly, then it is accepted as is', () => {
    const event = { ...goodChange, value: { s: 'a\ufffdb — 𝄞 ü', '\ud83d\ude00': true } };
    expect(decodeEvent(encodeEvent(event), TOPIC_ORIGIN)).toEqual({ ok: true, event });
  });

  it('when a reason echoes input with NUL or lone surrogates, then the reason is made storable', () => {
    // Echoed as JSON: escaped already.
    expect(expectRefusal(decodeEvent(change({ type: 'a\u0000b' }), TOPIC_ORIGIN))).toBe(
      'unknown event type "a\\u0000b"',
    );
    // Echoed raw, as a path: escaped / replaced by the decoder.
    const nul = expectRefusal(decodeEvent(heartbeat({ policies: { 'a\u0000b': 'lww' } }), TOPIC_ORIGIN));
    expect(nul).toMatch(/^invalid heartbeat event: policies\.a\\u0000b: invalid key: /);
    const lone = expectRefusal(decodeEvent(heartbeat({ watermarks: { '\ud800': 1 } }), TOPIC_ORIGIN));
    expect(lone).toMatch(/^invalid heartbeat event: watermarks\.\ufffd: invalid key: /);
  });
});

describe('decodeEvent on generated input', () => {
  const check = (raw: Buffer, origin: string | undefined = TOPIC_ORIGIN) => {
    const r = decodeEvent(raw, origin); // must not throw
    if (r.ok) {
      // Anything accepted is a clean event: it re-encodes to something that decodes to itself.
      expect(decodeEvent(encodeEvent(r.event), origin)).toEqual(r);
      if (origin !== undefined) expect(r.event.origin).toBe(origin);
    } else {
      expectRefusal(r);
    }
    return r;
  };

  it('when the message is arbitrary bytes, then decodeEvent never throws and refuses with a bounded reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (a) => {
        check(Buffer.from(a));
      }),
      fcRuns.params(500),
    );
  });

  it('when the message is arbitrary JSON, then decodeEvent never throws', () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 6 }), fc.option(fc.constantFrom('eu', 'us')), (text, origin) => {
        check(bytes(text), origin ?? undefined);
      }),
      fcRuns.params(300),
    );
  });

  const FIELDS = [...new Set([...Object.keys(goodChange), ...Object.keys(goodHeartbeat), 'policy', 'crdt'])];
  const anyJson = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    fc.string({ unit: 'binary', maxLength: 20 }), // lone surrogates
    fc.constantFrom(undefined, null, -1, 0, 1, 0.5, 2 ** 53, 'eu', 'us', {}, []),
  );

  it('when one field of a good event is replaced by arbitrary JSON, then decodeEvent never throws', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<PeerEvent>(goodChange, goodHeartbeat),
        fc.array(fc.tuple(fc.constantFrom(...FIELDS), anyJson), { minLength: 1, maxLength: 3 }),
        (base, edits) => {
          check(json(base, Object.fromEntries(edits)));
        },
      ),
      fcRuns.params(500),
    );
  });

  it('when bytes of a good event are cut, dropped or overwritten, then decodeEvent never throws', () => {
    const sources = [encodeEvent(goodChange), encodeEvent(goodHeartbeat)];
    fc.assert(
      fc.property(
        fc.constantFrom(...sources),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: -1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat()),
        (source, edits, cut) => {
          const out = [...source];
          for (const [at, b] of edits) {
            const i = at % out.length;
            if (b < 0) out.splice(i, 1);
            else out[i] = b;
          }
          const raw = Buffer.from(out.slice(0, cut === null ? undefined : cut % (out.length + 1)));
          check(raw);
        },
      ),
      fcRuns.params(500),
    );
  });
});
