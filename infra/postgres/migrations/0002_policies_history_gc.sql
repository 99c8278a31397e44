-- Merge policies, per-item history, session/GC watermarks, tombstone GC, parked dead letters.

-- Items: the policy their collection had when written, and the policy's state (per-field
-- versions, counters); `value` stays the materialised value that reads serve.
ALTER TABLE item ADD COLUMN policy text NOT NULL DEFAULT 'lww';
ALTER TABLE item ADD COLUMN crdt jsonb;

-- Conflicts: field-level conflicts of the `fields` policy name their field.
ALTER TABLE conflict ADD COLUMN field text;
ALTER TABLE conflict ADD COLUMN policy text NOT NULL DEFAULT 'lww';
DROP INDEX conflict_event_uniq;
CREATE UNIQUE INDEX conflict_event_uniq ON conflict (event_id, collection, key, (coalesce(field, '')));

-- The recent versions of each item as this region saw them. Bounded by the maintenance job.
CREATE TABLE item_history (
  id           bigserial   PRIMARY KEY,
  collection   text        NOT NULL,
  key          text        NOT NULL,
  hlc_wall     bigint      NOT NULL,
  hlc_logical  integer     NOT NULL,
  origin       text        NOT NULL,
  vv           jsonb       NOT NULL,
  deleted      boolean     NOT NULL,
  value        jsonb,
  outcome      text        NOT NULL,   -- written | applied | merged | lost | stale
  recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX item_history_item_idx ON item_history (collection, key, id);
CREATE UNIQUE INDEX item_history_version_uniq ON item_history (collection, key, hlc_wall, hlc_logical, origin);

-- Dead letters get a machine-readable code; `policy_mismatch` and `clock_skew` ones are parked
-- and re-applied by the maintenance job once the cause is gone.
ALTER TABLE dead_letter ADD COLUMN code text NOT NULL DEFAULT 'invalid';
CREATE INDEX dead_letter_code_idx ON dead_letter (code, id);

-- Per origin and partition: the origin's "safe before" mark carried by its heartbeats. Every
-- change the origin wrote with a stamp below the mark is applied here once the mark of every
-- partition has passed it (Kafka keeps order per partition).
CREATE TABLE peer_partition_progress (
  origin       text        NOT NULL,
  partition    integer     NOT NULL,
  partitions   integer     NOT NULL,   -- the origin topic's partition count, as the origin saw it
  safe_before  bigint      NOT NULL,   -- ms
  sent_at      timestamptz NOT NULL,
  PRIMARY KEY (origin, partition)
);

-- The newest heartbeat report of each peer: its applied watermarks (acknowledgements for tombstone
-- GC) and its merge policies.
CREATE TABLE peer_report (
  reporter     text        PRIMARY KEY,
  watermarks   jsonb       NOT NULL,   -- origin -> ms
  policies     jsonb       NOT NULL,
  sent_at      timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Tombstone GC state: the horizon only grows. An incoming change for an absent item with a stamp
-- below it is a replay of something already applied here (and since collected), never new.
CREATE TABLE gc_state (
  id           boolean     PRIMARY KEY DEFAULT true CHECK (id),
  horizon_ms   bigint      NOT NULL DEFAULT 0,
  collected    bigint      NOT NULL DEFAULT 0,
  last_run_at  timestamptz
);
INSERT INTO gc_state DEFAULT VALUES;
