import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  CRDT_EXTRA_DEPTH,
  MAX_CONTAINER_ENTRIES,
  MAX_OBJECT_KEY_LENGTH,
  MAX_VALUE_DEPTH,
  MAX_VALUE_NODES,
  findReplicatedValueProblem,
  findValueProblem,
  isStorableText,
  type ValueLimits,
} from '../../shared/domain/itemRules.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

/** `[[[…]]]`: `levels` nested arrays, built without recursion. */
function nestedArrays(levels: number, innermost: unknown[] = []): unknown[] {
  let v = innermost;
  for (let i = 1; i < levels; i++) v = [v];
  return v;
}

/** `{"a":{"a":…{}}}`: `levels` nested objects. */
function nestedObjects(levels: number): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
}

function objectOf(n: number, value: (i: number) => unknown = () => 1): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) o[`k${i}`] = value(i);
  return o;
}

describe('findValueProblem: depth', () => {
  it(`when arrays are nested exactly ${MAX_VALUE_DEPTH} levels deep, then the value is accepted`, () => {
    expect(findValueProblem(nestedArrays(MAX_VALUE_DEPTH))).toBeUndefined();
    expect(findValueProblem(nestedArrays(MAX_VALUE_DEPTH, [1, 'x', null, true]))).toBeUndefined();
    expect(findValueProblem(JSON.parse('['.repeat(64) + ']'.repeat(64)))).toBeUndefined();
  });

  it(`when arrays are nested ${MAX_VALUE_DEPTH + 1} levels deep, then the problem names the depth limit`, () => {
    expect(findValueProblem(nestedArrays(MAX_VALUE_DEPTH + 1))).toMatch(
      /^the value is nested deeper than 64 levels \(at value(\[0\]){64}\)$/,
    );
  });

  it(`when objects are nested ${MAX_VALUE_DEPTH} levels deep, then accepted; one more, then refused`, () => {
    expect(findValueProblem(nestedObjects(MAX_VALUE_DEPTH))).toBeUndefined();
    expect(findValueProblem(nestedObjects(MAX_VALUE_DEPTH + 1))).toMatch(
      /^the value is nested deeper than 64 levels \(at value(\.a){64}\)$/,
    );
  });

  it('when scalars sit inside the deepest allowed container, then they do not count as a level', () => {
    expect(findValueProblem(nestedObjects(MAX_VALUE_DEPTH - 1))).toBeUndefined();
    expect(findValueProblem(nestedArrays(MAX_VALUE_DEPTH, [{}]))).toMatch(/nested deeper than 64/);
    expect(findValueProblem(nestedArrays(MAX_VALUE_DEPTH, [{ a: 1 }]))).toMatch(/nested deeper than 64/);
  });

  it('when a value is nested 1,000,000 levels deep, then the walk neither throws nor recurses', () => {
    const deep = nestedArrays(1_000_000);
    expect(() => findValueProblem(deep)).not.toThrow();
    expect(findValueProblem(deep)).toMatch(/nested deeper than 64 levels/);
    // With no depth limit the whole million levels are walked, still without recursion.
    expect(findValueProblem(deep, { maxDepth: Infinity, maxNodes: Infinity })).toBeUndefined();
    const deepObject = JSON.parse('{"a":'.repeat(1_000_000) + '"\\u0000"' + '}'.repeat(1_000_000)) as unknown;
    expect(findValueProblem(deepObject, { maxDepth: Infinity, maxNodes: Infinity })).toMatch(/NUL character/);
  });

  it('when the message names a deep path, then it is cut to a bounded length', () => {
    let v: unknown = {};
    for (let i = 0; i < 100; i++) v = { ['k'.repeat(50)]: v };
    const message = findValueProblem(v)!;
    expect(message).toMatch(/nested deeper than 64 levels/);
    expect(message.length).toBeLessThan(400);
  });
});

