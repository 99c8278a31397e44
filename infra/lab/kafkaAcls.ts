/**
 * Who may do what on a secured broker (KRaft's StandardAuthorizer; nothing is allowed without an ACL,
 * `admin` and the broker itself are super users). Per topic prefix, each region's principal
 * `User:<region>` may:
 *
 * - write, describe and create its own change topic `<prefix>.changes.<region>`, and read that topic's
 *   configuration (the region checks `max.message.bytes` at start-up);
 * - read and describe every peer's change topic;
 * - read and describe its own consumer group `<prefix>.apply.<region>` (join, commit, fetch offsets).
 *
 * Every pattern is LITERAL: a PREFIXED `<prefix>.changes.us` would also match `us-east`'s topic. The
 * idempotent producer needs no IDEMPOTENT_WRITE on the cluster (Kafka ≥ 2.8: WRITE on a topic implies
 * it). Peers' topics are created by the admin with the ACLs, so no region needs CREATE on another's.
 */
import kafkajs, { type AclEntry, type Kafka } from 'kafkajs';
import { applyGroupId, changeTopic } from '../../shared/kafka/topics.js';

export type AclResource = 'TOPIC' | 'GROUP';
export type AclOperation = 'READ' | 'WRITE' | 'CREATE' | 'DESCRIBE' | 'DESCRIBE_CONFIGS';

/** One ALLOW rule, from any host, for a LITERAL resource name. */
export interface AclRule {
  readonly principal: string;
  readonly resource: AclResource;
  readonly name: string;
  readonly operation: AclOperation;
}

/** The Kafka principal of a region. */
export function regionPrincipal(region: string): string {
  return `User:${region}`;
}

/** Every rule region `region` needs under `prefix`, with `peers` the regions whose changes it applies. */
export function regionAclRules(prefix: string, region: string, peers: readonly string[]): AclRule[] {
  const principal = regionPrincipal(region);
  const rule = (resource: AclResource, name: string, operation: AclOperation): AclRule => ({
    principal,
    resource,
    name,
    operation,
  });
  const own = changeTopic(prefix, region);
  return [
    ...(['WRITE', 'DESCRIBE', 'CREATE', 'DESCRIBE_CONFIGS'] as const).map((op) => rule('TOPIC', own, op)),
    ...peers.flatMap((peer) =>
      (['READ', 'DESCRIBE'] as const).map((op) => rule('TOPIC', changeTopic(prefix, peer), op)),
    ),
    ...(['READ', 'DESCRIBE'] as const).map((op) => rule('GROUP', applyGroupId(prefix, region), op)),
  ];
}

/** The rules of a set of regions that replicate to each other (each one's peers are all the others). */
export function meshAclRules(prefix: string, regions: readonly string[]): AclRule[] {
  return regions.flatMap((r) =>
    regionAclRules(
      prefix,
      r,
      regions.filter((p) => p !== r),
    ),
  );
}

/** A rule as kafkajs' CreateAcls takes it. */
export function toAclEntry(rule: AclRule): AclEntry {
  return {
    resourceType: kafkajs.AclResourceTypes[rule.resource],
    resourceName: rule.name,
    resourcePatternType: kafkajs.ResourcePatternTypes.LITERAL,
    principal: rule.principal,
    host: '*',
    operation: kafkajs.AclOperationTypes[rule.operation],
    permissionType: kafkajs.AclPermissionTypes.ALLOW,
  };
}

export interface ProvisionOptions {
  readonly prefix: string;
  readonly regions: readonly string[];
  /** Partitions of a change topic created here. @default 3 (the regions' KAFKA_TOPIC_PARTITIONS default) */
  readonly partitions?: number;
}

/**
 * As admin (`kafka` must authenticate as a super user): create the regions' change topics that are
 * missing and every rule of {@link meshAclRules}. Idempotent (an existing rule is kept as it is).
 */
export async function provisionRegions(kafka: Kafka, options: ProvisionOptions): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = options.regions.map((r) => changeTopic(options.prefix, r));
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({ topic, numPartitions: options.partitions ?? 3 })),
      });
    }
    await admin.createAcls({ acl: meshAclRules(options.prefix, options.regions).map(toAclEntry) });
  } finally {
    await admin.disconnect();
  }
}
