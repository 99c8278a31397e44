import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { HybridLogicalClock, type HlcStamp } from '../../shared/domain/hlc.js';
import { dumpItems } from '../../shared/db/queries/item.js';
import { listDeadLetters } from '../../shared/db/queries/deadLetter.js';
import { createKafka, ensureTopics } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import { encodeEvent, type ChangeEvent } from '../../shared/kafka/envelope.js';
import { KafkaPublisher, type OutgoingMessage } from '../../shared/kafka/publisher.js';
import { applyGroupId, changeTopic, itemMessageKey } from '../../shared/kafka/topics.js';
import type { VersionVector } from '../../shared/domain/versionVector.js';
import { PeerApplier } from '../../services/applier/peerApplier.js';
import {
  kafkaClientSecurity,
  randomId,
  sharedInfra,
  testLogger,
  type TestDatabase,
  waitFor,
} from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

/** The us region's applier, fed by hand-made events on eu's (and ap's) topics. */
const log = testLogger();
const prefix = `t${randomId()}`;
const euTopic = changeTopic(prefix, 'eu');
const apTopic = changeTopic(prefix, 'ap');
let db: TestDatabase;
let pool: pg.Pool;
let publisher: KafkaPublisher;
let applier: PeerApplier;
let appliedMessages = 0;

const test = databaseTest(`${prefix}_us`, log);

