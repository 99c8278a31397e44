/**
 * What a region id is, in one place: the config, the lab, event keys, envelopes, session tokens and
 * HLC stamps all take the same rule. Pure.
 */

/** The rule as a pattern source, for composing into larger patterns (an HLC stamp ends with one). */
export const REGION_NAME_SOURCE = '[a-z][a-z0-9-]{0,31}';

/** A whole string that is a region id. */
export const REGION_NAME_PATTERN = new RegExp(`^${REGION_NAME_SOURCE}$`);

/** The rule in words, for error messages. */
export const REGION_NAME_HINT =
  'lower-case letters, digits and dashes, starting with a letter, at most 32 characters';

export function isRegionName(s: unknown): s is string {
  return typeof s === 'string' && REGION_NAME_PATTERN.test(s);
}
