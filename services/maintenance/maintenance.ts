/**
 * Periodic housekeeping of a region: tombstone GC, conflict-log retention, per-item history
 * bounds, and re-applying parked dead letters (policy mismatch, clock skew) once their cause is
 * gone. Every step is idempotent, so running it in several processes of a region is harmless.
 */
import type pg from 'pg';
import { IntervalTask } from '../../shared/lifecycle/intervalTask.js';
import type { Logger } from '../../shared/logging/logger.js';
import { pruneConflicts } from '../../shared/db/queries/conflict.js';
import { deleteDeadLetter, listDeadLetters, PARKED_CODES } from '../../shared/db/queries/deadLetter.js';
import { collectTombstones } from '../../shared/db/queries/item.js';
import { pruneHistory } from '../../shared/db/queries/itemHistory.js';
import { advanceGc } from '../../shared/db/queries/gcState.js';
import { sampleAckHorizon } from '../../shared/db/queries/gcAckSample.js';
import { appliedWatermarks } from '../../shared/db/queries/peerPartitionProgress.js';
import { readPeerReports } from '../../shared/db/queries/peerReport.js';
import { withTransaction } from '../../shared/db/withTransaction.js';
import { computeAckHorizon, type AckHorizon } from '../../shared/domain/watermark.js';
import { applyBatch, type ApplyContext } from '../../shared/replication/applyBatch.js';

const GC_BATCH = 5000;
const PARKED_BATCH = 100;
/** History rows looked at per prune statement, and statements per maintenance run at most. */
const HISTORY_SCAN_ROWS = 20_000;
const HISTORY_PASSES_PER_RUN = 5;

export interface MaintenanceOptions {
  readonly pool: pg.Pool;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly intervalMs: number;
  readonly tombstoneGraceMs: number;
  readonly peerSuspectAfterMs: number;
  readonly conflictRetentionMs: number;
  readonly conflictLogMaxRows: number;
  readonly historyMaxVersions: number;
  readonly applyContext: ApplyContext;
  readonly log: Logger;
}

export interface MaintenanceReport {
  readonly gc: AckHorizon & { readonly cutoffMs: number | null };
  readonly tombstonesCollected: number;
  readonly conflictsPruned: number;
  readonly historyPruned: number;
  readonly parkedReapplied: number;
}

export class Maintenance {
  /** The round every `intervalMs` (0: no timer; runOnce still works). */
  private readonly task: IntervalTask;

  /** History rows up to this id were looked at by the prune (in memory: a restart looks again once). */
  private historyCursor = '0';

  constructor(private readonly options: MaintenanceOptions) {
    this.task = new IntervalTask({
      intervalMs: options.intervalMs,
      run: () => this.runOnce(),
      log: options.log,
      failure: 'maintenance pass failed',
    });
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  /** One pass of every job (also the deterministic step tests drive). */
  async runOnce(): Promise<MaintenanceReport> {
    const { pool, log } = this.options;
    const now = Date.now();
    const watermarks = await appliedWatermarks(pool);
    const reports = await readPeerReports(pool);
    const ack = computeAckHorizon({
      region: this.options.region,
      peerRegions: this.options.peerRegions(),
      graceMs: this.options.tombstoneGraceMs,
      peerSuspectAfterMs: this.options.peerSuspectAfterMs,
      watermarks,
      reports,
      now,
    });
    // The grace period runs from the acknowledgement: collect below the horizon acknowledged at
    // least a grace period ago, and nothing at all while any region is unaccounted for.
    const cutoffMs =
      ack.acknowledgedMs === null
        ? null
        : await sampleAckHorizon(pool, ack.acknowledgedMs, this.options.tombstoneGraceMs);
    const gc = { ...ack, cutoffMs };
    let tombstonesCollected = 0;
    if (cutoffMs !== null) {
      const cutoff = cutoffMs;
      tombstonesCollected = await withTransaction(pool, async (client) => {
        // Raise the horizon first, in the same transaction: no replay below it can slip in between.
        await advanceGc(client, cutoff, 0);
        const n = await collectTombstones(client, cutoff, GC_BATCH);
        await advanceGc(client, cutoff, n);
        return n;
      });
    }
    const conflictsPruned = await pruneConflicts(
      pool,
      this.options.conflictRetentionMs,
      this.options.conflictLogMaxRows,
    );
    let historyPruned = 0;
    for (let pass = 0; pass < HISTORY_PASSES_PER_RUN; pass++) {
      const r = await pruneHistory(
        pool,
        this.options.historyMaxVersions,
        this.historyCursor,
        HISTORY_SCAN_ROWS,
      );
      historyPruned += r.pruned;
      if (r.scannedUpTo === null) break;
      this.historyCursor = r.scannedUpTo;
    }
    const parkedReapplied = await this.reapplyParked();
    const report = { gc, tombstonesCollected, conflictsPruned, historyPruned, parkedReapplied };
    if (tombstonesCollected + conflictsPruned + parkedReapplied > 0) log.info(report, 'maintenance pass');
    return report;
  }

  /** Re-apply parked dead letters; those whose cause persists are parked again. */
  private async reapplyParked(): Promise<number> {
    const { pool, applyContext } = this.options;
    const parked = await listDeadLetters(pool, PARKED_BATCH, PARKED_CODES);
    let reapplied = 0;
    for (const d of parked) {
      const result = await withTransaction(pool, async (client) => {
        await deleteDeadLetter(client, d.id);
        return applyBatch(
          client,
          [
            {
              topic: d.topic,
              partition: d.partition,
              offset: String(d.offset),
              key: d.msgKey,
              value: d.payload,
              headers: d.headers,
            },
          ],
          applyContext,
        );
      });
      if (result.deadLetters.length === 0) reapplied += 1;
    }
    return reapplied;
  }
}
