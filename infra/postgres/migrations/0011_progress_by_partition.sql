-- Progress and peer reports per (origin, partition) instead of per origin. The applier's batches of
-- one origin's partitions run in concurrent transactions; with one row per origin every one of them
-- updated the same peer_progress row (and, for the heartbeats each partition carries, the same
-- peer_report row), so they queued on its row lock until the holder committed: measured at
-- 100 writes/s, those two statements took 0.4 and 0.85 ms a call on average, a third of the apply
-- path's statement time, mostly waiting (docs/architecture.md, "Apply"). Now each
-- partition's transaction writes rows of its own; readers combine them per origin
-- (shared/db/queries/peerProgress.ts, peerReport.ts). Rows already there keep their totals as
-- partition 0.
ALTER TABLE peer_progress ADD COLUMN partition integer NOT NULL DEFAULT 0;
ALTER TABLE peer_progress DROP CONSTRAINT peer_progress_pkey;
ALTER TABLE peer_progress ADD PRIMARY KEY (origin, partition);

ALTER TABLE peer_report ADD COLUMN partition integer NOT NULL DEFAULT 0;
ALTER TABLE peer_report DROP CONSTRAINT peer_report_pkey;
ALTER TABLE peer_report ADD PRIMARY KEY (reporter, partition);
