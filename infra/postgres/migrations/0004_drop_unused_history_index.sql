-- item_history_item_idx (collection, key, id) is used by no query: reading an item's history and
-- pruning it go through item_history_version_uniq (collection, key, hlc_wall, hlc_logical, origin),
-- and the prune's scan of new rows through the primary key. One index fewer to maintain on every
-- written and applied version.
DROP INDEX IF EXISTS item_history_item_idx;
