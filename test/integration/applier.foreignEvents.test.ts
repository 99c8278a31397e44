/**
 * Foreign and malformed events on a peer's topic, on real Kafka and PostgreSQL: each one is
 * dead-lettered with its reason (bounded, storable) and its raw bytes, the partition goes on, and
 * nothing bad is applied. Stamps far in the future are parked (`clock_skew`) and re-applied by the
 * maintenance job once this region's clock has caught up.
 */
import type { Kafka, Producer } from 'kafkajs';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { EMPTY_COUNTERS, incrementCounter } from '../../shared/domain/policies/counterState.js';
import { HybridLogicalClock } from '../../shared/domain/hlc.js';
import { dumpItems } from '../../shared/db/queries/item.js';
import {
  DeadLetterCode,
  listDeadLetters,
  type StoredDeadLetter,
} from '../../shared/db/queries/deadLetter.js';
import { appliedWatermarks } from '../../shared/db/queries/peerPartitionProgress.js';
import { readPeerReports } from '../../shared/db/queries/peerReport.js';
import { createKafka } from '../../shared/kafka/client.js';
import { KafkaBatchConsumer } from '../../shared/kafka/consumer.js';
import {
  encodeEvent,
  MAX_EVENT_BYTES,
  type ChangeEvent,
  type HeartbeatEvent,
} from '../../shared/kafka/envelope.js';
import { applyGroupId, changeTopic } from '../../shared/kafka/topics.js';
import { PeerApplier } from '../../services/applier/peerApplier.js';
import { Maintenance } from '../../services/maintenance/maintenance.js';
import {
  kafkaClientSecurity,
  randomId,
  sharedInfra,
  testLogger,
  type TestDatabase,
  waitFor,
} from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const NOW = Date.now();
const DAY = 86_400_000;
/** Far enough ahead for any MAX_CLOCK_SKEW_MS (default 60 s) of this test's applier. */
const FAR_FUTURE = NOW + DAY;

interface Sent {
  readonly name: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Record<string, Buffer>;
  /** What must become of it: applied, or a dead letter with this code and reason. */
  readonly expect: { readonly applied: true } | { readonly code: DeadLetterCode; readonly reason: RegExp };
}

const log = testLogger();
const prefix = `t${randomId()}`;
const euTopic = changeTopic(prefix, 'eu');
const apTopic = changeTopic(prefix, 'ap');
let db: TestDatabase;
let pool: pg.Pool;
let kafka: Kafka;
let producer: Producer;
let applier: PeerApplier;
const clock = new HybridLogicalClock('us');
/** Offset on partition 0 of eu's topic → what was sent there. */
const byOffset = new Map<string, Sent>();

const test = databaseTest(`${prefix}_us`, log);

