-- The replication core: items, outbox, conflict log, per-origin progress, dead letters.

-- One row per item, including tombstones. The row is the merged state of every version this region
-- has seen: the version with the greatest HLC stamp carries value and stamp, `vv` is the pointwise
-- maximum of all version vectors.
CREATE TABLE item (
  collection   text        NOT NULL,
  key          text        NOT NULL,
  value        jsonb,                       -- NULL for a tombstone
  deleted      boolean     NOT NULL DEFAULT false,
  hlc_wall     bigint      NOT NULL,        -- HLC stamp of the winning version
  hlc_logical  integer     NOT NULL,
  origin       text        NOT NULL,        -- region that wrote the winning version (HLC tie-breaker)
  vv           jsonb       NOT NULL,        -- version vector: region -> writes made to this item
  updated_at   timestamptz NOT NULL DEFAULT now(),  -- when this region last changed the row
  PRIMARY KEY (collection, key),
  CHECK (deleted = (value IS NULL))
);
CREATE INDEX item_tombstone_idx ON item (updated_at) WHERE deleted;

-- Changes and heartbeats waiting for the relay. Rows are deleted once Kafka acknowledged them.
-- Ids commit out of order: the relay never remembers a "last published id".
CREATE TABLE outbox (
  id          bigserial   PRIMARY KEY,
  msg_key     text        NOT NULL,         -- Kafka message key: <collection>/<key>, or _heartbeat/<region>
  payload     jsonb       NOT NULL,         -- the event envelope
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Every resolved conflict, with both versions. Both regions record the same winner.
CREATE TABLE conflict (
  id            bigserial   PRIMARY KEY,
  collection    text        NOT NULL,
  key           text        NOT NULL,
  winner        jsonb       NOT NULL,       -- {value, deleted, hlc, vv}
  loser         jsonb       NOT NULL,
  winner_origin text        NOT NULL,
  loser_origin  text        NOT NULL,
  rule          text        NOT NULL,       -- e.g. lww-hlc
  event_id      text        NOT NULL,       -- the incoming event that revealed the conflict
  detected_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX conflict_item_idx ON conflict (collection, key, id);
CREATE INDEX conflict_detected_idx ON conflict (detected_at);
-- A redelivered event must not record the same conflict twice.
CREATE UNIQUE INDEX conflict_event_uniq ON conflict (event_id, collection, key);

-- What this region has applied from each origin region.
CREATE TABLE peer_progress (
  origin              text        PRIMARY KEY,
  applied_events      bigint      NOT NULL DEFAULT 0,   -- events applied (duplicates included)
  last_event_id       text,
  last_hlc_wall       bigint,                           -- greatest stamp applied from this origin
  last_hlc_logical    integer,
  last_applied_at     timestamptz,
  heartbeat_sent_at   timestamptz,                      -- origin's clock when it sent its last heartbeat
  heartbeat_applied_at timestamptz,                     -- our clock when we applied it
  last_lag_ms         bigint                            -- apply time - origin commit time of the last event
);

-- Events that could not be decoded or verified, kept with their raw bytes. Never silently dropped.
CREATE TABLE dead_letter (
  id           bigserial   PRIMARY KEY,
  topic        text        NOT NULL,
  partition    integer     NOT NULL,
  "offset"     bigint      NOT NULL,
  msg_key      bytea,
  payload      bytea,
  headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
  reason       text        NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (topic, partition, "offset")
);
