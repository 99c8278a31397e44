-- Digest anti-entropy (docs/anti-entropy.md): a digest of the item table per bucket, maintained by
-- triggers in the transaction of every write, apply and hand edit, never by rescanning on a timer.

-- The bucket of an item (0..1023): the first 16 bits of sha256('<collection>/<key>'), low 10 kept.
-- shared/domain/digest.ts computes the same (a test checks they agree).
CREATE FUNCTION hothot_bucket(collection text, key text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('x' || encode(substr(sha256(convert_to(collection || '/' || key, 'UTF8')), 1, 2), 'hex'))::bit(16)::integer & 1023;

-- One item's digest: the first 64 bits of sha256 over its identity, its version (stamp and vector)
-- and its content (tombstone flag, policy, value, policy state), fields separated by U+001F. The
-- content is in it so that a row changed by hand without a new version is seen too.
CREATE FUNCTION hothot_item_hash(
  collection text, key text, hlc_wall bigint, hlc_logical integer, origin text, vv jsonb,
  deleted boolean, policy text, value jsonb, crdt jsonb
) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('x' || encode(substr(sha256(convert_to(
    collection || E'\x1f' || key || E'\x1f' || hlc_wall::text || E'\x1f' || hlc_logical::text || E'\x1f' ||
    origin || E'\x1f' || vv::text || E'\x1f' || CASE WHEN deleted THEN 't' ELSE 'f' END || E'\x1f' ||
    policy || E'\x1f' || coalesce(value::text, '') || E'\x1f' || coalesce(crdt::text, ''),
    'UTF8')), 1, 8), 'hex'))::bit(64)::bigint;

-- Per bucket, split in stripes (the writing backend's pid mod 16) so that concurrent writers of one
-- bucket rarely wait on each other: a bucket's digest is the XOR of its stripes' digests.
CREATE TABLE item_digest (
  bucket    smallint NOT NULL,
  stripe    smallint NOT NULL,
  digest    bigint   NOT NULL,   -- XOR of hothot_item_hash of the items
  items     bigint   NOT NULL,   -- how many items (tombstones included)
  max_wall  bigint   NOT NULL,   -- greatest stamp wall ever written into the bucket (never lowered)
  PRIMARY KEY (bucket, stripe)
) WITH (fillfactor = 50);

-- Rows changed without a new version vector (only a hand edit does that): a repair from a peer
-- with the same vector may replace them. Filled by the trigger below.
CREATE TABLE item_suspect (
  collection  text        NOT NULL,
  key         text        NOT NULL,
  hlc_wall    bigint      NOT NULL,
  hlc_logical integer     NOT NULL,
  origin      text        NOT NULL,
  vv          jsonb       NOT NULL,   -- the row's vector when edited: a later write (new vector) ends the suspicion
  noticed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (collection, key)
);

CREATE FUNCTION hothot_item_digest_track() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  s smallint := pg_backend_pid() % 16;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO item_digest AS d (bucket, stripe, digest, items, max_wall)
    SELECT hothot_bucket(n.collection, n.key), s,
           bit_xor(hothot_item_hash(n.collection, n.key, n.hlc_wall, n.hlc_logical, n.origin, n.vv, n.deleted, n.policy, n.value, n.crdt)),
           count(*), max(n.hlc_wall)
      FROM new_rows n GROUP BY 1
    ON CONFLICT (bucket, stripe) DO UPDATE SET
      digest = d.digest # EXCLUDED.digest, items = d.items + EXCLUDED.items,
      max_wall = greatest(d.max_wall, EXCLUDED.max_wall);
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO item_digest AS d (bucket, stripe, digest, items, max_wall)
    SELECT c.b, s, bit_xor(c.h), sum(c.n), coalesce(max(c.w), 0)
      FROM (SELECT hothot_bucket(o.collection, o.key) AS b,
                   hothot_item_hash(o.collection, o.key, o.hlc_wall, o.hlc_logical, o.origin, o.vv, o.deleted, o.policy, o.value, o.crdt) AS h,
                   -1 AS n, NULL::bigint AS w
              FROM old_rows o
            UNION ALL
            SELECT hothot_bucket(n.collection, n.key),
                   hothot_item_hash(n.collection, n.key, n.hlc_wall, n.hlc_logical, n.origin, n.vv, n.deleted, n.policy, n.value, n.crdt),
                   1, n.hlc_wall
              FROM new_rows n) c
     GROUP BY c.b
    HAVING bit_xor(c.h) <> 0 OR sum(c.n) <> 0
    ON CONFLICT (bucket, stripe) DO UPDATE SET
      digest = d.digest # EXCLUDED.digest, items = d.items + EXCLUDED.items,
      max_wall = greatest(d.max_wall, EXCLUDED.max_wall);
    -- Row changed, version vector kept: never done by hothot (every write bumps the vector, and a
    -- merge only changes a row when the incoming vector is not below the stored one), so a hand edit.
    INSERT INTO item_suspect (collection, key, hlc_wall, hlc_logical, origin, vv)
    SELECT n.collection, n.key, n.hlc_wall, n.hlc_logical, n.origin, n.vv
      FROM old_rows o JOIN new_rows n ON n.collection = o.collection AND n.key = o.key
     WHERE n.vv = o.vv
       AND (n.hlc_wall <> o.hlc_wall OR n.hlc_logical <> o.hlc_logical OR n.origin <> o.origin
            OR n.deleted <> o.deleted OR n.policy <> o.policy OR n.value IS DISTINCT FROM o.value
            OR n.crdt IS DISTINCT FROM o.crdt)
    ON CONFLICT (collection, key) DO UPDATE SET
      hlc_wall = EXCLUDED.hlc_wall, hlc_logical = EXCLUDED.hlc_logical, origin = EXCLUDED.origin,
      vv = EXCLUDED.vv, noticed_at = EXCLUDED.noticed_at;
  ELSE
    INSERT INTO item_digest AS d (bucket, stripe, digest, items, max_wall)
    SELECT hothot_bucket(o.collection, o.key), s,
           bit_xor(hothot_item_hash(o.collection, o.key, o.hlc_wall, o.hlc_logical, o.origin, o.vv, o.deleted, o.policy, o.value, o.crdt)),
           -count(*), 0
      FROM old_rows o GROUP BY 1
    ON CONFLICT (bucket, stripe) DO UPDATE SET
      digest = d.digest # EXCLUDED.digest, items = d.items + EXCLUDED.items;
  END IF;
  RETURN NULL;
END
$$;

-- Statement-level: one digest update per bucket per statement (an applier batch of 500 rows
-- touches each bucket once), from the statement's transition tables.
CREATE TRIGGER item_digest_insert AFTER INSERT ON item
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hothot_item_digest_track();
CREATE TRIGGER item_digest_update AFTER UPDATE ON item
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION hothot_item_digest_track();
CREATE TRIGGER item_digest_delete AFTER DELETE ON item
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION hothot_item_digest_track();

-- TRUNCATE leaves no rows: the digest is emptied with it.
CREATE FUNCTION hothot_item_digest_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM item_digest;
  DELETE FROM item_suspect;
  RETURN NULL;
END
$$;
CREATE TRIGGER item_digest_truncate AFTER TRUNCATE ON item
  FOR EACH STATEMENT EXECUTE FUNCTION hothot_item_digest_truncate();

-- Listing the items of one bucket (narrowing a divergent bucket down to its keys).
CREATE INDEX item_bucket_idx ON item (hothot_bucket(collection, key));

-- The digest of the items already there (the only full scan: once, here).
INSERT INTO item_digest (bucket, stripe, digest, items, max_wall)
SELECT hothot_bucket(collection, key), 0,
       bit_xor(hothot_item_hash(collection, key, hlc_wall, hlc_logical, origin, vv, deleted, policy, value, crdt)),
       count(*), max(hlc_wall)
  FROM item GROUP BY 1;

-- The newest digest of each peer (from its signed `digest` messages).
CREATE TABLE peer_digest (
  reporter       text        PRIMARY KEY,
  sent_at        timestamptz NOT NULL,
  settled_before bigint      NOT NULL,   -- the reporter held every write stamped below this (ms)
  gc_horizon     bigint      NOT NULL,   -- the reporter's tombstone-GC horizon (ms)
  digests        bigint[]    NOT NULL,   -- per bucket
  max_walls      bigint[]    NOT NULL,   -- per bucket
  received_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A peer's per-key digests of one bucket it found divergent (its `bucket-keys` messages), waiting
-- for the anti-entropy job, which republishes this region's versions of the keys that differ.
CREATE TABLE peer_bucket_keys (
  reporter    text        NOT NULL,
  bucket      integer     NOT NULL,
  sent_at     timestamptz NOT NULL,
  gc_horizon  bigint      NOT NULL,
  keys        jsonb       NOT NULL,   -- [[collection, key, digest (16 hex)], …]
  received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (reporter, bucket)
);
