import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Consumer, Kafka } from 'kafkajs';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { KafkaPublisher } from '../../shared/kafka/publisher.js';
import type { Logger } from '../../shared/logging/logger.js';
import { kafkaClientSecurity, randomId, sharedInfra, testLogger, waitFor } from '../support/harness.js';

/**
 * kafkajs reports a failed group join from inside `consumer.run()`: the consumer crashes before the
 * start that made it returns. A restart must not take that start for a success and leave the
 * consumer dead (the flapping-link test once ended with one region applying nothing).
 */
describe('a consumer whose group join keeps failing', () => {
  const log = testLogger();
  const topic = `t${randomId()}.changes.eu`;
  let kafka: Kafka;
  let consumer: KafkaBatchConsumer | undefined;
  let publisher: KafkaPublisher | undefined;

  beforeAll(async () => {
    ({ kafka, publisher } = await kafkaWithTopic('consumer-restart-test', log, topic, 1));
  });
  afterAll(async () => {
    await consumer?.stop();
    await publisher?.disconnect();
  });

  /**
   * A consumer of a fresh group whose joins the broker refuses: a session timeout below its
   * group.min.session.timeout.ms (6 s) crashes every join inside consumer.run(), until the test
   * raises `options.sessionTimeoutMs`. Replaces the previous test's consumer.
   */
  async function refusedConsumer(extra: { linkDown?: () => boolean } = {}) {
    await consumer?.stop();
    const options = { groupId: `g${randomId()}`, topics: [topic], sessionTimeoutMs: 1_000, ...extra };
    const received: IncomingMessage[] = [];
    const c = new KafkaBatchConsumer(kafka, options, log);
    consumer = c;
    await c.start((batch) => {
      received.push(...batch.messages);
      return Promise.resolve();
    });
    return { c, options, received };
  }

  /** Publish `text` and wait (at most `timeoutMs`) until `c` is in its group and has read it. */
  async function publishAndWaitRead(
    c: KafkaBatchConsumer,
    received: readonly IncomingMessage[],
    text: string,
    timeoutMs?: number,
  ): Promise<void> {
    await publisher!.publish(topic, [{ key: 'k', value: Buffer.from(text) }], 10_000);
    await waitFor(
      `the consumer to join and read "${text}"`,
      () => (c.snapshot().joined && received.some((m) => m.value?.toString() === text) ? true : undefined),
      timeoutMs === undefined ? {} : { timeoutMs },
    );
  }

  it('when every join is refused for a while, then the consumer is restarted each time and consumes once a join succeeds', async () => {
    const { c, options, received } = await refusedConsumer();
    // The first crash is of the start above; the ones after it are of restarts, each crashing inside
    // the restart's own start.
    await waitFor('four crashed joins', () => (c.snapshot().crashes >= 4 ? true : undefined), {
      timeoutMs: 30_000,
    });
    expect(c.snapshot().joined).toBe(false);
    expect(c.snapshot().lastCrash).toMatch(/session timeout/i);

    options.sessionTimeoutMs = 10_000;
    await publishAndWaitRead(c, received, 'after the refusals');
    expect(received.map((m) => m.value?.toString())).toEqual(['after the refusals']);
  });

  it('when the restart backoff has grown and retryNow is called (the broker link came back), then the consumer restarts at once, not at the end of the backoff', async () => {
    const { c, options, received } = await refusedConsumer();
    // Restart waits: 0.5 s, then 0.5, 1, 2, 4 s after the 1st…5th failed restart. After the fifth
    // crash the consumer waits 4 s before it tries again.
    await waitFor('five crashed joins', () => (c.snapshot().crashes >= 5 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 20,
    });
    options.sessionTimeoutMs = 10_000;
    const woken = Date.now();
    c.retryNow();
    // Well inside the 4 s the backoff would have waited (the publish takes a few ms).
    await publishAndWaitRead(c, received, 'after retryNow', 2_500);
    expect(Date.now() - woken).toBeLessThan(2_500);
    // A new group reads the topic from its start: the first test's message (when it ran), then this one.
    expect(received.at(-1)?.value?.toString()).toBe('after retryNow');
  });

  it('when the broker link is known down, then a crashed consumer is not restarted until retryNow (the link back up), which restarts it at once', async () => {
    let linkDown = true;
    const { c, options, received } = await refusedConsumer({ linkDown: () => linkDown });
    await waitFor('the first crashed join', () => (c.snapshot().crashes >= 1 ? true : undefined));
    // Ungated, the restarts would crash again after 0.5, 1 and 2 s: none comes while the link is down.
    await expect(
      waitFor('another crash', () => (c.snapshot().crashes >= 2 ? true : undefined), { timeoutMs: 3_000 }),
    ).rejects.toThrow(/timed out/);
    options.sessionTimeoutMs = 10_000;
    linkDown = false;
    c.retryNow();
    await publishAndWaitRead(c, received, 'after the link came back', 2_500);
    expect(c.snapshot().crashes).toBe(1);
  });
});

