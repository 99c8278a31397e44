import { describe, expect, it } from 'vitest';
import { createKafka } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import { changeTopic } from '../../shared/kafka/topics.js';
import { kafkaClientSecurity, randomId, sharedInfra, testLogger, waitFor } from '../support/harness.js';
import {
  compareConflictLogs,
  conflictLog,
  deleteItem,
  getItem,
  putItem,
  replicatedState,
  signerOf,
  waitConverged,
  type Cluster,
} from '../support/twoRegions.js';
import { clusterTest, REGIONS_START_MS } from '../support/fixtures.js';

const test = clusterTest(['us', 'eu']);

describe('two regions replicating through Kafka', () => {
  let cluster: Cluster;
  let us: string;
  let eu: string;
  const log = testLogger();

  test.beforeAll(({ cluster: started }) => {
    cluster = started;
    us = cluster.regions.us!.url;
    eu = cluster.regions.eu!.url;
  }, REGIONS_START_MS);

  /** Applied-event counter of `region`'s progress for `origin` (duplicates included). */
  async function appliedFrom(region: 'us' | 'eu', origin: string): Promise<number> {
    const { rows } = await cluster.regions[region]!.db.query<{ n: string }>(
      'SELECT coalesce(sum(applied_events), 0) AS n FROM peer_progress WHERE origin = $1',
      [origin],
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Messages on `region`'s change topic, read from the start until `enough` says so. */
  async function readTopic(
    region: string,
    what: string,
    enough: (seen: IncomingMessage[]) => boolean,
  ): Promise<IncomingMessage[]> {
    const infra = sharedInfra();
    const kafka = createKafka(
      { clientId: 'e2e-reader', brokers: infra.kafkaBrokers, security: kafkaClientSecurity() },
      log,
    );
    const seen: IncomingMessage[] = [];
    const reader = new KafkaBatchConsumer(
      kafka,
      { groupId: `reader-${randomId()}`, topics: [changeTopic(cluster.prefix, region)] },
      log,
    );
    await reader.start((b) => {
      seen.push(...b.messages);
      return Promise.resolve();
    });
    try {
      await waitFor(`${what} on ${region}'s topic`, () => enough(seen) || undefined);
    } finally {
      await reader.stop();
    }
    return seen;
  }

  async function republish(region: string, messages: readonly IncomingMessage[]): Promise<void> {
    const infra = sharedInfra();
    const publisher = new KafkaPublisher(
      createKafka(
        { clientId: 'e2e-replayer', brokers: infra.kafkaBrokers, security: kafkaClientSecurity() },
        log,
      ),
      log,
    );
    try {
      // Signed afresh with the region's own key, as a restarted relay of that region publishing old
      // events again would: genuine, so its peers take them to the merge (a replay of the captured
      // signed bytes is quarantined before it: test/integration/applier.signedEvents.test.ts).
      const signer = signerOf(cluster, region);
      await publisher.publish(
        changeTopic(cluster.prefix, region),
        messages.map((m) => ({
          key: m.key!.toString(),
          value: m.value!,
          partition: m.partition,
          headers: signer.headers(m.value!, m.partition),
        })),
        10_000,
      );
    } finally {
      await publisher.disconnect();
    }
  }

  it('when an item is written in us, then eu serves the same value and ETag, and the reverse', async () => {
    const written = await putItem(us, 'people', 'ada', { name: 'Ada', born: 1815 });
    expect(written.status).toBe(201);
    const seen = await waitFor('eu to serve people/ada', async () => {
      const r = await getItem(eu, 'people', 'ada');
      return r.status === 200 ? r : undefined;
    });
    expect(seen.body?.value).toEqual({ name: 'Ada', born: 1815 });
    expect(seen.etag).toBe(written.etag);
    expect(seen.body?.origin).toBe('us');

    const back = await putItem(eu, 'people', 'alan', { name: 'Alan' });
    expect(back.status).toBe(201);
    const seenInUs = await waitFor('us to serve people/alan', async () => {
      const r = await getItem(us, 'people', 'alan');
      return r.status === 200 ? r : undefined;
    });
    expect(seenInUs.body?.value).toEqual({ name: 'Alan' });
    expect(seenInUs.etag).toBe(back.etag);
  });

  it('when the same keys are written concurrently in both regions for several rounds, then both converge and log the same conflicts', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      const results = await Promise.all(
        keys.flatMap((k) => [
          putItem(us, 'race', k, { by: 'us', round }),
          putItem(eu, 'race', k, { by: 'eu', round }),
        ]),
      );
      expect(results.every((r) => r.status === 200 || r.status === 201)).toBe(true);
      await waitConverged(cluster);
    }
    const state = (await replicatedState(cluster.regions.us!)).filter((i) => i.collection === 'race');
    expect(state).toHaveLength(keys.length);
    for (const item of state) {
      // The stored winner is the write with the greater stamp, and its vector counts every round of both regions.
      expect(item.value).toEqual({ by: item.hlc.region, round: rounds - 1 });
      expect(item.vv).toEqual({ eu: rounds, us: rounds });
    }
    const usConflicts = await conflictLog(cluster.regions.us!);
    const euConflicts = await conflictLog(cluster.regions.eu!);
    console.log(
      `[concurrent writes] ${keys.length} keys x ${rounds} rounds: ${usConflicts.length} conflicts in us, ${euConflicts.length} in eu`,
    );
    // At most one conflict per key and round (the two writes of the round, concurrent), the same in both.
    expect(usConflicts.length).toBeGreaterThan(0);
    expect(usConflicts.length).toBeLessThanOrEqual(keys.length * rounds);
    expect(euConflicts).toEqual(usConflicts);
    const cmp = await compareConflictLogs(Object.values(cluster.regions), {
      collections: ['race'],
      finalRows: await replicatedState(cluster.regions.us!),
      identical: true,
    });
    expect(cmp.problems).toEqual([]);
  });

  it('when a deleted item receives an older update replayed by hand, then it stays deleted in every region', async () => {
    expect((await putItem(us, 'tomb', 'x', { v: 1 })).status).toBe(201);
    expect((await putItem(us, 'tomb', 'x', { v: 2 })).status).toBe(200);
    await waitFor(
      'eu to see v2',
      async () =>
        ((await getItem(eu, 'tomb', 'x')).body?.value as { v?: number } | undefined)?.v === 2 || undefined,
    );
    expect(await deleteItem(us, 'tomb', 'x')).toBe(204);
    await waitFor(
      'eu to see the delete',
      async () => (await getItem(eu, 'tomb', 'x')).status === 404 || undefined,
    );

    const isOldUpdate = (m: IncomingMessage) =>
      m.key?.toString() === 'tomb/x' &&
      (JSON.parse(m.value!.toString()) as { deleted: boolean }).deleted === false;
    const events = await readTopic(
      'us',
      'the two updates of tomb/x',
      (seen) => seen.filter(isOldUpdate).length >= 2,
    );
    const old = events.filter(isOldUpdate);
    expect(old).toHaveLength(2);
    const before = await appliedFrom('eu', 'us');
    await republish('us', old.reverse());
    await waitFor(
      'eu to apply the replayed events',
      async () => (await appliedFrom('eu', 'us')) >= before + 2 || undefined,
    );

    expect((await getItem(eu, 'tomb', 'x')).status).toBe(404);
    const row = (await replicatedState(cluster.regions.eu!)).find(
      (i) => i.collection === 'tomb' && i.key === 'x',
    );
    expect(row).toMatchObject({ deleted: true, value: null, vv: { us: 3 } });
  });

  it('when a batch of old events is delivered again out of order, then no region changes', async () => {
    for (let i = 0; i < 10; i++) expect((await putItem(us, 'dup', `d${i}`, { i })).status).toBe(201);
    await waitConverged(cluster);
    const beforeEu = await replicatedState(cluster.regions.eu!);
    const conflictsBefore = await conflictLog(cluster.regions.eu!);

    const isDup = (m: IncomingMessage) => m.key!.toString().startsWith('dup/');
    const all = await readTopic('us', 'the ten dup writes', (seen) => seen.filter(isDup).length >= 10);
    const changes = all.filter(isDup);
    const shuffled = [...changes].reverse().concat(changes.slice(0, Math.ceil(changes.length / 2)));
    const before = await appliedFrom('eu', 'us');
    await republish('us', shuffled);
    await waitFor(
      'eu to apply the redelivered batch',
      async () => (await appliedFrom('eu', 'us')) >= before + shuffled.length || undefined,
    );

    expect(await replicatedState(cluster.regions.eu!)).toEqual(beforeEu);
    expect(await conflictLog(cluster.regions.eu!)).toEqual(conflictsBefore);
  });

  it('when a malformed event lands on a peer topic, then it is dead-lettered and later writes still replicate', async () => {
    const junk = {
      key: Buffer.from('junk/1'),
      value: Buffer.from('\u0000\u0001 not an event'),
      partition: 0,
    } as IncomingMessage;
    await republish('us', [junk]);
    expect((await putItem(us, 'after-junk', 'k', { ok: true })).status).toBe(201);
    await waitFor(
      'eu to apply the write after the junk',
      async () => (await getItem(eu, 'after-junk', 'k')).status === 200 || undefined,
    );
    const { rows } = await cluster.regions.eu!.db.query<{ reason: string; payload: Buffer }>(
      'SELECT reason, payload FROM dead_letter',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.payload.equals(junk.value!)).toBe(true);
    expect(rows[0]!.reason).toMatch(/not JSON/);
    const status = (await (await fetch(`${eu}/v1/status`)).json()) as {
      deadLetters: number;
      peers: { region: string; state: string }[];
    };
    expect(status.deadLetters).toBe(1);
    expect(status.peers).toEqual([expect.objectContaining({ region: 'us', state: 'up' })]);
  });
});