describe('PeerApplier on foreign and malformed events', () => {
  test.beforeAll(async ({ db: started }) => {
    db = started;
    pool = db.pool;
    kafka = createKafka(
      {
        clientId: 'foreign-events-test',
        brokers: sharedInfra().kafkaBrokers,
        security: kafkaClientSecurity(),
      },
      log,
    );
    // The broker's message.max.bytes (2 MiB in our tests, 1 MiB + 12 by default) is below the
    // decoder's MAX_EVENT_BYTES: this topic raises its own limit so that an oversize event can
    // reach the applier at all (as it could from a broker configured with a larger limit).
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: euTopic,
            numPartitions: 2,
            configEntries: [{ name: 'max.message.bytes', value: String(MAX_EVENT_BYTES + 1024 * 1024) }],
          },
          { topic: apTopic, numPartitions: 2 },
        ],
      });
    } finally {
      await admin.disconnect();
    }
    producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    applier = new PeerApplier({
      pool,
      consumer: new KafkaBatchConsumer(
        kafka,
        { groupId: applyGroupId(prefix, 'us'), topics: [euTopic, apTopic] },
        log,
      ),
      clock,
      topicPrefix: prefix,
      region: 'us',
      policies: {},
      log,
    });
    applier.start();
    await waitFor('the applier to join its group', () => applier.isConsuming || undefined);
  }, DATABASE_START_MS);
  afterAll(async () => {
    await applier?.stop();
    await producer?.disconnect();
  });

  let logical = 0;
  function change(key: string, value: unknown, patch: Partial<ChangeEvent> = {}): ChangeEvent {
    return {
      v: 1,
      type: 'change',
      origin: 'eu',
      collection: 'fe',
      key,
      value,
      deleted: false,
      hlc: { wall: NOW, logical: logical++, region: 'eu' },
      vv: { eu: logical },
      writtenAt: NOW,
      ...patch,
    };
  }
  function heartbeat(patch: Partial<HeartbeatEvent> = {}): HeartbeatEvent {
    return {
      v: 1,
      type: 'heartbeat',
      origin: 'eu',
      hlc: { wall: NOW, logical: logical++, region: 'eu' },
      sentAt: NOW,
      partition: 0,
      partitions: 2,
      safeBefore: NOW - 1000,
      watermarks: { ap: NOW - 2000 },
      policies: {},
      ...patch,
    };
  }
  const text = (s: string) => Buffer.from(s, 'utf8');
  /** `event` as JSON with `patch` applied (a field patched to undefined is left out). */
  const json = (event: object, patch: Record<string, unknown> = {}) =>
    text(JSON.stringify({ ...event, ...patch }));
  const good = (name: string, key: string, value: unknown, patch: Partial<ChangeEvent> = {}): Sent => ({
    name,
    key: text(`fe/${key}`),
    value: encodeEvent(change(key, value, patch)),
    expect: { applied: true },
  });
  const bad = (
    name: string,
    value: Buffer | null,
    reason: RegExp,
    code: DeadLetterCode = DeadLetterCode.Invalid,
  ): Sent => ({ name, key: text(`fe/bad-${name}`), value, expect: { code, reason } });

  /** Every kind of bad event, in the order sent, with good events between them. */
  function sequence(): Sent[] {
    const ok = encodeEvent(change('bad-shape', { x: 1 }));
    const invalidUtf8 = Buffer.concat([ok.subarray(0, 40), Buffer.from([0xff, 0xfe]), ok.subarray(40)]);
    const deep = JSON.stringify(change('bad-deep', 0)).replace(
      '"value":0',
      `"value":${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    );
    const bads: Sent[] = [
      bad('truncated JSON', ok.subarray(0, ok.length - 9), /^not JSON: /),
      bad('null value', null, /^empty message$/),
      bad('empty value', Buffer.alloc(0), /^empty message$/),
      bad('invalid UTF-8', invalidUtf8, /^not valid UTF-8 \(first bad byte near offset 40\)$/),
      bad('byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), ok]), /byte order mark/),
      bad('a JSON array', text(`[${ok.toString()}]`), /^event is not a JSON object but an array$/),
      bad('a JSON number', text('17'), /^event is not a JSON object but a number$/),
      bad('JSON null', text('null'), /^event is not a JSON object but null$/),
      bad('v 2', json(change('bad-v2', 1), { v: 2 }), /^unsupported envelope version 2 /),
      bad('v "1"', json(change('bad-vs', 1), { v: '1' }), /^unsupported envelope version "1" /),
      bad('v missing', json(change('bad-vm', 1), { v: undefined }), /^no envelope version/),
      bad('unknown type', json(change('bad-type', 1), { type: 'upsert' }), /^unknown event type "upsert"$/),
      bad('unknown policy', json(change('bad-policy', 1), { policy: 'mvr' }), /policy: Invalid option/),
      bad(
        'policy without its crdt',
        json(change('bad-crdt', 1), { policy: 'counter' }),
        /crdt does not match the policy/,
      ),
      bad('vv zero count', json(change('bad-vv0', 1), { vv: { eu: 1, ap: 0 } }), /vv\.ap: Too small/),
      bad('vv fractional', json(change('bad-vvf', 1), { vv: { eu: 1.5 } }), /vv\.eu: .*int/),
      bad(
        'vv without origin',
        json(change('bad-vvo', 1), { vv: { ap: 1 } }),
        /vv has no entry for the origin/,
      ),
      bad('vv not an object', json(change('bad-vvs', 1), { vv: 'eu=1' }), /vv: .*expected record/),
      bad(
        'vv keyed __proto__',
        text(
          JSON.stringify(change('bad-vvp', 1, { vv: { eu: 1, ap: 1 } })).replace('"ap":1', '"__proto__":1'),
        ),
        /vv: has a "__proto__" key/,
      ),
      bad(
        'hlc of another region',
        json(change('bad-hlcr', 1), { hlc: { wall: NOW, logical: 0, region: 'ap' } }),
        /hlc\.region differs from origin/,
      ),
      bad(
        'hlc beyond 2^53',
        text(JSON.stringify(change('bad-hlcb', 1)).replace(`"wall":${NOW}`, '"wall":9007199254740993')),
        /hlc\.wall: Too big/,
      ),
      bad(
        'hlc negative',
        json(change('bad-hlcn', 1), { hlc: { wall: -5, logical: 0, region: 'eu' } }),
        /hlc\.wall: Too small/,
      ),
      bad(
        'wrong origin for the topic',
        encodeEvent(
          change('bad-origin', 1, {
            origin: 'ap',
            hlc: { wall: NOW, logical: 0, region: 'ap' },
            vv: { ap: 1 },
          }),
        ),
        /^event from ap on the topic of eu$/,
      ),
      bad(
        'deleted with a value',
        json(change('bad-del', 1), { deleted: true }),
        /deleted and value disagree/,
      ),
      bad('NUL in the value', encodeEvent(change('bad-nul', { s: 'a\u0000b' })), /NUL/),
      bad(
        'invalid collection',
        encodeEvent(change('bad-coll', 1, { collection: 'no/slash' })),
        /collection: collection must be/,
      ),
      bad('invalid key', json(change('bad-key', 1), { key: 'a\u0000/b' }), /key: key must be/),
      bad(
        'missing fields',
        json(change('bad-missing', 1), { writtenAt: undefined, deleted: undefined }),
        /deleted: .*; writtenAt: /,
      ),
      bad('a value nested 100,000 deep', text(deep), /nested|deep|depth|stack/i),
      bad(
        'an event over MAX_EVENT_BYTES',
        json(change('bad-huge', 1), { padding: 'x'.repeat(MAX_EVENT_BYTES) }),
        /^event of \d+ bytes is larger than 4194304$/,
      ),
      bad(
        'heartbeat with bad watermarks',
        json(heartbeat(), { watermarks: { ap: -1, 'A P': 5 } }),
        /^invalid heartbeat event: watermarks\.ap: .*; watermarks\.A P: invalid key/,
      ),
      bad(
        'heartbeat of another partition',
        encodeEvent(heartbeat({ partition: 1 })),
        /^heartbeat for partition 1 arrived on partition 0$/,
      ),
      bad(
        'heartbeat partition beyond partitions',
        encodeEvent(heartbeat({ partition: 0, partitions: 0 })),
        /partitions: Too small/,
      ),
      // Valid events, parked: the decoder accepts them, the applier refuses to apply them now.
      bad(
        'a stamp a day ahead',
        encodeEvent(
          change('future', { when: 'tomorrow' }, { hlc: { wall: FAR_FUTURE, logical: 0, region: 'eu' } }),
        ),
        /^clock skew: stamp \d+\.0\.eu from region eu is \d+ ms ahead of this region's clock \(maximum skew 60000 ms\)/,
        DeadLetterCode.ClockSkew,
      ),
      bad(
        'heartbeat with far-future watermarks',
        encodeEvent(heartbeat({ watermarks: { ap: FAR_FUTURE } })),
        /^clock skew: heartbeat from eu has watermarks\.ap \d+, \d+ ms ahead of this region's clock/,
        DeadLetterCode.ClockSkew,
      ),
      bad(
        'heartbeat sent a day ahead',
        encodeEvent(heartbeat({ sentAt: FAR_FUTURE })),
        /^clock skew: heartbeat from eu has sentAt /,
        DeadLetterCode.ClockSkew,
      ),
      bad(
        'policy differs from ours',
        encodeEvent(
          change(
            'likes-1',
            { n: 1 },
            { collection: 'likes', policy: 'counter', crdt: incrementCounter(EMPTY_COUNTERS, 'eu', 'n', 1) },
          ),
        ),
        /^collection likes is counter in eu but lww here/,
        DeadLetterCode.PolicyMismatch,
      ),
    ];
    const out: Sent[] = [good('first good event', 'good-0', { n: 0 })];
    bads.forEach((b, i) => {
      out.push(b);
      if (i % 4 === 3) out.push(good(`good event after ${b.name}`, `good-${i + 1}`, { n: i + 1 }));
    });
    // A raw key and headers that are not text: kept as bytes, headers made storable.
    out.push({
      name: 'binary key and headers',
      key: Buffer.from([0xff, 0x00, 0xfe]),
      value: text('{"v":1,"type":"change"'),
      headers: { 'x-nul\u0000name': Buffer.from([0xff, 0x00, 0x41]), 'x-big': Buffer.alloc(100_000, 0x61) },
      expect: { code: DeadLetterCode.Invalid, reason: /^not JSON: / },
    });
    out.push({
      name: 'a good heartbeat',
      key: text('_heartbeat/eu'),
      value: encodeEvent(heartbeat()),
      expect: { applied: true },
    });
    out.push({
      name: 'a good event with unknown extra fields',
      key: text('fe/good-extra'),
      value: json(change('good-extra', { extra: true }), { trace: 'x'.repeat(300_000) }),
      expect: { applied: true },
    });
    out.push(good('the last good event', 'good-last', { last: true }));
    return out;
  }

  let letters: StoredDeadLetter[] = [];
  let sent: Sent[] = [];

  it('when bad events are mixed with good ones on a partition, then each bad one is dead-lettered and the partition goes on', async () => {
    sent = sequence();
    // One send per message, in order, on one partition: each message gets its own offset.
    for (const s of sent) {
      const [meta] = await producer.send({
        topic: euTopic,
        acks: -1,
        messages: [
          { key: s.key, value: s.value, partition: 0, ...(s.headers ? { headers: s.headers } : {}) },
        ],
      });
      byOffset.set(meta!.baseOffset!, s);
    }
    const expectedLetters = sent.filter((s) => !('applied' in s.expect)).length;
    await waitFor(
      'the last good event to be applied',
      async () => (await dumpItems(pool)).some((i) => i.key === 'good-last') || undefined,
    );
    letters = await listDeadLetters(pool, 1000);
    expect(letters).toHaveLength(expectedLetters);

    for (const d of letters) {
      const s = byOffset.get(String(d.offset));
      expect(s, `dead letter at offset ${d.offset}: ${d.reason}`).toBeDefined();
      expect('applied' in s!.expect, `${s!.name} must not be dead-lettered (${d.reason})`).toBe(false);
      const want = s!.expect as { code: DeadLetterCode; reason: RegExp };
      expect({ name: s!.name, code: d.code }).toEqual({ name: s!.name, code: want.code });
      expect(d.reason, s!.name).toMatch(want.reason);
      expect(d.topic).toBe(euTopic);
      expect(d.partition).toBe(0);
      // The raw message, as it came.
      if (s!.value === null) expect(d.payload).toBeNull();
      else expect(Buffer.from(d.payload!).equals(s!.value), s!.name).toBe(true);
      expect(Buffer.from(d.msgKey!).equals(s!.key!), s!.name).toBe(true);
    }
  });

  it('when the bad events are in dead_letter, then their reasons and headers are storable text of bounded length', () => {
    for (const d of letters) {
      expect(d.reason.length).toBeGreaterThan(10);
      expect(d.reason.length).toBeLessThanOrEqual(2001);
      expect(d.reason).not.toContain('\u0000');
      expect(d.reason.isWellFormed()).toBe(true);
    }
    const binary = letters.find((d) => byOffset.get(String(d.offset))?.name === 'binary key and headers')!;
    expect(binary.msgKey!.equals(Buffer.from([0xff, 0x00, 0xfe]))).toBe(true);
    expect(binary.headers).toEqual({ 'x-nul\\u0000name': '\ufffd\\u0000A', 'x-big': `${'a'.repeat(2000)}…` });
    const huge = letters.find(
      (d) => byOffset.get(String(d.offset))?.name === 'an event over MAX_EVENT_BYTES',
    )!;
    expect(huge.payload!.length).toBeGreaterThan(MAX_EVENT_BYTES);
  });

  it('when the partition went on, then every good event is applied and nothing of a bad one is', async () => {
    const items = await dumpItems(pool);
    const goodKeys = sent
      .filter((s) => 'applied' in s.expect && s.key!.toString().startsWith('fe/'))
      .map((s) => s.key!.toString().slice(3));
    expect(items.map((i) => `${i.collection}/${i.key}`).sort()).toEqual(
      goodKeys.map((k) => `fe/${k}`).sort(),
    );
    expect(items.find((i) => i.key === 'good-last')?.value).toEqual({ last: true });
    expect(items.find((i) => i.key === 'good-extra')?.value).toEqual({ extra: true });
    // Only the good heartbeat was recorded: its mark for partition 0 and its acknowledgements.
    const { rows } = await pool.query<{ partition: number; safe_before: string }>(
      'SELECT partition, safe_before FROM peer_partition_progress ORDER BY partition',
    );
    expect(rows).toEqual([{ partition: 0, safe_before: String(NOW - 1000) }]);
    const reports = await readPeerReports(pool);
    expect(
      reports.map((r) => ({ reporter: r.reporter, watermarks: r.watermarks, sentAt: r.sentAt.getTime() })),
    ).toEqual([{ reporter: 'eu', watermarks: { ap: NOW - 2000 }, sentAt: NOW }]);
    // A parked event does not move this region's clock.
    expect(clock.peek().wall).toBeLessThan(NOW + 60_000);
  });

  it('when the clock of this region has caught up, then maintenance applies the parked far-future events and keeps the rest parked', async () => {
    const later = () => FAR_FUTURE + 1000;
    const maintenance = new Maintenance({
      pool,
      region: 'us',
      peerRegions: () => ['eu', 'ap'],
      intervalMs: 60_000,
      tombstoneGraceMs: DAY,
      peerSuspectAfterMs: 10_000,
      conflictRetentionMs: 30 * DAY,
      conflictLogMaxRows: 100_000,
      historyMaxVersions: 100,
      applyContext: {
        clock: new HybridLogicalClock('us', { physicalNow: later }),
        now: later,
        topicPrefix: prefix,
        region: 'us',
        policies: {},
      },
      log,
    });
    const report = await maintenance.runOnce();
    expect(report.parkedReapplied).toBe(3); // the change a day ahead and two heartbeats
    expect((await dumpItems(pool)).find((i) => i.key === 'future')?.value).toEqual({ when: 'tomorrow' });
    const parked = await listDeadLetters(pool, 1000, [
      DeadLetterCode.ClockSkew,
      DeadLetterCode.PolicyMismatch,
    ]);
    expect(parked.map((d) => d.code)).toEqual([DeadLetterCode.PolicyMismatch]);
    expect(await appliedWatermarks(pool)).toEqual(new Map()); // partition 1 of eu has no mark yet
  });
});
