/**
 * How the lab launched a region (`<lab dir>/region-<region>.launch.json`, written by infra/lab/lab.ts
 * without secrets), read and rewritten to change what the region is told about its peers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { regionLaunchPath, restartLabRegion, writeRegionLaunch } from '../lab.js';
import { signalPid } from '../processes.js';
import { writePeersFile, type RegionProcessOptions } from '../regionProcess.js';
import { waitFor } from '../waitFor.js';
import { fetchLabRegionStatus, readRunningLab } from './runningLab.js';

export type LabRegionLaunch = Omit<RegionProcessOptions, 'databaseUrl'> & { port: number };

export function readRegionLaunch(root: string, region: string): LabRegionLaunch {
  const file = regionLaunchPath(join(root, 'lab'), region);
  if (!existsSync(file))
    throw new Error(
      `${file} is missing (a lab started by an older version): restart the lab with \`hothot lab up\``,
    );
  return JSON.parse(readFileSync(file, 'utf8')) as LabRegionLaunch;
}

/** Save `launch` as region `launch.region`'s launch file (secrets are left out by writeRegionLaunch). */
export function saveRegionLaunch(root: string, launch: LabRegionLaunch): void {
  writeRegionLaunch(join(root, 'lab'), { ...launch, databaseUrl: '' });
}

/** The Kafka topic prefix the lab's regions use. */
export function topicPrefixOf(launch: LabRegionLaunch): string {
  return launch.topicPrefix ?? launch.env?.KAFKA_TOPIC_PREFIX ?? 'hothot';
}

/** How long a region may take to show a membership change in its status after SIGHUP. */
const MEMBERSHIP_SEEN_TIMEOUT_MS = 30_000;

/**
 * Tell lab region `region` that `peers` are its peer regions, without a restart: its peers file is
 * rewritten and the process gets SIGHUP; it then re-reads the file and the public keys file, consumes
 * the new peers' topics (a new one from its start), verifies their events, and its tombstone
 * collection waits for their acknowledgements. Resolves once its `/v1/status` lists exactly `peers`.
 * A region launched without a peers file (a lab started by an older version) is restarted instead.
 * Returns how it was told.
 */
export async function tellRegionPeers(
  root: string,
  region: string,
  peers: readonly string[],
): Promise<'reloaded' | 'restarted'> {
  const launch = { ...readRegionLaunch(root, region), peerRegions: [...peers] };
  saveRegionLaunch(root, launch);
  if (launch.peersFile === undefined) {
    await restartLabRegion(root, region);
    return 'restarted';
  }
  writePeersFile(launch.peersFile, peers);
  const recorded = readRunningLab(root).regions[region]!;
  if (!signalPid(recorded.pid, 'SIGHUP'))
    throw new Error(
      `region ${region} (pid ${recorded.pid}) is not running: \`hothot lab restart ${region}\``,
    );
  const wanted = [...peers].sort().join(',');
  await waitFor(
    async () => {
      const status = await fetchLabRegionStatus(root, recorded.url).catch(() => undefined);
      return (
        status !== undefined &&
        status.peers
          .map((p) => p.region)
          .sort()
          .join(',') === wanted
      );
    },
    {
      description: `region ${region} to list its peers as ${wanted || 'none'} (after SIGHUP)`,
      timeoutMs: MEMBERSHIP_SEEN_TIMEOUT_MS,
      intervalMs: 100,
    },
  );
  return 'reloaded';
}
