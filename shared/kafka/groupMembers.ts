/**
 * Members a consumer left behind in its group, and removing them.
 *
 * kafkajs sends a LeaveGroup only when it stops a consumer that is running: one that crashed (a
 * connection reset or a request timing out in a cut link, during its join or after) stays a member
 * on the coordinator until its session times out. The consumer that replaces it joins as a new
 * member, and the coordinator holds that join until every member it knows has joined again or
 * expired: after a flapping link each crash left such a member, and the last rejoin waited out all
 * of them (a converge after the heal of 11–15 s instead of under 1 s, test/e2e/partition.cutAndHeal).
 *
 * A member's id is its client id, a dash and a UUID, and DescribeGroups lists every member with its
 * client id in every group state: a consumer whose client id is its own alone (see
 * KafkaBatchConsumerOptions.memberClientId) finds what it left behind, and leaves for it.
 */
import type { Admin, Kafka } from 'kafkajs';

/** The ids of the members of `groupId` whose client id is `clientId`. */
export async function membersWithClientId(
  admin: Admin,
  groupId: string,
  clientId: string,
): Promise<string[]> {
  const { groups } = await admin.describeGroups([groupId]);
  const group = groups.find((g) => g.groupId === groupId);
  return (group?.members ?? []).filter((m) => m.clientId === clientId).map((m) => m.memberId);
}

/** The parts of kafkajs's cluster and broker that a LeaveGroup needs. */
interface KafkajsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(args: { groupId: string }): Promise<{
    leaveGroup(args: { groupId: string; memberId: string }): Promise<unknown>;
  }>;
}

/**
 * Send a LeaveGroup for each of `memberIds` of `groupId`, as the coordinator's answer to the member
 * itself would be: the group rebalances without waiting for them. A member the coordinator no longer
 * knows (it expired meanwhile) is not an error.
 *
 * kafkajs has no public call for this (its admin client leaves no group; a consumer leaves only as
 * itself), so this uses the cluster kafkajs builds for its own clients, through the symbol its
 * `Kafka` keeps the factory under (kafkajs 2.2.4, unmaintained since 2023, so that stays as it is);
 * test/integration/kafkaGroupMembers.test.ts fails if it does not.
 */
export async function leaveGroupFor(
  kafka: Kafka,
  groupId: string,
  memberIds: readonly string[],
): Promise<void> {
  if (memberIds.length === 0) return;
  const factory = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === 'private:Kafka:createCluster',
  );
  const create = factory === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[factory];
  if (typeof create !== 'function')
    throw new Error(
      'this kafkajs has no cluster factory where 2.2.4 keeps it: cannot leave a group for a member',
    );
  const cluster = (create as (args: { allowAutoTopicCreation: boolean }) => KafkajsCluster)({
    allowAutoTopicCreation: false,
  });
  try {
    await cluster.connect();
    const coordinator = await cluster.findGroupCoordinator({ groupId });
    for (const memberId of memberIds) {
      try {
        await coordinator.leaveGroup({ groupId, memberId });
      } catch (err) {
        if ((err as { type?: unknown }).type !== 'UNKNOWN_MEMBER_ID') throw err;
      }
    }
  } finally {
    await cluster.disconnect().catch(() => undefined);
  }
}
