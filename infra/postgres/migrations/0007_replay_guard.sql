-- Authenticated replication (shared/security/eventAuth.ts): what this region accepted from each
-- peer on each partition of the peer's topic, so that a genuine signed message published again
-- (a replay) is quarantined instead of applied. Updated in the apply transaction.
CREATE TABLE peer_replay_guard (
  origin       text        NOT NULL,
  partition    integer     NOT NULL,
  -- Greatest offset accepted: a message at or below it is a redelivery (same bytes, same offset).
  last_offset  bigint      NOT NULL,
  -- Publishing relay instance ("<start ms>.<nonce>") -> [greatest counter accepted, offset last seen at].
  instances    jsonb       NOT NULL,
  -- Greatest start time (ms) of the instances forgotten: an unknown one started no later is a replay.
  floor_ms     bigint      NOT NULL DEFAULT 0,
  updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (origin, partition)
);
