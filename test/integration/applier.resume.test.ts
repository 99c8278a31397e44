/**
 * Replication is seen resuming at once after a pause: the first transaction of a partition's batch
 * after it was idle (a heal, a restart, a new region catching up) is small, the rest of the batch
 * goes in full-size transactions, and a batch that follows without a pause goes in full size.
 * Against a real PostgreSQL: which rows committed together is read from their xmin.
 */
import type pg from 'pg';
import { describe, expect } from 'vitest';
import { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { createKafka } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer, type IncomingMessage } from '../../shared/kafka/consumer.js';
import { encodeEvent } from '../../shared/kafka/envelope.js';
import { changeTopic, itemMessageKey } from '../../shared/kafka/topics.js';
import { PeerApplier } from '../../services/applier/peerApplier.js';
import { kafkaClientSecurity, randomId, sharedInfra, testLogger } from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const log = testLogger();
const prefix = `ar${randomId()}`;
const euTopic = changeTopic(prefix, 'eu');
const test = databaseTest(`${prefix}_us`, log);

let offset = 0;
function changes(collection: string, n: number, partition: number): IncomingMessage[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const key = `k${i}`;
    const event = {
      v: 1 as const,
      type: 'change' as const,
      origin: 'eu',
      collection,
      key,
      value: { i },
      deleted: false,
      hlc: { wall: now, logical: i, region: 'eu' },
      vv: { eu: 1 },
      writtenAt: now,
    };
    return {
      topic: euTopic,
      partition,
      offset: String(offset++),
      key: Buffer.from(itemMessageKey(collection, key)),
      value: encodeEvent(event),
      headers: {},
    };
  });
}

/** Rows of `collection` per committing transaction, in commit order of their first row's key. */
async function transactionSizes(pool: pg.Pool, collection: string): Promise<number[]> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM item WHERE collection = $1
      GROUP BY xmin::text::bigint ORDER BY min(substr(key, 2)::int)`,
    [collection],
  );
  return rows.map((r) => r.n);
}

describe('applier resuming after a pause', () => {
  test(
    'when a partition was idle, then its first transaction takes 100 messages and the rest of the batch full-size ones; a batch right after goes in full size',
    async ({ db }) => {
      const kafka = createKafka(
        {
          clientId: 'applier-resume-test',
          brokers: sharedInfra().kafkaBrokers,
          security: kafkaClientSecurity(),
        },
        log,
      );
      const applier = new PeerApplier({
        pool: db.pool,
        // Never started: the batches are handed to applyOnce directly.
        consumer: new KafkaBatchConsumer(kafka, { groupId: `${prefix}.unused`, topics: [] }, log),
        clock: new HybridLogicalClock('us'),
        topicPrefix: prefix,
        region: 'us',
        policies: {},
        log,
      });
      const first = await applier.applyOnce({
        topic: euTopic,
        partition: 0,
        messages: changes('a', 1250, 0),
      });
      expect(first.changes).toBe(1250);
      expect(await transactionSizes(db.pool, 'a')).toEqual([100, 1000, 150]);

      // Right after on the same partition: no pause, full-size transactions.
      await applier.applyOnce({ topic: euTopic, partition: 0, messages: changes('b', 1100, 0) });
      expect(await transactionSizes(db.pool, 'b')).toEqual([1000, 100]);

      // Another partition has never been applied here: it starts small too.
      await applier.applyOnce({ topic: euTopic, partition: 1, messages: changes('c', 300, 1) });
      expect(await transactionSizes(db.pool, 'c')).toEqual([100, 200]);
    },
    DATABASE_START_MS,
  );
});
