/**
 * The shared test broker is secured like every deployment (infra/kafka/server.properties): TLS,
 * SCRAM-SHA-512, ACLs by KRaft's StandardAuthorizer from infra/lab/kafkaAcls.ts. Against it, with a
 * topic prefix of this test's own and the ACLs the harness gives regions `us` and `eu`:
 *
 * - `eu`'s credentials write `eu`'s topic, and the broker refuses them `us`'s (TOPIC_AUTHORIZATION_FAILED);
 * - a wrong password does not authenticate; a PLAINTEXT client gets nowhere on a SASL_SSL listener;
 * - `eu` reads `us`'s topic in its own group, and is refused any other group (GROUP_AUTHORIZATION_FAILED).
 */
import { Kafka, type logCreator, logLevel } from 'kafkajs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKafka, kafkaSecurityConfig, type KafkaClientSecurity } from '../../shared/kafka/client.js';
import { applyGroupId, changeTopic } from '../../shared/kafka/topics.js';
import { failureKind } from '../../shared/errors/failureKind.js';
import {
  kafkaClientSecurity,
  provisionTestRegions,
  randomId,
  sharedInfra,
  testLogger,
} from '../support/harness.js';

const infra = sharedInfra();
const secured = infra.kafkaSecurity !== undefined;
const prefix = `acl${randomId()}`;
const log = testLogger('acl');

function client(security: KafkaClientSecurity | undefined, clientId: string): Kafka {
  return createKafka(
    {
      clientId,
      brokers: infra.kafkaBrokers,
      connectionTimeoutMs: 2_000,
      requestTimeoutMs: 5_000,
      ...(security !== undefined ? { security } : {}),
    },
    log,
  );
}

/** The chain of kafkajs errors (each `originalError` / `cause`), as `name:type` strings. */
function errorChain(err: unknown): string[] {
  const chain: string[] = [];
  for (
    let e = err as { name?: string; type?: string; originalError?: unknown; cause?: unknown } | undefined;
    e;
  ) {
    chain.push(`${e.name ?? 'Error'}:${e.type ?? ''}`);
    e = (e.originalError ?? e.cause) as typeof e;
  }
  return chain;
}

describe.skipIf(!secured)(
  'Kafka ACLs: a region writes only its own topic, reads its peers’ in its own group',
  () => {
    const usTopic = changeTopic(prefix, 'us');
    const euTopic = changeTopic(prefix, 'eu');
    let eu: Kafka;

    beforeAll(async () => {
      await provisionTestRegions(prefix, ['us', 'eu']);
      eu = client(kafkaClientSecurity('eu'), 'acl-test-eu');
    });

    it("when a producer holding eu's credentials writes eu's topic, then the broker takes it", async () => {
      const producer = eu.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        const [meta] = await producer.send({
          topic: euTopic,
          acks: -1,
          messages: [{ key: 'k', value: 'from eu' }],
        });
        expect(meta?.errorCode).toBe(0);
      } finally {
        await producer.disconnect();
      }
    });

    it("when a producer holding eu's credentials writes us's topic, then the broker refuses it (TOPIC_AUTHORIZATION_FAILED)", async () => {
      const producer = eu.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        const err = await producer
          .send({ topic: usTopic, acks: -1, messages: [{ key: 'k', value: 'forged by eu' }] })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        expect(err, 'the send must fail').toBeDefined();
        expect(errorChain(err)).toContain('KafkaJSProtocolError:TOPIC_AUTHORIZATION_FAILED');
      } finally {
        await producer.disconnect();
      }
      // Nothing of it is in us's topic.
      const admin = client(kafkaClientSecurity('admin'), 'acl-test-admin').admin();
      await admin.connect();
      try {
        const offsets = await admin.fetchTopicOffsets(usTopic);
        expect(offsets.every((p) => p.high === p.low)).toBe(true);
      } finally {
        await admin.disconnect();
      }
    });

    it('when a client gives a wrong password, then it does not authenticate', async () => {
      const good = kafkaClientSecurity('eu')!;
      const admin = client({ ...good, password: `${good.password}x` }, 'acl-test-wrong').admin({
        retry: { retries: 0 },
      });
      const err = await admin
        .connect()
        .then(() => admin.listTopics())
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await admin.disconnect().catch(() => undefined);
      expect(errorChain(err).join(' ')).toMatch(/KafkaJSSASLAuthenticationError/);
      // The broker's refusal, as the retry loops see it: never retried (shared/errors/failureKind.ts).
      expect(failureKind(err), (err as Error).message).toBe('permanent');
    });

    it('when a client speaks PLAINTEXT to the SASL_SSL listener, then it gets nowhere', async () => {
      const admin = client(undefined, 'acl-test-plaintext').admin({ retry: { retries: 0 } });
      const started = Date.now();
      const err = await admin
        .connect()
        .then(() => admin.listTopics())
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      await admin.disconnect().catch(() => undefined);
      expect(err, 'a PLAINTEXT client must fail').toBeDefined();
      expect(Date.now() - started).toBeLessThan(30_000);
    });

    it("when eu consumes us's topic in its own group, then it reads what us wrote", async () => {
      const us = client(kafkaClientSecurity('us'), 'acl-test-us').producer({
        idempotent: true,
        maxInFlightRequests: 1,
      });
      await us.connect();
      await us.send({ topic: usTopic, acks: -1, messages: [{ key: 'k', value: 'from us' }] });
      await us.disconnect();
      const consumer = eu.consumer({ groupId: applyGroupId(prefix, 'eu'), sessionTimeout: 6_000 });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [usTopic], fromBeginning: true });
        const got = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('nothing consumed within 30 s')), 30_000);
          consumer.on(consumer.events.CRASH, (e) => reject(e.payload.error));
          void consumer.run({
            eachMessage: ({ message }) => {
              clearTimeout(timer);
              resolve(message.value?.toString() ?? '');
              return Promise.resolve();
            },
          });
        });
        expect(got).toBe('from us');
      } finally {
        await consumer.disconnect();
      }
    });

    it("when eu consumes us's topic in another group (us's own), then the broker refuses the group (GROUP_AUTHORIZATION_FAILED)", async () => {
      // kafkajs reports a refused FindCoordinator as "group coordinator not found"; the broker's own
      // error code is in kafkajs' debug log, which this client captures.
      const seen: string[] = [];
      const capture: logCreator =
        () =>
        ({ log: entry }) => {
          const error = (entry as { error?: { type?: string } }).error;
          if (typeof error?.type === 'string') seen.push(error.type);
        };
      const debugKafka = new Kafka({
        clientId: 'acl-test-eu-other-group',
        brokers: [...infra.kafkaBrokers],
        ...kafkaSecurityConfig(kafkaClientSecurity('eu')),
        logLevel: logLevel.DEBUG,
        logCreator: capture,
        retry: { retries: 1 },
      });
      const consumer = debugKafka.consumer({ groupId: applyGroupId(prefix, 'us'), retry: { retries: 1 } });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [usTopic], fromBeginning: true });
        const failure = await new Promise<unknown>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 30_000);
          consumer.on(consumer.events.CRASH, (e) => {
            clearTimeout(timer);
            resolve(e.payload.error);
          });
          consumer.run({ eachMessage: () => Promise.resolve() }).catch((e: unknown) => {
            clearTimeout(timer);
            resolve(e);
          });
        });
        expect(failure, 'joining another region’s group must fail').toBeDefined();
        expect(seen).toContain('GROUP_AUTHORIZATION_FAILED');
      } finally {
        await consumer.disconnect().catch(() => undefined);
      }
    });
  },
);
