/**
 * Data access for digest anti-entropy (migration 0008): this region's bucket digests (`item_digest`,
 * kept by triggers on `item`), the items of one bucket with their digests, rows changed by hand
 * (`item_suspect`), and what peers sent (`peer_digest`, `peer_bucket_keys`).
 */
import { DIGEST_BUCKETS, type KeyDigest, type OwnKeyDigest } from '../../domain/digest.js';
import { formatItemKey } from '../../domain/itemKey.js';
import type { VersionVector } from '../../domain/versionVector.js';
import type { Queryable } from '../pool.js';
import type { ItemKey } from './item.js';

export interface OwnDigest {
  /** Per bucket: the digest (XOR of its items' digests). */
  readonly digests: bigint[];
  /** Per bucket: how many items (tombstones included). */
  readonly items: number[];
  /** Per bucket: the greatest stamp wall written into it (ms). */
  readonly maxWalls: number[];
}

/** This region's digest of every bucket: DIGEST_BUCKETS × 16 stripes rows at most, no item read. */
export async function readOwnDigest(q: Queryable): Promise<OwnDigest> {
  const { rows } = await q.query<{ bucket: number; digest: string; items: string; maxWall: string }>({
    name: 'digest.readOwn',
    text: `SELECT bucket, bit_xor(digest)::text AS digest, sum(items)::text AS items, max(max_wall)::text AS "maxWall"
             FROM item_digest GROUP BY bucket`,
  });
  const out: OwnDigest = {
    digests: Array.from({ length: DIGEST_BUCKETS }, () => 0n),
    items: Array.from({ length: DIGEST_BUCKETS }, () => 0),
    maxWalls: Array.from({ length: DIGEST_BUCKETS }, () => 0),
  };
  for (const r of rows) {
    out.digests[r.bucket] = BigInt(r.digest);
    out.items[r.bucket] = Number(r.items);
    out.maxWalls[r.bucket] = Number(r.maxWall);
  }
  return out;
}

export interface BucketItem extends OwnKeyDigest {
  readonly hlcLogical: number;
  readonly origin: string;
}

/** Every item (tombstones included) of one bucket, with its digest, by the bucket index. */
export async function readBucketItems(q: Queryable, bucket: number): Promise<BucketItem[]> {
  const { rows } = await q.query<{
    collection: string;
    key: string;
    digest: string;
    deleted: boolean;
    wall: string;
    hlcLogical: number;
    origin: string;
  }>({
    name: 'digest.bucketItems',
    text: `SELECT collection, key, deleted, hlc_wall::text AS wall, hlc_logical AS "hlcLogical", origin,
                  hothot_item_hash(collection, key, hlc_wall, hlc_logical, origin, vv, deleted, policy, value, crdt)::text AS digest
             FROM item WHERE hothot_bucket(collection, key) = $1 ORDER BY collection, key`,
    values: [bucket],
  });
  return rows.map((r) => ({
    collection: r.collection,
    key: r.key,
    digest: BigInt(r.digest),
    deleted: r.deleted,
    wall: Number(r.wall),
    hlcLogical: r.hlcLogical,
    origin: r.origin,
  }));
}

/**
 * Which of `keys` were changed by hand without a new version (`item_suspect`): by
 * {@link formatItemKey}, the row's vector when it was edited.
 */