/**
 * The offset commit is off the batch's path (the handler returns before the broker has it): commits
 * must still reach every applied offset, one at a time, and a stop must leave them committed.
 */
describe('offset commits behind the batches', () => {
  const log = testLogger();
  const topic = `t${randomId()}.changes.eu`;
  const groupId = `g${randomId()}`;
  let kafka: Kafka;
  let publisher: KafkaPublisher | undefined;
  let consumer: KafkaBatchConsumer | undefined;

  beforeAll(async () => {
    ({ kafka, publisher } = await kafkaWithTopic('consumer-offsets-test', log, topic, 3));
  });
  afterAll(async () => {
    await consumer?.stop();
    await publisher?.disconnect();
  });

  it('when many small batches are applied and the consumer stops, then the group has committed the end of every partition', async () => {
    const count = 300;
    const received: IncomingMessage[] = [];
    consumer = new KafkaBatchConsumer(
      kafka,
      { groupId, topics: [topic], partitionsConsumedConcurrently: 3 },
      log,
    );
    await consumer.start((batch) => {
      received.push(...batch.messages);
      return Promise.resolve();
    });
    // One message a publish: many batches, faster than the broker answers commits.
    for (let i = 0; i < count; i++)
      await publisher!.publish(topic, [{ key: `k${i}`, value: Buffer.from(String(i)) }], 10_000);
    await waitFor('every message delivered', () => (received.length >= count ? true : undefined), {
      timeoutMs: 30_000,
    });
    await consumer.stop();
    consumer = undefined;
    const admin = kafka.admin();
    await admin.connect();
    try {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const at = new Map(committed!.partitions.map((p) => [p.partition, p.offset]));
      expect(ends.map((e) => [e.partition, at.get(e.partition)])).toEqual(
        ends.map((e) => [e.partition, e.high]),
      );
      expect(ends.reduce((n, e) => n + Number(e.high), 0)).toBe(count);
    } finally {
      await admin.disconnect();
    }
  });
});

/**
 * A crashed kafkajs consumer sends no LeaveGroup: its member stays in the group until its session
 * expires, and the coordinator holds the next member's join until then (after a flapping link, 11–15
 * s). A consumer with a client id of its own (memberClientId) leaves for such members before it joins.
 */
describe('a member a crashed consumer left in the group', () => {
  const log = testLogger();
  const topic = `t${randomId()}.changes.eu`;
  const groupId = `g${randomId()}`;
  const clientId = `left-behind-test-${randomId()}`;
  let kafka: Kafka;
  let publisher: KafkaPublisher | undefined;
  let consumer: KafkaBatchConsumer | undefined;
  let stuck: Consumer | undefined;
  let release: (() => void) | undefined;

  beforeAll(async () => {
    ({ kafka, publisher } = await kafkaWithTopic(clientId, log, topic, 1));
  });
  afterAll(async () => {
    release?.();
    await consumer?.stop();
    await stuck?.disconnect().catch(() => undefined);
    await publisher?.disconnect();
  });

  it('when a member of the same client id no longer answers, then a starting consumer leaves the group for it and joins without waiting out its 30 s session', async () => {
    // The member left behind: a consumer whose batch handler never returns sends no more heartbeats
    // and never joins again (kafkajs heartbeats between batches), like one whose requests sit in a
    // cut link. Its session and rebalance timeouts are 30 s: the coordinator would wait that long.
    stuck = kafka.consumer({ groupId, sessionTimeout: 30_000, rebalanceTimeout: 30_000 });
    await stuck.connect();
    await stuck.subscribe({ topic, fromBeginning: true });
    let stuckInHandler = false;
    await stuck.run({
      eachBatch: () =>
        new Promise<void>((resolve) => {
          stuckInHandler = true;
          release = resolve;
        }),
    });
    await publisher!.publish(topic, [{ key: 'k', value: Buffer.from('first') }], 10_000);
    await waitFor('the first consumer to hang in its handler', () => (stuckInHandler ? true : undefined));
    const admin = kafka.admin();
    await admin.connect();
    const members = async () =>
      (await admin.describeGroups([groupId])).groups[0]!.members.map((m) => m.memberId);
    try {
      const [left] = await members();
      expect(left).toMatch(new RegExp(`^${clientId}-`));

      // A consumer of that client id whose first join crashes (a session timeout the broker refuses,
      // as in the tests above) and whose restart then joins: the restart is where it looks.
      const received: IncomingMessage[] = [];
      const options = { groupId, topics: [topic], memberClientId: clientId, sessionTimeoutMs: 1_000 };
      consumer = new KafkaBatchConsumer(kafka, options, log);
      await consumer.start((batch) => {
        received.push(...batch.messages);
        return Promise.resolve();
      });
      await waitFor('the first join to crash', () => (consumer!.snapshot().crashes >= 1 ? true : undefined));
      options.sessionTimeoutMs = 10_000;
      const started = Date.now();
      // The first message was never committed: the new member reads it again, and a second one.
      await publisher!.publish(topic, [{ key: 'k', value: Buffer.from('second') }], 10_000);
      await waitFor(
        'the new consumer to join and read both messages',
        () => (consumer!.snapshot().joined && received.length >= 2 ? true : undefined),
        { timeoutMs: 15_000 },
      );
      // Without the LeaveGroup the join waits for the left member's 30 s (checked: it timed out here).
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(received.map((m) => m.value?.toString())).toEqual(['first', 'second']);
      const now = await members();
      expect(now).not.toContain(left);
      expect(now).toHaveLength(1);
    } finally {
      await admin.disconnect();
    }
  });
});

