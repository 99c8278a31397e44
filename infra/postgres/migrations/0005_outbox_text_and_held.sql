-- The outbox keeps each event as the exact JSON text the write path made (json, not jsonb): the
-- relay publishes it byte for byte, so the size the API checked against Kafka's limit is the size
-- Kafka receives (jsonb's text form differs: it adds a space after every ":" and ",").
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;

-- Outbox rows Kafka would not take (larger than the broker's message.max.bytes, e.g. after the limit
-- was lowered). The relay moves such a row here so that the rows behind it go on, and says so loudly
-- (log, /v1/status, metrics). Nothing here is published until an operator resolves it:
-- `hothot outbox retry` puts rows back in the outbox, `hothot outbox drop` removes them.
CREATE TABLE outbox_held (
  id          bigint      PRIMARY KEY,       -- the outbox row's id
  msg_key     text        NOT NULL,
  payload     json        NOT NULL,
  bytes       integer     NOT NULL,          -- the event's encoded size
  reason      text        NOT NULL,
  created_at  timestamptz NOT NULL,          -- when the write committed
  held_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
