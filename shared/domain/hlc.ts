/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014).
 *
 * A stamp is `(wall ms, logical counter, origin region)`. Stamps have one total order — wall, then
 * logical, then region id — so every region picks the same winner for the same pair of versions.
 * The clock never goes backwards, advances past every stamp it observes, and refuses (throws
 * {@link ClockSkewError}) a peer stamp further ahead of its physical clock than `maxSkewMs`.
 * Pure: no I/O; the physical clock is injected.
 */
import { REGION_NAME_SOURCE } from './regionName.js';

export interface HlcStamp {
  /** Milliseconds since the Unix epoch, as seen by the HLC (≥ the physical clock that stamped it). */
  readonly wall: number;
  /** Counter that orders stamps sharing one `wall`. */
  readonly logical: number;
  /** Region that made the stamp; the last tie-breaker of the total order. */
  readonly region: string;
}

/** Total order of stamps: wall, then logical, then region id (code-unit order). */
export function compareStamps(a: HlcStamp, b: HlcStamp): -1 | 0 | 1 {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  if (a.region !== b.region) return a.region < b.region ? -1 : 1;
  return 0;
}

/** The later of two stamps under {@link compareStamps}. */
export function maxStamp(a: HlcStamp, b: HlcStamp): HlcStamp {
  return compareStamps(a, b) >= 0 ? a : b;
}

/** Text form used in ETags, logs and the API: `<wall>.<logical>.<region>`. */
export function formatStamp(s: HlcStamp): string {
  return `${s.wall}.${s.logical}.${s.region}`;
}

const STAMP_PATTERN = new RegExp(`^(\\d{1,15})\\.(\\d{1,9})\\.(${REGION_NAME_SOURCE})$`);

/** Inverse of {@link formatStamp}; `undefined` when `text` is not a stamp. */
export function parseStamp(text: string): HlcStamp | undefined {
  const m = STAMP_PATTERN.exec(text);
  if (!m) return undefined;
  return { wall: Number(m[1]), logical: Number(m[2]), region: m[3]! };
}

export class ClockSkewError extends Error {
  override readonly name = 'ClockSkewError';
  /** The same event is as far ahead next time: dead-lettered, not retried. */
  readonly retryable = false;
  constructor(
    readonly stamp: HlcStamp,
    readonly physicalMs: number,
    readonly maxSkewMs: number,
  ) {
    super(
      `stamp ${formatStamp(stamp)} from region ${stamp.region} is ${stamp.wall - physicalMs} ms ahead of ` +
        `this region's clock (maximum skew ${maxSkewMs} ms): check NTP on both hosts`,
    );
  }
}

export interface HybridLogicalClockOptions {
  /** Physical clock in ms. @default Date.now */
  readonly physicalNow?: () => number;
  /** Largest accepted lead of an observed stamp over the physical clock. @default 60_000 */
  readonly maxSkewMs?: number;
}

export class HybridLogicalClock {
  private wall = 0;
  private logical = 0;
  private readonly physicalNow: () => number;
  readonly maxSkewMs: number;

  constructor(
    readonly region: string,
    options: HybridLogicalClockOptions = {},
  ) {
    this.physicalNow = options.physicalNow ?? Date.now;
    this.maxSkewMs = options.maxSkewMs ?? 60_000;
  }

  /** Stamp a local event. Strictly greater than every stamp issued or observed before. */
  now(): HlcStamp {
    const physical = this.physicalNow();
    if (physical > this.wall) {
      this.wall = physical;
      this.logical = 0;
    } else {
      this.logical += 1;
    }
    return { wall: this.wall, logical: this.logical, region: this.region };
  }

  /**
   * Advance past `stamp` (a peer's, or one read from storage). Throws {@link ClockSkewError}, and
   * leaves the clock unchanged, when `stamp` is more than `maxSkewMs` ahead of the physical clock.
   */
  observe(stamp: HlcStamp): void {
    const physical = this.physicalNow();
    if (stamp.wall - physical > this.maxSkewMs) throw new ClockSkewError(stamp, physical, this.maxSkewMs);
    if (stamp.wall > this.wall || (stamp.wall === this.wall && stamp.logical > this.logical)) {
      this.wall = stamp.wall;
      this.logical = stamp.logical;
    }
  }

  /** The last stamp issued or observed (region = this clock's). */
  peek(): HlcStamp {
    return { wall: this.wall, logical: this.logical, region: this.region };
  }
}
