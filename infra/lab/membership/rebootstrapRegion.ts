/**
 * `hothot lab rebootstrap <name>`: bring back a region that Kafka left behind (its peers' events were
 * deleted by retention before it read them: `/v1/status` `replication.complete` false). The region
 * stops; the positions of `source` are recorded and `source`'s snapshot (one REPEATABLE READ
 * transaction) is merged into the region's database — merged, not copied over, so the region keeps its
 * own writes, including those not yet published; its consumer group moves forward to the positions
 * (never back); the gaps are marked resolved; the region starts again.
 */
import pg from 'pg';
import { copySnapshot, type SnapshotCopyResult } from '../../../services/bootstrap/snapshotCopy.js';
import { createPool } from '../../../shared/db/pool.js';
import { resolveReplicationGaps } from '../../../shared/db/queries/replicationGap.js';
import { applyGroupId } from '../../../shared/kafka/topics.js';
import { createRootLogger } from '../../../shared/logging/logger.js';
import { labDatabaseUrl, restartLabRegion, type LabProgressListener } from '../lab.js';
import { RegionProcess } from '../regionProcess.js';
import { labAdminKafka, withLabAdmin } from './labAdminKafka.js';
import { readRegionLaunch, topicPrefixOf } from './labRegionLaunch.js';
import { recordPeerPositions, startGroupAt } from './peerPositions.js';
import { readRunningLab } from './runningLab.js';

export interface RebootstrapRegionOptions {
  readonly root: string;
  readonly region: string;
  /** The region whose snapshot is merged in. @default the lab's first other region */
  readonly source?: string;
  readonly onProgress?: LabProgressListener;
}

export interface RebootstrapRegionResult {
  readonly region: string;
  readonly source: string;
  readonly snapshot: SnapshotCopyResult;
  readonly gapsResolved: number;
  readonly totalMs: number;
}

export async function rebootstrapRegion(options: RebootstrapRegionOptions): Promise<RebootstrapRegionResult> {
  const started = performance.now();
  const { root, region } = options;
  const progress = options.onProgress ?? (() => undefined);
  const info = (message: string) => progress({ type: 'info', message });
  const seconds = (t: number) => `${((performance.now() - t) / 1000).toFixed(1)} s`;
  const state = readRunningLab(root);
  if (!state.regionNames.includes(region))
    throw new Error(`the lab has no region ${region}; it has ${state.regionNames.join(', ')}`);
  const peers = state.regionNames.filter((r) => r !== region);
  const source = options.source ?? peers[0];
  if (source === undefined || !peers.includes(source))
    throw new Error(`--from ${options.source ?? ''}: choose another region of the lab (${peers.join(', ')})`);
  const prefix = topicPrefixOf(readRegionLaunch(root, region));

  let t = performance.now();
  const recorded = state.regions[region]!;
  const outcome = await RegionProcess.stopPid(recorded.pid, { entry: recorded.entry });
  info(`[1/4] region ${region} ${outcome} (${seconds(t)})`);

  t = performance.now();
  const positions = await withLabAdmin(state, (admin) =>
    recordPeerPositions(admin, { prefix, source, peers }),
  );
  info(
    `[2/4] positions of ${source} recorded: ${[...positions.values()].reduce((n, p) => n + p.size, 0)} partitions (${seconds(t)})`,
  );

  t = performance.now();
  const sourcePool = new pg.Pool({ connectionString: labDatabaseUrl(state, source), max: 1 });
  const targetPool = createPool(
    { connectionString: labDatabaseUrl(state, region), max: 2, applicationName: 'hothot-rebootstrap' },
    createRootLogger({ region, level: 'silent' }),
  );
  let snapshot: SnapshotCopyResult;
  let gapsResolved: number;
  try {
    snapshot = await copySnapshot(sourcePool, targetPool, { targetRegion: region });
    await startGroupAt(labAdminKafka(state), applyGroupId(prefix, region), positions, { forwardOnly: true });
    gapsResolved = await resolveReplicationGaps(targetPool, `rebootstrap from ${source}`);
  } finally {
    await Promise.allSettled([sourcePool.end(), targetPool.end()]);
  }
  info(
    `[3/4] snapshot of ${source} merged: ${snapshot.items.toLocaleString('en')} items read, ${snapshot.inserted} inserted, ` +
      `${snapshot.merged} merged, ${snapshot.unchanged} unchanged; ${gapsResolved} gaps resolved (${seconds(t)})`,
  );

  t = performance.now();
  const restarted = await restartLabRegion(root, region);
  info(`[4/4] region ${region} started again at ${restarted.url} (${seconds(t)})`);
  return { region, source, snapshot, gapsResolved, totalMs: Math.round(performance.now() - started) };
}
