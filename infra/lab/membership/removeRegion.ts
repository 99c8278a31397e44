/**
 * `hothot lab remove-region <name>`: retire a region of a running lab. Its process stops; the other
 * regions are told, without a restart (peers file + SIGHUP), that it is no longer among their peers,
 * so its acknowledgements stop blocking their tombstone collection and their status stops reporting
 * it; its Kafka principal loses its ACLs (its credentials can no longer publish or consume). Its data
 * stays: its PostgreSQL keeps running with its database (stopped by `hothot lab down`, kept on disk),
 * its topic keeps its events.
 */
import { changeTopic } from '../../../shared/kafka/topics.js';
import kafkajs from 'kafkajs';
import type { LabProgressListener } from '../lab.js';
import { regionAclRules, regionPrincipal } from '../kafkaAcls.js';
import { RegionProcess } from '../regionProcess.js';
import { withLabAdmin } from './labAdminKafka.js';
import { readRegionLaunch, tellRegionPeers, topicPrefixOf } from './labRegionLaunch.js';
import { readRunningLab, updateLabState } from './runningLab.js';

export interface RemoveRegionOptions {
  readonly root: string;
  readonly region: string;
  readonly onProgress?: LabProgressListener;
}

export interface RemoveRegionResult {
  readonly region: string;
  readonly remaining: readonly string[];
  readonly aclsDeleted: number;
  readonly totalMs: number;
}

export async function removeRegion(options: RemoveRegionOptions): Promise<RemoveRegionResult> {
  const started = performance.now();
  const { root, region } = options;
  const progress = options.onProgress ?? (() => undefined);
  const state = readRunningLab(root);
  if (!state.regionNames.includes(region))
    throw new Error(`the lab has no region ${region}; it has ${state.regionNames.join(', ')}`);
  const remaining = state.regionNames.filter((r) => r !== region);
  if (remaining.length === 0) throw new Error(`${region} is the lab's only region: stop the lab instead`);
  const prefix = topicPrefixOf(readRegionLaunch(root, region));
  const info = (message: string) => progress({ type: 'info', message });

  const t0 = performance.now();
  const recorded = state.regions[region]!;
  const outcome = await RegionProcess.stopPid(recorded.pid, { entry: recorded.entry });
  updateLabState(root, (s) => {
    delete s.regions[region];
    s.regionNames = remaining;
  });
  info(
    `[1/3] region ${region} ${outcome} (${((performance.now() - t0) / 1000).toFixed(1)} s); its database and topic stay`,
  );

  const t1 = performance.now();
  const aclsDeleted = await withLabAdmin(state, async (admin) => {
    const rules = regionAclRules(prefix, region, remaining);
    const result = await admin.deleteAcls({
      filters: rules.map((r) => ({
        resourceType: kafkajs.AclResourceTypes[r.resource],
        resourceName: r.name,
        resourcePatternType: kafkajs.ResourcePatternTypes.LITERAL,
        principal: regionPrincipal(region),
        host: '*',
        operation: kafkajs.AclOperationTypes[r.operation],
        permissionType: kafkajs.AclPermissionTypes.ALLOW,
      })),
    });
    return result.filterResponses.reduce((n, f) => n + f.matchingAcls.length, 0);
  });
  info(
    `[2/3] ${aclsDeleted} ACLs of ${regionPrincipal(region)} deleted; ${changeTopic(prefix, region)} kept ` +
      `(${((performance.now() - t1) / 1000).toFixed(1)} s)`,
  );

  const t2 = performance.now();
  const told = await Promise.all(
    remaining.map((r) =>
      tellRegionPeers(
        root,
        r,
        remaining.filter((p) => p !== r),
      ).then((how) => `${r} ${how}`),
    ),
  );
  info(
    `[3/3] ${told.join(', ')} without ${region} among their peers (${((performance.now() - t2) / 1000).toFixed(1)} s)`,
  );
  return { region, remaining, aclsDeleted, totalMs: Math.round(performance.now() - started) };
}
