import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatStamp, parseStamp, type HlcStamp } from '../../shared/domain/hlc.js';
import { MAX_TEXT_LOGICAL, MAX_TEXT_WALL, REGION_PATTERN, regionArb } from './support/arbitraries.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

/** Stamps whose text form is within what `parseStamp` accepts (15-digit wall, 9-digit counter). */
const textStampArb: fc.Arbitrary<HlcStamp> = fc.record({
  wall: fc.oneof(fc.constantFrom(0, 1, MAX_TEXT_WALL), fc.integer({ min: 0, max: MAX_TEXT_WALL })),
  logical: fc.oneof(fc.constantFrom(0, 1, MAX_TEXT_LOGICAL), fc.integer({ min: 0, max: MAX_TEXT_LOGICAL })),
  region: fc.oneof(regionArb, fc.stringMatching(REGION_PATTERN), fc.constant('a'.repeat(32))),
});

/** Characters that never occur in a stamp's text form. */
const junkCharArb = fc.constantFrom(
  ' ',
  '\n',
  '\t',
  '_',
  '/',
  '+',
  ':',
  'A',
  'Z',
  'é',
  '٣',
  '\u0000',
  '\u2028',
  'E',
  ',',
);

describe('formatStamp / parseStamp', () => {
  it('when a stamp is formatted and parsed back, then the same stamp comes out', () => {
    fc.assert(
      fc.property(textStampArb, (s) => {
        expect(parseStamp(formatStamp(s))).toEqual(s);
      }),
      fcRuns.params(200),
    );
  });

  it('when a stamp is formatted, then the text is <wall>.<logical>.<region> and formatting the parse gives the same text', () => {
    fc.assert(
      fc.property(textStampArb, (s) => {
        const text = formatStamp(s);
        expect(text).toBe(`${s.wall}.${s.logical}.${s.region}`);
        expect(formatStamp(parseStamp(text)!)).toBe(text);
      }),
      fcRuns.params(150),
    );
  });

  it('when arbitrary text is parsed, then the result is undefined or a stamp whose text parses to itself', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: fc.constantFrom(...'0123456789.-az'), maxLength: 20 }),
          fc.stringMatching(/^\d{0,17}\.\d{0,11}\.[a-z0-9-]{0,34}$/),
        ),
        (text) => {
          const s = parseStamp(text);
          if (s === undefined) return;
          expect(Number.isSafeInteger(s.wall) && s.wall >= 0).toBe(true);
          expect(Number.isSafeInteger(s.logical) && s.logical >= 0).toBe(true);
          expect(s.region).toMatch(REGION_PATTERN);
          expect(parseStamp(formatStamp(s))).toEqual(s);
        },
      ),
      fcRuns.params(200),
    );
  });

  it('when a character that never appears in a stamp is inserted anywhere into a valid stamp text, then parseStamp rejects it', () => {
    fc.assert(
      fc.property(textStampArb, junkCharArb, fc.nat(), (s, junk, at) => {
        const text = formatStamp(s);
        const i = at % (text.length + 1);
        expect(parseStamp(text.slice(0, i) + junk + text.slice(i))).toBeUndefined();
      }),
      fcRuns.params(200),
    );
  });

  it('when a valid stamp text loses or gains a separator, then parseStamp rejects it', () => {
    fc.assert(
      fc.property(textStampArb, fc.boolean(), (s, drop) => {
        const text = formatStamp(s);
        const broken = drop ? text.replace('.', '') : text.replace('.', '..');
        expect(parseStamp(broken)).toBeUndefined();
        expect(parseStamp(`${text}.`)).toBeUndefined();
        expect(parseStamp(`.${text}`)).toBeUndefined();
      }),
      fcRuns.params(150),
    );
  });

  it.each([
    ['empty', ''],
    ['two parts', '1.2'],
    ['empty region', '1.2.'],
    ['empty wall', '.2.us'],
    ['empty logical', '1..us'],
    ['upper-case region', '1.2.US'],
    ['region starting with a digit', '1.2.9us'],
    ['region starting with a dash', '1.2.-us'],
    ['region with underscore', '1.2.us_east'],
    ['region of 33 characters', `1.2.${'a'.repeat(33)}`],
    ['negative wall', '-1.2.us'],
    ['negative logical', '1.-2.us'],
    ['exponent', '1e3.0.us'],
    ['fraction', '1.5.0.us'],
    ['hex wall', '0x1.0.us'],
    ['16-digit wall', `${'1'.repeat(16)}.0.us`],
    ['10-digit logical', `1.${'1'.repeat(10)}.us`],
    ['leading space', ' 1.2.us'],
    ['trailing space', '1.2.us '],
    ['trailing newline', '1.2.us\n'],
    ['four parts', '1.2.us.eu'],
    ['full-width digits', '１.2.us'],
    ['arabic-indic digits', '٣.2.us'],
    ['JSON', '{"wall":1,"logical":2,"region":"us"}'],
  ])('when the text is junk (%s), then parseStamp returns undefined', (_name, text) => {
    expect(parseStamp(text)).toBeUndefined();
  });

  it('when the text is at the limits, then parseStamp accepts it', () => {
    expect(parseStamp(`${MAX_TEXT_WALL}.${MAX_TEXT_LOGICAL}.${'z'.repeat(32)}`)).toEqual({
      wall: MAX_TEXT_WALL,
      logical: MAX_TEXT_LOGICAL,
      region: 'z'.repeat(32),
    });
    expect(parseStamp('0.0.a')).toEqual({ wall: 0, logical: 0, region: 'a' });
    expect(parseStamp('1700000000000.3.us-east-1')).toEqual({
      wall: 1_700_000_000_000,
      logical: 3,
      region: 'us-east-1',
    });
  });
});
