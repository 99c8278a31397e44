-- Events this region can never apply because Kafka no longer holds them (retention deleted them
-- before this region read them: its committed offset fell below the partition's earliest offset).
-- A row stays open until a re-bootstrap (hothot lab rebootstrap, or the production procedure in
-- docs/operations.md) copies a snapshot of a peer that has them; while any row is open the region
-- reports itself incomplete in /v1/status and /metrics.
CREATE TABLE replication_gap (
  topic        text        NOT NULL,
  partition    integer     NOT NULL,
  origin       text        NOT NULL,
  -- Offsets [from_offset, to_offset) were deleted before this region applied them.
  from_offset  bigint      NOT NULL,
  to_offset    bigint      NOT NULL,
  detected_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  resolved_at  timestamptz,
  resolved_by  text,
  PRIMARY KEY (topic, partition, from_offset),
  CHECK (to_offset > from_offset)
);
CREATE INDEX replication_gap_open_idx ON replication_gap (origin) WHERE resolved_at IS NULL;