export async function findSuspects(
  q: Queryable,
  keys: readonly ItemKey[],
): Promise<Map<string, VersionVector>> {
  if (keys.length === 0) return new Map();
  const { rows } = await q.query<{ collection: string; key: string; vv: VersionVector }>(
    `SELECT collection, key, vv FROM item_suspect
      WHERE (collection, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [keys.map((k) => k.collection), keys.map((k) => k.key)],
  );
  return new Map(rows.map((r) => [formatItemKey(r), r.vv]));
}

export async function clearSuspects(q: Queryable, keys: readonly ItemKey[]): Promise<void> {
  if (keys.length === 0) return;
  await q.query(
    `DELETE FROM item_suspect WHERE (collection, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [keys.map((k) => k.collection), keys.map((k) => k.key)],
  );
}

export async function countSuspects(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM item_suspect');
  return rows[0]!.n;
}

/** A peer's digest, as its `digest` message carried it. */
export interface PeerDigest {
  readonly reporter: string;
  readonly sentAt: Date;
  readonly settledBefore: number;
  readonly gcHorizon: number;
  readonly digests: readonly bigint[];
  readonly maxWalls: readonly number[];
}

/** Keep each peer's newest digest. */
export async function recordPeerDigests(q: Queryable, digests: readonly PeerDigest[]): Promise<void> {
  if (digests.length === 0) return;
  await q.query(
    `INSERT INTO peer_digest AS p (reporter, sent_at, settled_before, gc_horizon, digests, max_walls)
     SELECT r, s, sb, g, ARRAY(SELECT jsonb_array_elements_text(d)::bigint), ARRAY(SELECT jsonb_array_elements_text(w)::bigint)
       FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::jsonb[], $6::jsonb[]) AS t(r, s, sb, g, d, w)
     ON CONFLICT (reporter) DO UPDATE SET
       sent_at = EXCLUDED.sent_at, settled_before = EXCLUDED.settled_before, gc_horizon = EXCLUDED.gc_horizon,
       digests = EXCLUDED.digests, max_walls = EXCLUDED.max_walls, received_at = clock_timestamp()
     WHERE EXCLUDED.sent_at >= p.sent_at`,
    [
      digests.map((d) => d.reporter),
      digests.map((d) => d.sentAt),
      digests.map((d) => d.settledBefore),
      digests.map((d) => d.gcHorizon),
      digests.map((d) => JSON.stringify(d.digests.map(String))),
      digests.map((d) => JSON.stringify(d.maxWalls)),
    ],
  );
}

export async function readPeerDigests(q: Queryable): Promise<PeerDigest[]> {
  const { rows } = await q.query<{
    reporter: string;
    sentAt: Date;
    settledBefore: string;
    gcHorizon: string;
    digests: string[];
    maxWalls: string[];
  }>(
    `SELECT reporter, sent_at AS "sentAt", settled_before::text AS "settledBefore", gc_horizon::text AS "gcHorizon",
            digests::text[] AS digests, max_walls::text[] AS "maxWalls"
       FROM peer_digest ORDER BY reporter`,
  );
  return rows.map((r) => ({
    reporter: r.reporter,
    sentAt: r.sentAt,
    settledBefore: Number(r.settledBefore),
    gcHorizon: Number(r.gcHorizon),
    digests: r.digests.map((d) => BigInt(d)),
    maxWalls: r.maxWalls.map(Number),
  }));
}

/** A peer's items of one bucket it found divergent. */
export interface PeerBucketKeys {
  readonly reporter: string;
  readonly bucket: number;
  readonly sentAt: Date;
  readonly gcHorizon: number;
  readonly keys: readonly KeyDigest[];
}

/** Keep the newest list per peer and bucket until the anti-entropy job takes it. */
export async function recordPeerBucketKeys(q: Queryable, lists: readonly PeerBucketKeys[]): Promise<void> {
  if (lists.length === 0) return;
  await q.query(
    `INSERT INTO peer_bucket_keys AS p (reporter, bucket, sent_at, gc_horizon, keys)
     SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::bigint[], $5::jsonb[])
     ON CONFLICT (reporter, bucket) DO UPDATE SET
       sent_at = EXCLUDED.sent_at, gc_horizon = EXCLUDED.gc_horizon, keys = EXCLUDED.keys,
       received_at = clock_timestamp()
     WHERE EXCLUDED.sent_at >= p.sent_at`,
    [
      lists.map((l) => l.reporter),
      lists.map((l) => l.bucket),
      lists.map((l) => l.sentAt),
      lists.map((l) => l.gcHorizon),
      lists.map((l) => JSON.stringify(l.keys.map((k) => [k.collection, k.key, String(k.digest)]))),
    ],
  );
}

/** Take (delete and return) up to `limit` waiting lists, oldest first. */
export async function takePeerBucketKeys(q: Queryable, limit: number): Promise<PeerBucketKeys[]> {
  const { rows } = await q.query<{
    reporter: string;
    bucket: number;
    sentAt: Date;
    gcHorizon: string;
    keys: [string, string, string][];
  }>(
    `DELETE FROM peer_bucket_keys WHERE (reporter, bucket) IN (
       SELECT reporter, bucket FROM peer_bucket_keys ORDER BY received_at LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING reporter, bucket, sent_at AS "sentAt", gc_horizon::text AS "gcHorizon", keys`,
    [limit],
  );
  return rows.map((r) => ({
    reporter: r.reporter,
    bucket: r.bucket,
    sentAt: r.sentAt,
    gcHorizon: Number(r.gcHorizon),
    keys: r.keys.map(([collection, key, digest]) => ({ collection, key, digest: BigInt(digest) })),
  }));
}

/**
 * Queue this region's newest `digest` event in the outbox (message key `msgKey`), dropping the one
 * queued by the previous round (`previousId`) if it is still unpublished and unclaimed: while the
 * broker link is cut, one digest waits, not one per round. Returns the new row's id.
 */
export async function queueDigestEvent(
  q: Queryable,
  msgKey: string,
  payload: string,
  previousId: string | undefined,
): Promise<string> {
  if (previousId !== undefined)
    await q.query(
      `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id = $1 FOR UPDATE SKIP LOCKED)`,
      [previousId],
    );
  const { rows } = await q.query<{ id: string }>(
    'INSERT INTO outbox (msg_key, payload) VALUES ($1, $2) RETURNING id',
    [msgKey, payload],
  );
  return rows[0]!.id;
}