/**
 * A start under way when the broker link comes back: kafkajs retries a refused connection up to
 * 500 ms later, and gives up only after its last retry, so a start that began during a cut joined
 * up to half a second after the heal, or failed then and went round again (a quick catch-up's heal →
 * first apply took 0.85 s that way). Before run() nothing of it is in the group: retryNow abandons it.
 */
describe('a start still connecting when the broker link comes back', () => {
  const log = testLogger();
  const topic = `t${randomId()}.changes.eu`;
  let consumer: KafkaBatchConsumer | undefined;
  let publisher: KafkaPublisher | undefined;
  let link: net.Server | undefined;
  const sockets = new Set<net.Socket>();

  afterAll(async () => {
    await consumer?.stop();
    await publisher?.disconnect();
    for (const s of sockets) s.destroy();
    link?.close();
  });

  it('when retryNow comes while it connects through a refused link, then that start is abandoned at once and the next one joins', async () => {
    ({ publisher } = await kafkaWithTopic('consumer-heal-test', log, topic, 1));
    // The bootstrap address is a forwarder to the broker that resets every connection until the
    // heal (the broker's metadata then sends the client straight to the broker: only the first
    // connection goes through it).
    const [host, port] = sharedInfra().kafkaBrokers[0]!.split(':') as [string, string];
    let healed = false;
    let refused = 0;
    link = net.createServer((client) => {
      sockets.add(client);
      client.on('error', () => undefined);
      client.on('close', () => sockets.delete(client));
      if (!healed) {
        refused += 1;
        client.resetAndDestroy();
        return;
      }
      const broker = net.connect(Number(port), host);
      sockets.add(broker);
      broker.on('error', () => undefined);
      broker.on('close', () => sockets.delete(broker));
      client.pipe(broker).pipe(client);
    });
    await new Promise<void>((resolve) => link!.listen(0, '127.0.0.1', resolve));
    const linkPort = (link.address() as net.AddressInfo).port;
    const kafka = createKafka(
      { clientId: 'consumer-heal-test', brokers: [`127.0.0.1:${linkPort}`], security: kafkaClientSecurity() },
      log,
    );
    const received: IncomingMessage[] = [];
    const handler = (batch: { messages: readonly IncomingMessage[] }) => {
      received.push(...batch.messages);
      return Promise.resolve();
    };
    consumer = new KafkaBatchConsumer(kafka, { groupId: `g${randomId()}`, topics: [topic] }, log);
    const outcome = consumer.start(handler).then(
      () => 'joined',
      (err: Error) => err.message,
    );
    // Inside kafkajs's connection retries (eight, up to 500 ms apart): a few refused already.
    await waitFor('connections refused by the cut link', () => (refused >= 4 ? true : undefined));
    healed = true;
    consumer.retryNow();
    // Abandoned, not joined: left alone it would have connected on kafkajs's next retry and joined
    // (checked: without the abandoning, this start resolved).
    expect(await outcome).toMatch(/broker link came back while the consumer was starting/);

    await consumer.start(handler);
    await publisher.publish(topic, [{ key: 'k', value: Buffer.from('after the heal') }], 10_000);
    await waitFor('the consumer to read after the heal', () =>
      consumer!.snapshot().joined && received.some((m) => m.value?.toString() === 'after the heal')
        ? true
        : undefined,
    );
    expect(consumer.snapshot().crashes).toBe(0);
  });
});

/** A client of the shared broker, `topic` made with `partitions`, and a publisher to it. */
async function kafkaWithTopic(
  clientId: string,
  log: Logger,
  topic: string,
  partitions: number,
): Promise<{ kafka: Kafka; publisher: KafkaPublisher }> {
  const kafka = createKafka(
    { clientId, brokers: sharedInfra().kafkaBrokers, security: kafkaClientSecurity() },
    log,
  );
  await ensureTopics(kafka, [topic], partitions);
  return { kafka, publisher: new KafkaPublisher(kafka, log) };
}
