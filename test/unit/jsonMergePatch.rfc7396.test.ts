import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { applyJsonMergePatch } from '../../shared/domain/jsonMergePatch.js';
import { isJsonObject } from '../../shared/domain/jsonObject.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

/** RFC 7396, Appendix A: original, patch, result. Inputs are parsed JSON text, as a request body is. */
const APPENDIX_A: readonly [string, string, string][] = [
  ['{"a":"b"}', '{"a":"c"}', '{"a":"c"}'],
  ['{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'],
  ['{"a":"b"}', '{"a":null}', '{}'],
  ['{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'],
  ['{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'],
  ['{"a":"c"}', '{"a":["b"]}', '{"a":["b"]}'],
  ['{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'],
  ['{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'],
  ['["a","b"]', '["c","d"]', '["c","d"]'],
  ['{"a":"b"}', '["c"]', '["c"]'],
  ['{"a":"foo"}', 'null', 'null'],
  ['{"a":"foo"}', '"bar"', '"bar"'],
  ['{"e":null}', '{"a":1}', '{"e":null,"a":1}'],
  ['[1,2]', '{"a":"b","c":null}', '{"a":"b"}'],
  ['{}', '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'],
];

describe('applyJsonMergePatch (RFC 7396)', () => {
  it.each(APPENDIX_A)(
    'when %s is patched with %s (RFC 7396 Appendix A), then the result is %s',
    (original, patch, result) => {
      expect(applyJsonMergePatch(JSON.parse(original), JSON.parse(patch))).toEqual(JSON.parse(result));
    },
  );

  it('when the Section 1 example is applied, then "a" is replaced and "c"."f" is removed, the rest untouched', () => {
    const target = { a: 'b', c: { d: 'e', f: 'g' } };
    expect(applyJsonMergePatch(target, { a: 'z', c: { f: null } })).toEqual({ a: 'z', c: { d: 'e' } });
  });

  it('when the Section 3 example is applied, then the result is the one the RFC shows', () => {
    const target = {
      title: 'Goodbye!',
      author: { givenName: 'John', familyName: 'Doe' },
      tags: ['example', 'sample'],
      content: 'This will be unchanged',
    };
    const patch = {
      title: 'Hello!',
      phoneNumber: '+01-123-456-7890',
      author: { familyName: null },
      tags: ['example'],
    };
    expect(applyJsonMergePatch(target, patch)).toEqual({
      title: 'Hello!',
      author: { givenName: 'John' },
      tags: ['example'],
      content: 'This will be unchanged',
      phoneNumber: '+01-123-456-7890',
    });
  });

  it('when the target is missing (undefined), then an object patch applies to an empty object', () => {
    expect(applyJsonMergePatch(undefined, { a: 1, b: null, c: { d: null, e: 2 } })).toEqual({
      a: 1,
      c: { e: 2 },
    });
  });

  it('when a member is named "__proto__", then it is set, replaced and removed like any other member', () => {
    // A JSON body may name any member; JSON.parse makes "__proto__" an own property.
    const target = JSON.parse('{"__proto__":{"x":1,"y":2},"a":1}') as unknown;
    const patched = applyJsonMergePatch(target, JSON.parse('{"__proto__":{"x":null,"z":3}}'));
    expect(JSON.stringify(patched)).toBe('{"__proto__":{"y":2,"z":3},"a":1}');
    expect(Object.getPrototypeOf(patched)).toBe(Object.prototype);
    const added = applyJsonMergePatch({}, JSON.parse('{"__proto__":5}'));
    expect(JSON.stringify(added)).toBe('{"__proto__":5}');
    expect(JSON.stringify(applyJsonMergePatch(target, JSON.parse('{"__proto__":null}')))).toBe('{"a":1}');
  });
});

const plain = { noNullPrototype: true } as const;
const jsonArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.integer(),
    fc.string({ maxLength: 3 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), tie('value'), { maxKeys: 4, ...plain }),
  ),
})).value;

/** Drops every `null` member (what a merge patch removes), recursively. */
function withoutNulls(v: unknown): unknown {
  if (!isJsonObject(v)) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== null)
      .map(([k, x]) => [k, withoutNulls(x)]),
  );
}

describe('applyJsonMergePatch (properties)', () => {
  it('when the same patch is applied twice, then the second application changes nothing (idempotent)', () => {
    fc.assert(
      fc.property(jsonArb, jsonArb, (target, patch) => {
        const once = applyJsonMergePatch(target, patch);
        expect(applyJsonMergePatch(once, patch)).toEqual(once);
      }),
      fcRuns.params(500),
    );
  });

  it('when a patch is applied, then neither the target nor the patch is modified', () => {
    fc.assert(
      fc.property(jsonArb, jsonArb, (target, patch) => {
        const t = structuredClone(target);
        const p = structuredClone(patch);
        applyJsonMergePatch(target, patch);
        expect(target).toEqual(t);
        expect(patch).toEqual(p);
      }),
      fcRuns.params(500),
    );
  });

  it('when an object patch is applied to anything but an object, then the result is the patch without its null members', () => {
    fc.assert(
      fc.property(
        jsonArb.filter((t) => !isJsonObject(t)),
        jsonArb.filter(isJsonObject),
        (target, patch) => {
          expect(applyJsonMergePatch(target, patch)).toEqual(withoutNulls(patch));
        },
      ),
      fcRuns.params(300),
    );
  });

  it('when a patch is applied, then every member the patch names is set to its patched value or removed, and every other member is kept', () => {
    fc.assert(
      fc.property(jsonArb.filter(isJsonObject), jsonArb.filter(isJsonObject), (target, patch) => {
        const out = applyJsonMergePatch(target, patch) as Record<string, unknown>;
        for (const [k, v] of Object.entries(patch)) {
          if (v === null) expect(Object.hasOwn(out, k)).toBe(false);
          else expect(out[k]).toEqual(applyJsonMergePatch(target[k], v));
        }
        for (const [k, v] of Object.entries(target)) if (!Object.hasOwn(patch, k)) expect(out[k]).toEqual(v);
      }),
      fcRuns.params(300),
    );
  });
});
