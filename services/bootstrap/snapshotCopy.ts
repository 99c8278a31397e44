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
 * A target whose item table is empty (a region joining) is loaded faster, by streaming the source's
 * rows in PostgreSQL's binary COPY format straight into `COPY item FROM STDIN` in one target
 * transaction (the way logical replication's initial copy does it): nothing is parsed or merged in
 * Node, and with nothing to merge with the result is the same. The target's item table is locked
 * against writers for that transaction and found empty under the lock; otherwise the merge runs.
 * When the target's role owns the table, the digest trigger is off for the copy and the source's
 * bucket digests (which agree with the items of the same snapshot) are copied with them, and the
 * table's indexes are dropped for the copy and built again in bulk before it commits (readers of
 * the target wait for that transaction too; a joining region serves nothing yet).
 *
 * Copied with the items: the GC horizon (so an old event of an item whose tombstone the source
 * collected cannot bring it back here), the source's per-partition watermarks of every other origin,
 * and the API keys. Not copied: the conflict log and history (each region's own record of what it
 * saw), the replay guards (an empty guard accepts the first message of every publisher, so the
 * replay from the recorded offsets is never taken for a replay), dead letters, progress counters.
 */
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import {
  findItems,
  itemLockKey,
  lockItems,
  upsertItems,
  type ItemKey,
} from '../../shared/db/queries/item.js';
import {
  DIGEST_COPY_IN_SQL,
  beginItemBulkLoad,
  endItemBulkLoad,
  DIGEST_COPY_OUT_SQL,
  ITEM_COPY_IN_SQL,
  ITEM_COPY_OUT_SQL,
  closeItemCursor,
  countTombstones,
  declareItemCursor,
  fetchItems,
  lockEmptyItemTable,
  readSnapshotMeta,
  writeSnapshotMeta,
} from '../../shared/db/queries/snapshot.js';
import { connectUnpipelined } from '../../shared/db/pool.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import { PolicyMismatchError, mergeItem, type PolicyVersion } from '../../shared/domain/mergeItem.js';

/** Rows per cursor fetch and per target transaction (each item takes an advisory lock until commit). */
export const SNAPSHOT_CHUNK_ROWS = 2000;

export interface SnapshotCopyOptions {
  /** The region being loaded (its own watermark is never copied). */
  readonly targetRegion: string;
  /** @default SNAPSHOT_CHUNK_ROWS */
  readonly chunkRows?: number;
  /** Called as it goes: after each merged chunk with the items so far, or every MiB copied. */
  readonly onProgress?: (progress: SnapshotCopyProgress) => void;
}

export interface SnapshotCopyProgress {
  /** Items merged so far (merge), or undefined (copy: counted at the end). */
  readonly items?: number;
  /** Bytes streamed so far (copy only). */
  readonly bytes?: number;
  readonly ms: number;
}

/** How a snapshot was loaded: streamed into an empty target, or merged row by row. */
export const SnapshotLoad = { Copy: 'copy', Merge: 'merge' } as const;
export type SnapshotLoad = (typeof SnapshotLoad)[keyof typeof SnapshotLoad];

export interface SnapshotCopyResult {
  readonly load: SnapshotLoad;
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
  // Its own connections: COPY streams cannot share a pipelined pool client.
  const client = await connectUnpipelined(source);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    // The first statement fixes the snapshot every later read of this transaction sees.
    const meta = await readSnapshotMeta(client);
    const copied = await copyIntoEmptyTarget(client, target, options.onProgress, started);
    if (copied !== undefined) Object.assign(totals, copied);
    else await mergeAll(client, target, chunkRows, totals, options.onProgress, started);
    await client.query('COMMIT');
    const written = await withTransaction(target, (q) => writeSnapshotMeta(q, meta, options.targetRegion));
    return {
      load: copied !== undefined ? SnapshotLoad.Copy : SnapshotLoad.Merge,
      ...totals,
      watermarks: written.marks,
      apiKeys: written.apiKeys,
      gcHorizonMs: meta.gcHorizonMs,
      ms: Math.round(performance.now() - started),
    };
  } finally {
    // Ending the connection ends its transaction too, on every path.
    await client.end().catch(() => undefined);
  }
}

type Totals = {
  items: number;
  inserted: number;
  merged: number;
  unchanged: number;
  policyMismatches: number;
  tombstones: number;
};

/**
 * Stream every item row of the source's snapshot into the target with binary COPY, if the target
 * holds no item (checked under a lock that keeps writers out until the copy commits). Returns the
 * totals, or undefined when the target has items (then they must be merged).
 */
async function copyIntoEmptyTarget(
  source: pg.Client,
  target: pg.Pool,
  onProgress: SnapshotCopyOptions['onProgress'],
  started: number,
): Promise<Totals | undefined> {
  const client = await connectUnpipelined(target);
  try {
    await client.query('BEGIN');
    if (!(await lockEmptyItemTable(client))) {
      await client.query('ROLLBACK');
      return undefined;
    }
    const bulk = await beginItemBulkLoad(client);
    const out = source.query(copyTo(ITEM_COPY_OUT_SQL));
    const into = client.query(copyFrom(ITEM_COPY_IN_SQL));
    let bytes = 0;
    let reported = 0;
    out.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes - reported >= 1 << 20) {
        reported = bytes;
        onProgress?.({ bytes, ms: Math.round(performance.now() - started) });
      }
    });
    await pipeline(out, into);
    const items = into.rowCount;
    if (bulk !== undefined) {
      await pipeline(source.query(copyTo(DIGEST_COPY_OUT_SQL)), client.query(copyFrom(DIGEST_COPY_IN_SQL)));
      await endItemBulkLoad(client, bulk);
    }
    const tombstones = await countTombstones(client);
    await client.query('COMMIT');
    onProgress?.({ items, bytes, ms: Math.round(performance.now() - started) });
    return { items, inserted: items, merged: 0, unchanged: 0, policyMismatches: 0, tombstones };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Read the snapshot through a cursor and merge it into the target chunk by chunk. */
async function mergeAll(
  client: pg.Client,
  target: pg.Pool,
  chunkRows: number,
  totals: Totals,
  onProgress: SnapshotCopyOptions['onProgress'],
  started: number,
): Promise<void> {
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
    onProgress?.({ items: totals.items, ms: Math.round(performance.now() - started) });
  }
  await closeItemCursor(client);
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