describe('findValueProblem: width and size', () => {
  it(`when an object has ${MAX_CONTAINER_ENTRIES} members, then accepted; one more, then refused`, () => {
    expect(findValueProblem(objectOf(MAX_CONTAINER_ENTRIES))).toBeUndefined();
    expect(findValueProblem({ inner: objectOf(MAX_CONTAINER_ENTRIES + 1) })).toBe(
      `the value has an object of ${MAX_CONTAINER_ENTRIES + 1} members, more than ${MAX_CONTAINER_ENTRIES} (at value.inner)`,
    );
  });

  it(`when an array has ${MAX_CONTAINER_ENTRIES} elements, then accepted; one more, then refused`, () => {
    expect(findValueProblem(new Array<number>(MAX_CONTAINER_ENTRIES).fill(0))).toBeUndefined();
    expect(findValueProblem([new Array<number>(MAX_CONTAINER_ENTRIES + 1).fill(0)])).toBe(
      `the value has an array of ${MAX_CONTAINER_ENTRIES + 1} elements, more than ${MAX_CONTAINER_ENTRIES} (at value[0])`,
    );
  });

  it(`when a value has ${MAX_VALUE_NODES} nodes in all, then accepted; one more, then refused`, () => {
    // The outer array and its 10 arrays are 11 nodes; 9 arrays of 9,999 and one of 9,998 zeros fill it up.
    const rows = (last: number) =>
      Array.from({ length: 10 }, (_, i) => new Array<number>(i === 9 ? last : 9_999).fill(0));
    expect(1 + 10 + 9 * 9_999 + 9_998).toBe(MAX_VALUE_NODES);
    expect(findValueProblem(rows(9_998))).toBeUndefined();
    expect(findValueProblem(rows(9_999))).toMatch(/^the value has more than 100000 nodes/);
  });

  it(`when an object key has ${MAX_OBJECT_KEY_LENGTH} characters, then accepted; one more, then refused`, () => {
    expect(findValueProblem({ ['k'.repeat(MAX_OBJECT_KEY_LENGTH)]: 1 })).toBeUndefined();
    const message = findValueProblem({ a: [{ ['k'.repeat(MAX_OBJECT_KEY_LENGTH + 1)]: 1 }] })!;
    expect(message).toMatch(
      /^the value has an object key of 1025 characters, more than 1024 \(at value\.a\[0\]/,
    );
    expect(message.length).toBeLessThan(300);
  });

  it('when limits are lifted, then wide values pass', () => {
    const unbounded: Partial<ValueLimits> = {
      maxEntries: Infinity,
      maxNodes: Infinity,
      maxKeyLength: Infinity,
    };
    expect(findValueProblem(objectOf(20_000), unbounded)).toBeUndefined();
    expect(
      findValueProblem({ ['k'.repeat(5000)]: new Array<number>(200_000).fill(1) }, unbounded),
    ).toBeUndefined();
  });
});

describe('findValueProblem: text, numbers, types', () => {
  it.each([
    [
      'a NUL in a string',
      { a: ['x', 'y\u0000z'] },
      /contains a string with a NUL character .* \(at value\.a\[1\]\)$/,
    ],
    [
      'a NUL in a key',
      { a: { 'b\u0000c': 1 } },
      /has an object key with a NUL character .* \(at value\.a\["b\\u0000c"\]\)$/,
    ],
    [
      'a lone high surrogate in a string',
      ['\ud800'],
      /contains a string with a lone UTF-16 surrogate, .*\(at value\[0\]\)$/,
    ],
    ['a lone low surrogate in a key', { '\udc00x': true }, /has an object key with a lone UTF-16 surrogate/],
    ['a reversed surrogate pair', { a: '\udc00\ud800' }, /lone UTF-16 surrogate/],
    ['a NUL at the top level', 'a\u0000', /^the value contains a string with a NUL character/],
    [
      '1e400 as JSON.parse reads it',
      JSON.parse('{"n":1e400}'),
      /number beyond the range of a 64-bit float .*\(at value\.n\)$/,
    ],
    ['-1e400', JSON.parse('[-1e400]'), /number beyond the range/],
    ['NaN', { n: NaN }, /NaN, which is not JSON/],
    ['undefined', { u: undefined }, /undefined, which is not JSON/],
    ['a function', { f: () => 1 }, /a function, which is not JSON/],
    ['a bigint', [1n], /a bigint, which is not JSON/],
    ['a Map', { m: new Map() }, /an object that is not JSON/],
    ['a Date', new Date(0), /an object that is not JSON/],
  ])('when the value has %s, then the problem names it', (_name, value, message) => {
    expect(findValueProblem(value)).toMatch(message);
  });

  it.each([
    ['a surrogate pair', { '😀': '😀' }],
    ['-0', JSON.parse('-0')],
    ['2^53 + 1, rounded', JSON.parse('9007199254740993')],
    ['the largest double', JSON.parse('1.7976931348623157e308')],
    ['an underflow to 0', JSON.parse('1e-400')],
    ['control characters other than NUL', { '\u0001': '\u001f\u007f' }],
    ['U+FFFD (what invalid UTF-8 decodes to)', '\ufffd'],
    ['an empty key', { '': '' }],
    ['an object with a null prototype', Object.create(null) as object],
  ])('when the value has %s, then it is accepted', (_name, value) => {
    expect(findValueProblem(value)).toBeUndefined();
  });

  it('when __proto__ and constructor are members, then they are walked as ordinary keys', () => {
    const v = JSON.parse('{"__proto__":{"x":"\\u0000"},"constructor":{"prototype":1}}') as object;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(findValueProblem(v)).toMatch(/NUL character .*\(at value\.__proto__\.x\)$/);
    expect(findValueProblem(JSON.parse('{"__proto__":{"polluted":true},"constructor":1}'))).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('when isStorableText is asked, then it refuses NUL and lone surrogates only', () => {
    expect(isStorableText('plain 😀 \u0001')).toBe(true);
    expect(isStorableText('a\u0000')).toBe(false);
    expect(isStorableText('\ud83d')).toBe(false);
  });
});

describe('findReplicatedValueProblem (a peer event)', () => {
  it('when a fields state holds a value at the depth limit, then its extra levels are allowed', () => {
    const value = { f: nestedObjects(MAX_VALUE_DEPTH - 1) };
    const crdt = { fields: { f: { stamp: {}, dot: {}, value: value.f } } };
    expect(findValueProblem(crdt)).toMatch(/nested deeper/);
    expect(findReplicatedValueProblem({ value, crdt })).toBeUndefined();
    expect(findReplicatedValueProblem({ value: nestedArrays(MAX_VALUE_DEPTH + 1) })).toMatch(
      /^value is nested deeper than 64 levels/,
    );
    expect(
      findReplicatedValueProblem({ value, crdt: nestedArrays(MAX_VALUE_DEPTH + CRDT_EXTRA_DEPTH + 1) }),
    ).toMatch(/^crdt is nested deeper than 67 levels/);
  });

  it('when a replicated value is wider than a request may be, then it still replicates', () => {
    const wide = objectOf(MAX_CONTAINER_ENTRIES * 3);
    expect(findReplicatedValueProblem({ value: wide, crdt: { fields: wide } })).toBeUndefined();
    expect(findReplicatedValueProblem({ value: { ['k'.repeat(5000)]: 1 } })).toBeUndefined();
  });

  it('when a replicated value has bad text or a tombstone has no value, then only the text is a problem', () => {
    expect(findReplicatedValueProblem({ value: { a: '\u0000' } })).toMatch(
      /^value contains a string with a NUL/,
    );
    expect(findReplicatedValueProblem({ value: 1, crdt: { counters: { '\ud800': {} } } })).toMatch(
      /^crdt has an object key with a lone UTF-16 surrogate/,
    );
    expect(findReplicatedValueProblem({ value: null })).toBeUndefined();
    expect(findReplicatedValueProblem({})).toBeUndefined();
    expect(findReplicatedValueProblem(null)).toBeUndefined();
  });
});

// ---- Properties: the walker against a recursive reference on small values and small limits ----

const SMALL: ValueLimits = { maxDepth: 3, maxEntries: 4, maxNodes: 12, maxKeyLength: 3 };

const textArb = fc.string({
  unit: fc.constantFrom('a', 'b', 'é', '\u0000', '\ud800', '\udc00', '😀', '_', '"'),
  maxLength: 5,
});
const keyArb = fc.oneof(textArb, fc.constantFrom('__proto__', 'constructor', 'toString', 'prototype'));
const scalarArb = fc.oneof(
  textArb,
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(Infinity, -Infinity, -0, Number.MAX_VALUE),
);
const { value: jsonishArb } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarArb,
    fc.array(tie('value'), { maxLength: 6 }),
    fc
      .array(fc.tuple(keyArb, tie('value')), { maxLength: 6 })
      // Built like JSON.parse builds it: own data properties, even for "__proto__".
      .map((entries) => {
        const o: Record<string, unknown> = {};
        for (const [k, v] of entries)
          Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        return o;
      }),
  ),
}));

