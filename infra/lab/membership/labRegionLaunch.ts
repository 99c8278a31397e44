/**
 * How the lab launched a region (`<lab dir>/region-<region>.launch.json`, written by infra/lab/lab.ts
 * without secrets), read and rewritten to change what the region is told about its peers.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { regionLaunchPath, restartLabRegion, writeRegionLaunch } from '../lab.js';
import type { RegionProcessInfo, RegionProcessOptions } from '../regionProcess.js';

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

/**
 * Restart lab region `region` (SIGTERM: it finishes what it is doing; then started again on the same
 * port and waited for until ready) telling it `peers` are its peer regions: it then consumes their
 * topics, verifies their events with the public keys file as it is now, and its tombstone collection
 * waits for their acknowledgements.
 */
export async function restartWithPeers(
  root: string,
  region: string,
  peers: readonly string[],
): Promise<RegionProcessInfo> {
  saveRegionLaunch(root, { ...readRegionLaunch(root, region), peerRegions: [...peers] });
  return restartLabRegion(root, region);
}
