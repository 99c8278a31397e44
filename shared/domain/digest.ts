/**
 * Digest anti-entropy, the pure part (docs/anti-entropy.md): which bucket an item is in, one item's
 * digest, how digests combine, which buckets of two regions may be compared and differ, and which
 * keys of a divergent bucket a region republishes.
 *
 * The same bucket and item digest are computed in PostgreSQL (`hothot_bucket`, `hothot_item_hash`
 * in migrations 0008 and 0012), where triggers keep each bucket's digest as the XOR of its items' digests:
 * XOR is its own inverse, so a write removes the old row's digest and adds the new one without
 * reading the rest of the bucket. A test checks that both sides compute the same values.
 */
import { createHash } from 'node:crypto';
import { formatItemKey } from './itemKey.js';

/** Buckets of the item table (fixed: a region and its peers must agree). */
export const DIGEST_BUCKETS = 1024;

/** Separator of the fields an item digest covers (U+001F, the unit separator). */
const SEP = '\u001f';

/** The bucket (0 … DIGEST_BUCKETS − 1) of an item: the first 16 bits of sha256("<collection>/<key>"), low 10 kept. */
export function bucketOf(collection: string, key: string): number {
  const h = createHash('sha256').update(formatItemKey({ collection, key }), 'utf8').digest();
  return h.readUInt16BE(0) & (DIGEST_BUCKETS - 1);
}

/**
 * What an item's digest covers, as PostgreSQL prints it: the version (stamp and vector) and the
 * content (tombstone flag, policy, value, policy state). `vvText`, `valueText` and `crdtText` are
 * the jsonb columns' text (`vv::text`: PostgreSQL's canonical form, the same in every region).
 */
export interface ItemDigestInput {
  readonly collection: string;
  readonly key: string;
  readonly hlcWall: number;
  readonly hlcLogical: number;
  readonly origin: string;
  readonly vvText: string;
  readonly deleted: boolean;
  readonly policy: string;
  readonly valueText: string | null;
  readonly crdtText: string | null;
}

/** One item's digest: the first 64 bits of sha256 over its fields, as a signed 64-bit integer (PostgreSQL's bigint). */
export function itemDigest(i: ItemDigestInput): bigint {
  const text = [
    i.collection,
    i.key,
    String(i.hlcWall),
    String(i.hlcLogical),
    i.origin,
    i.vvText,
    i.deleted ? 't' : 'f',
    i.policy,
    i.valueText ?? '',
    i.crdtText ?? '',
  ].join(SEP);
  return createHash('sha256').update(text, 'utf8').digest().readBigInt64BE(0);
}

/** The digest of a set of items: XOR of their digests (0 for none). Order-free, and `combine(combine(d, x), x) = d`. */
export function combineDigests(digests: Iterable<bigint>): bigint {
  let d = 0n;
  for (const x of digests) d ^= x;
  return BigInt.asIntN(64, d);
}

/** A digest as 16 lowercase hex digits (its 64 bits, two's complement). */
export function digestHex(d: bigint): string {
  return BigInt.asUintN(64, d).toString(16).padStart(16, '0');
}

/** Inverse of {@link digestHex}; undefined for anything else. */
export function parseDigestHex(s: string): bigint | undefined {
  if (!/^[0-9a-f]{16}$/.test(s)) return undefined;
  return BigInt.asIntN(64, BigInt(`0x${s}`));
}

/** A region's digest of every bucket, and how far it is known to be complete. */
export interface RegionDigest {
  /** Per bucket (DIGEST_BUCKETS entries): the bucket's digest. */
  readonly digests: readonly bigint[];
  /** Per bucket: the greatest stamp wall (ms) ever written into it (never lowered). */
  readonly maxWalls: readonly number[];
  /**
   * The region held every write (of every origin) stamped below this wall (ms) when the digest was
   * read: its own writes below its safe-before mark, each peer's below its applied watermark.
   */
  readonly settledBefore: number;
}

export interface DigestComparison {
  /** Buckets both regions had settled (comparable). */
  readonly compared: readonly number[];
  /** Comparable buckets whose digests differ: divergent. */
  readonly divergent: readonly number[];
  /** Buckets with a write one of the regions may not have had yet: not compared this time. */
  readonly unsettled: number;
}

/**
 * Compare two regions' digests, bucket by bucket. A bucket is comparable when every write either
 * region has seen in it is below what the other had settled (`maxWalls[b] < other.settledBefore`
 * both ways): then both hold the same set of writes for it, so — the stored state being the join of
 * those writes — equal digests are expected, and a difference is divergence, not replication in
 * flight. Buckets written since are skipped until replication covers them.
 */
export function compareDigests(a: RegionDigest, b: RegionDigest): DigestComparison {
  const compared: number[] = [];
  const divergent: number[] = [];
  let unsettled = 0;
  const n = Math.min(a.digests.length, b.digests.length);
  for (let bucket = 0; bucket < n; bucket++) {
    const aWall = a.maxWalls[bucket] ?? Number.POSITIVE_INFINITY;
    const bWall = b.maxWalls[bucket] ?? Number.POSITIVE_INFINITY;
    if (aWall >= b.settledBefore || bWall >= a.settledBefore) {
      unsettled += 1;
      continue;
    }
    compared.push(bucket);
    if (a.digests[bucket] !== b.digests[bucket]) divergent.push(bucket);
  }
  return { compared, divergent, unsettled };
}

/** One item of a bucket, as a region lists it to narrow a divergent bucket down to keys. */
export interface KeyDigest {
  readonly collection: string;
  readonly key: string;
  readonly digest: bigint;
}

/** One of this region's items: its digest, and whether it is a tombstone stamped at `wall`. */
export interface OwnKeyDigest extends KeyDigest {
  readonly deleted: boolean;
  readonly wall: number;
}

/**
 * The keys of a divergent bucket whose version this region republishes, given the peer's list of
 * the same bucket: those the peer does not have, or has with another digest. A tombstone the peer
 * lacks is left out when it is stamped below the peer's tombstone-GC horizon: the peer collected
 * it, which is what it would do with it anyway. Keys only the peer has are the peer's to
 * republish (it runs the same function on this region's list).
 */
export function keysToRepublish(
  own: readonly OwnKeyDigest[],
  peer: readonly KeyDigest[],
  peerGcHorizonMs: number,
): OwnKeyDigest[] {
  const theirs = new Map<string, bigint>();
  for (const k of peer) theirs.set(formatItemKey(k), k.digest);
  return own.filter((k) => {
    const d = theirs.get(formatItemKey(k));
    if (d === undefined) return !(k.deleted && k.wall < peerGcHorizonMs);
    return d !== k.digest;
  });
}
