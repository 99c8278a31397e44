-- A database waiting for its initial snapshot: a region being added (docs/operations.md, "Adding a
-- region"; `hothot lab add-region`) is started before its snapshot is loaded, so that its process,
-- Kafka connections and consumer group are up by the time the copy ends. While this row exists the
-- region serves no data (503 loading_snapshot), leads nothing (no relay, heartbeats, maintenance or
-- anti-entropy) and applies nothing; the snapshot copy deletes the row in its last transaction
-- (shared/db/queries/snapshot.ts, writeSnapshotMeta).
CREATE TABLE snapshot_pending (
  only_row   boolean     PRIMARY KEY DEFAULT true CHECK (only_row),
  source     text        NOT NULL,   -- the region whose snapshot is awaited
  marked_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
