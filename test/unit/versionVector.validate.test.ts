import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isVersionVector } from '../../shared/domain/versionVector.js';
import { regionArb, vectorArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const badCountArb = fc.oneof(
  fc.constant(-1),
  fc.integer({ max: -1 }),
  fc.double({ noInteger: true }),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER + 1, 2 ** 64),
  fc.string(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
  fc.constant({}),
  fc.constant([1]),
);

describe('isVersionVector', () => {
  it('when a value is a plain object of region → non-negative safe integer (zeros included), then it is a vector', () => {
    fc.assert(
      fc.property(vectorArb, (v) => {
        expect(isVersionVector(v)).toBe(true);
        expect(isVersionVector(JSON.parse(JSON.stringify(v)))).toBe(true);
      }),
      fcRuns.params(150),
    );
  });

  it('when any count is negative, fractional, non-finite, unsafe or not a number, then it is not a vector', () => {
    fc.assert(
      fc.property(vectorArb, regionArb, badCountArb, (v, r, bad) => {
        expect(isVersionVector({ ...v, [r]: bad })).toBe(false);
      }),
      fcRuns.params(150),
    );
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a number', 1],
    ['a string', '{"us":1}'],
    ['an array', [1, 2]],
    ['an empty array', []],
    ['a boolean', true],
    ['a vector with a count of -1', { us: 1, eu: -1 }],
    ['a vector with a fractional count', { us: 1.5 }],
  ])('when the value is %s, then it is not a vector', (_name, v) => {
    expect(isVersionVector(v)).toBe(false);
  });

  it('when the value is an empty object, then it is the empty vector', () => {
    expect(isVersionVector({})).toBe(true);
  });
});
