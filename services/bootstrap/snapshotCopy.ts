/**
 * Copy one region's state into another (a region joining, or one re-bootstrapped after Kafka deleted
 * events it had not read): one REPEATABLE READ, READ ONLY transaction on the source — every row it
 * reads belongs to the same consistent snapshot — streamed through a cursor in chunks; each chunk is
 * merged into the target in a transaction of its own with the same join the applier uses
 * (shared/domain/mergeItem.ts), under the same per-item advisory locks the API and the applier take.
 *
 * Because it merges instead of overwriting, the target may keep serving writes while it loads (a
 * re-bootstrapped region keeps its own writes, also those not yet published), and loading the same
 * snapshot twice, or events the snapshot already holds, changes nothing: the overlap with the peer
 * topics' replay that follows is harmless.
 *
 * Copied with the items: the GC horizon (so an old event of an item whose tombstone the source
 * collected cannot bring it back here), the source's per-partition watermarks of every other origin,
 * and the API keys. Not copied: the conflict log and history (each region's own record of what it
 * saw), the replay guards (an empty guard accepts the first message of every publisher, so the
 * replay from the recorded offsets is never taken for a replay), dead letters, progress counters.
 */
import type pg from 'pg';
import {
  findItems,
  itemLockKey,
  lockItems,
  upsertItems,
  type ItemKey,
} from '../../shared/db/queries/item.js';
import {
  closeItemCursor,
  declareItemCursor,
  fetchItems,
  readSnapshotMeta,
  writeSnapshotMeta,
} from '../../shared/db/queries/snapshot.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import { PolicyMismatchError, mergeItem, type PolicyVersion } from '../../shared/domain/mergeItem.js';

/** Rows per cursor fetch and per target transaction (each item takes an advisory lock until commit). */
export const SNAPSHOT_CHUNK_ROWS = 2000;

export interface SnapshotCopyOptions {
  /** The region being loaded (its own watermark is never copied). */
  readonly targetRegion: string;
  /** @default SNAPSHOT_CHUNK_ROWS */
  readonly chunkRows?: number;
  /** Called after each chunk with the running totals. */
  readonly onProgress?: (progress: { readonly items: number; readonly ms: number }) => void;
}

export interface SnapshotCopyResult {
  /** Item rows read from the source (tombstones included). */
  readonly items: number;
  /** Rows the target did not have. */
  readonly inserted: number;
  /** Rows the target had, changed by the merge. */
  readonly merged: number;
  /** Rows the target already held at that version or newer. */
  readonly unchanged: number;
  /** Rows skipped because the two regions use different merge policies for the collection. */
  readonly policyMismatches: number;
  readonly tombstones: number;
  readonly watermarks: number;
  readonly apiKeys: number;
  readonly gcHorizonMs: number;
  readonly ms: number;
}

/** Copy a consistent snapshot of `source` into `target` (both databases of hothot regions, migrated). */
export async function copySnapshot(
  source: pg.Pool,
  target: pg.Pool,
  options: SnapshotCopyOptions,
): Promise<SnapshotCopyResult> {
  const started = performance.now();
  const chunkRows = options.chunkRows ?? SNAPSHOT_CHUNK_ROWS;
  const totals = { items: 0, inserted: 0, merged: 0, unchanged: 0, policyMismatches: 0, tombstones: 0 };
  const client = await source.connect();
  let failed = false;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The first statement fixes the snapshot every later read of this transaction sees.
    const meta = await readSnapshotMeta(client);
    await declareItemCursor(client);
    // Read the next chunk while the current one is merged (two connections, two servers).
    let next = fetchItems(client, chunkRows);
    for (;;) {
      const rows = await next;
      if (rows.length === 0) break;
      next = fetchItems(client, chunkRows);
      const r = await mergeChunk(target, rows);
      totals.items += rows.length;
      totals.inserted += r.inserted;
      totals.merged += r.merged;
      totals.unchanged += r.unchanged;
      totals.policyMismatches += r.policyMismatches;
      totals.tombstones += rows.filter((x) => x.deleted).length;
      options.onProgress?.({ items: totals.items, ms: Math.round(performance.now() - started) });
    }
    await closeItemCursor(client);
    await client.query('COMMIT');
    const written = await withTransaction(target, (q) => writeSnapshotMeta(q, meta, options.targetRegion));
    return {
      ...totals,
      watermarks: written.marks,
      apiKeys: written.apiKeys,
      gcHorizonMs: meta.gcHorizonMs,
      ms: Math.round(performance.now() - started),
    };
  } catch (err) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(failed);
  }
}

/** Merge one chunk of source rows into the target in one transaction. */
async function mergeChunk(
  target: pg.Pool,
  rows: readonly (ItemKey & PolicyVersion)[],
): Promise<{ inserted: number; merged: number; unchanged: number; policyMismatches: number }> {
  return withTransaction(target, async (q) => {
    await lockItems(q, rows);
    const local = await findItems(q, rows);
    const changed: (ItemKey & PolicyVersion)[] = [];
    let inserted = 0;
    let merged = 0;
    let policyMismatches = 0;
    for (const row of rows) {
      const mine = local.get(itemLockKey(row));
      try {
        const r = mergeItem(mine, row);
        if (!r.changed) continue;
        if (mine === undefined) inserted += 1;
        else merged += 1;
        changed.push({ collection: row.collection, key: row.key, ...r.result });
      } catch (err) {
        if (!(err instanceof PolicyMismatchError)) throw err;
        policyMismatches += 1;
      }
    }
    await upsertItems(q, changed);
    return {
      inserted,
      merged,
      unchanged: rows.length - inserted - merged - policyMismatches,
      policyMismatches,
    };
  });
}