/** The obvious recursive reading of the rules; fine for the small values generated here. */
function referenceViolates(v: unknown, limits: ValueLimits): boolean {
  let nodes = 0;
  const bad = (x: unknown, level: number): boolean => {
    nodes++;
    if (typeof x === 'string') return !isStorableText(x);
    if (typeof x === 'number') return !Number.isFinite(x);
    if (typeof x !== 'object' || x === null) return false;
    if (level + 1 > limits.maxDepth) return true;
    const entries = Array.isArray(x) ? x.map((e, i) => [String(i), e] as const) : Object.entries(x);
    if (entries.length > limits.maxEntries) return true;
    for (const [k, e] of entries) {
      if (!Array.isArray(x) && (k.length > limits.maxKeyLength || !isStorableText(k))) return true;
      if (bad(e, level + 1)) return true;
    }
    return false;
  };
  return bad(v, 0) || nodes > limits.maxNodes;
}

describe('findValueProblem: properties', () => {
  it('when any small JSON-like value is walked, then it finds a problem exactly when the reference does', () => {
    fc.assert(
      fc.property(jsonishArb, (v) => {
        const problem = findValueProblem(v, SMALL);
        expect(problem !== undefined).toBe(referenceViolates(v, SMALL));
        if (problem !== undefined) expect(problem).toMatch(/^the value /);
      }),
      fcRuns.params(2000),
    );
  });

  it('when a value has no problem under limits, then lifting a limit finds none either (monotone)', () => {
    fc.assert(
      fc.property(
        jsonishArb,
        fc.constantFrom<keyof ValueLimits>('maxDepth', 'maxEntries', 'maxNodes', 'maxKeyLength'),
        (v, limit) => {
          fc.pre(findValueProblem(v, SMALL) === undefined);
          expect(findValueProblem(v, { ...SMALL, [limit]: SMALL[limit] + 1 })).toBeUndefined();
        },
      ),
      fcRuns.params(500),
    );
  });

  it('when a clean value is nested n levels deep, then it is accepted exactly when n ≤ the limit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.constantFrom('array', 'object'), (n, kind) => {
        const v = kind === 'array' ? nestedArrays(n) : nestedObjects(n);
        const problem = findValueProblem(v);
        if (n <= MAX_VALUE_DEPTH) expect(problem).toBeUndefined();
        else expect(problem).toMatch(/nested deeper than 64 levels/);
      }),
      fcRuns.params(300),
    );
  });

  it('when any JSON text is parsed, then checking it never throws and JSON round trips what it accepts', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const parsed: unknown = JSON.parse(JSON.stringify(v));
        const problem = findValueProblem(parsed);
        if (problem === undefined) expect(JSON.parse(JSON.stringify(parsed))).toEqual(parsed);
      }),
      fcRuns.params(500),
    );
  });
});