describe('PeerApplier', () => {
  test.beforeAll(async ({ db: started }) => {
    const infra = sharedInfra();
    db = started;
    pool = db.pool;
    const kafka = createKafka(
      { clientId: 'applier-test', brokers: infra.kafkaBrokers, security: kafkaClientSecurity() },
      log,
    );
    await ensureTopics(kafka, [euTopic, apTopic], 2);
    publisher = new KafkaPublisher(kafka, log);
    applier = new PeerApplier({
      pool,
      consumer: new KafkaBatchConsumer(
        kafka,
        { groupId: applyGroupId(prefix, 'us'), topics: [euTopic, apTopic] },
        log,
      ),
      clock: new HybridLogicalClock('us'),
      topicPrefix: prefix,
      region: 'us',
      policies: {},
      log,
    });
    applier.on('applied', (r) => (appliedMessages += r.changes + r.heartbeats + r.deadLetters.length));
    applier.start();
    await waitFor('the applier to join its group', () => applier.isConsuming || undefined);
  }, DATABASE_START_MS);
  afterAll(async () => {
    await applier?.stop();
    await publisher?.disconnect();
  });

  const now = Date.now();
  let logical = 0;
  function change(
    origin: string,
    collection: string,
    key: string,
    value: unknown,
    vv: VersionVector,
    hlc?: Partial<HlcStamp>,
  ): ChangeEvent {
    return {
      v: 1,
      type: 'change',
      origin,
      collection,
      key,
      value: value ?? null,
      deleted: value === undefined,
      hlc: { wall: now, logical: logical++, region: origin, ...hlc },
      vv,
      writtenAt: Date.now(),
    };
  }
  const msg = (e: ChangeEvent): OutgoingMessage => ({
    key: itemMessageKey(e.collection, e.key),
    value: encodeEvent(e),
  });

  async function send(topic: string, messages: OutgoingMessage[]): Promise<void> {
    const target = appliedMessages + messages.length;
    await publisher.publish(topic, messages, 10_000);
    await waitFor(`${messages.length} more messages applied`, () => appliedMessages >= target || undefined);
  }

  async function snapshot() {
    const items = await dumpItems(pool);
    const conflicts = (await pool.query('SELECT count(*)::int AS n FROM conflict')).rows[0] as { n: number };
    return { items: items.map(({ updatedAt: _u, ...rest }) => rest), conflicts: conflicts.n };
  }

  it('when a malformed event sits on a peer topic, then it is dead-lettered with its bytes and later events still apply', async () => {
    const raw = Buffer.from('{"this is": not json');
    const good = change('eu', 'dl', 'after', { ok: true }, { eu: 1 });
    const wrongOrigin = change('ap', 'dl', 'wrong', { ok: false }, { ap: 1 }); // ap's event on eu's topic
    await send(euTopic, [{ key: 'dl/bad', value: raw }, msg(wrongOrigin), msg(good)]);

    const letters = await listDeadLetters(pool);
    expect(letters).toHaveLength(2);
    expect(Buffer.from(letters[0]!.payload!).equals(raw)).toBe(true);
    expect(letters[0]!.reason).toMatch(/not JSON/);
    expect(letters[0]!.msgKey?.toString()).toBe('dl/bad');
    expect(letters[1]!.reason).toMatch(/event from ap on the topic of eu/);
    const items = await dumpItems(pool);
    expect(items.find((i) => i.key === 'after')?.value).toEqual({ ok: true });
    expect(items.find((i) => i.key === 'wrong')).toBeUndefined();
  });

  it('when PostgreSQL rejects one event of a batch, then only that event is dead-lettered and the rest apply', async () => {
    // A constraint of this test's database stands in for any rejection the decoder cannot foresee.
    await pool.query(
      "ALTER TABLE item ADD CONSTRAINT test_refuses_b CHECK (collection <> 'poison' OR key <> 'b')",
    );
    const ok1 = change('eu', 'poison', 'a', { fine: 1 }, { eu: 1 });
    const poison = change('eu', 'poison', 'b', { refused: true }, { eu: 1 });
    const ok2 = change('eu', 'poison', 'c', { fine: 2 }, { eu: 1 });
    const lettersBefore = (await listDeadLetters(pool)).length;
    await send(euTopic, [msg(ok1), msg(poison), msg(ok2)]);
    const letters = await listDeadLetters(pool);
    expect(letters).toHaveLength(lettersBefore + 1);
    expect(letters.at(-1)!.reason).toMatch(/rejected by PostgreSQL: .*test_refuses_b/);
    expect(letters.at(-1)!.payload!.equals(encodeEvent(poison))).toBe(true);
    const keys = (await dumpItems(pool)).filter((i) => i.collection === 'poison').map((i) => i.key);
    expect(keys).toEqual(['a', 'c']);
  });

  it('when an event carries text jsonb cannot store, then the decoder dead-letters it before any write', async () => {
    const text = JSON.stringify(change('eu', 'surrogate', 'k', { s: 'x' }, { eu: 1 })).replace(
      '"x"',
      '"\\ud800"',
    );
    const lettersBefore = (await listDeadLetters(pool)).length;
    await send(euTopic, [{ key: 'surrogate/k', value: Buffer.from(text) }]);
    const letters = await listDeadLetters(pool);
    expect(letters).toHaveLength(lettersBefore + 1);
    expect(letters.at(-1)!.reason).toMatch(/lone (UTF-16 )?surrogate/);
  });

  it('when old events are duplicated and reordered, then nothing changes', async () => {
    const e1 = change('eu', 'dup', 'k', { n: 1 }, { eu: 1 });
    const e2 = change('eu', 'dup', 'k', { n: 2 }, { eu: 2 });
    const c1 = change('ap', 'dup', 'k', { n: 'ap' }, { ap: 1 }); // concurrent with e1, e2
    const e3 = change('eu', 'dup', 'k2', { n: 3 }, { eu: 1 });
    await send(euTopic, [msg(e1), msg(e2), msg(e3)]);
    await send(apTopic, [msg(c1)]);
    const before = await snapshot();
    expect(before.items.find((i) => i.key === 'k')).toMatchObject({
      value: { n: 'ap' },
      vv: { ap: 1, eu: 2 },
    });
    expect(before.conflicts).toBeGreaterThanOrEqual(1);

    await send(euTopic, [msg(e3), msg(e2), msg(e1), msg(e2)]);
    await send(apTopic, [msg(c1), msg(c1)]);
    expect(await snapshot()).toEqual(before);
  });

  it('when an older update arrives after a delete, then the item stays deleted', async () => {
    const create = change('eu', 'tomb', 'k', { v: 'created' }, { eu: 1 });
    const update = change('eu', 'tomb', 'k', { v: 'updated' }, { eu: 2 });
    const del = change('eu', 'tomb', 'k', undefined, { eu: 3 });
    await send(euTopic, [msg(create), msg(update), msg(del)]);
    const stored = (await dumpItems(pool)).find((i) => i.collection === 'tomb');
    expect(stored).toMatchObject({ deleted: true, value: null, vv: { eu: 3 } });

    await send(euTopic, [msg(update), msg(create)]);
    expect((await dumpItems(pool)).find((i) => i.collection === 'tomb')).toMatchObject({
      deleted: true,
      value: null,
      vv: { eu: 3 },
    });
  });

  it('when two origins write the same key concurrently, then the greater stamp wins and the conflict is recorded once', async () => {
    const fromEu = change('eu', 'conf', 'k', { by: 'eu' }, { eu: 1 }, { wall: now + 1000, logical: 0 });
    const fromAp = change('ap', 'conf', 'k', { by: 'ap' }, { ap: 1 }, { wall: now + 1000, logical: 0 });
    await send(euTopic, [msg(fromEu)]);
    await send(apTopic, [msg(fromAp)]);
    await send(apTopic, [msg(fromAp)]); // a duplicate must not record it again
    // Equal wall and logical: the region id breaks the tie, and "eu" > "ap".
    expect((await dumpItems(pool)).find((i) => i.collection === 'conf')).toMatchObject({
      value: { by: 'eu' },
      vv: { ap: 1, eu: 1 },
      hlc: { region: 'eu' },
    });
    const { rows } = await pool.query<{ winner_origin: string; loser_origin: string; rule: string }>(
      "SELECT winner_origin, loser_origin, rule FROM conflict WHERE collection = 'conf'",
    );
    expect(rows).toEqual([{ winner_origin: 'eu', loser_origin: 'ap', rule: 'lww-hlc' }]);
  });
});
