-- Tombstone GC measures its grace period from the acknowledgement: each maintenance pass records
-- the horizon every region has acknowledged, and collection uses the horizon acknowledged at least
-- a grace period ago.
CREATE TABLE gc_ack_sample (
  observed_at  timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
  horizon_ms   bigint      NOT NULL
);
