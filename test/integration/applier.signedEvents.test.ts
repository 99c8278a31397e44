/**
 * Authenticated replication on real Kafka and PostgreSQL, two in-process regions (us, eu) with
 * event keys. A producer that can write us's topic (the test's own Kafka client, the broker's
 * superuser when it has ACLs) publishes a forged event claiming origin us, an event signed with
 * eu's key, a tampered copy of a real us event, replays of real ones (same partition and another),
 * an unsigned heartbeat and one signed with a key id not in the ring: none is applied in eu, each is
 * quarantined with its reason (dead letter, metric, status), the partition goes on and later genuine
 * events still apply. Then: the consumer delivers everything again (offsets reset) — nothing more is
 * quarantined or applied; and us rotates to a new key listed alongside the old one — events signed
 * with either verify.
 *
 * The regions run with SECURITY_MODE=on when the shared broker has credentials for them (otherwise
 * insecure-dev plus the event keys, which sign and verify whatever the mode).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config/loadConfig.js';
import { DeadLetterCode, listDeadLetters } from '../../shared/db/queries/deadLetter.js';
import { findItem } from '../../shared/db/queries/item.js';
import { readPeerReports } from '../../shared/db/queries/peerReport.js';
import { createKafka } from '../../shared/kafka/client.js';
import { encodeEvent, type ChangeEvent, type HeartbeatEvent } from '../../shared/kafka/envelope.js';
import { keyPartition } from '../../shared/kafka/publisher.js';
import { applyGroupId, changeTopic, heartbeatMessageKey, itemMessageKey } from '../../shared/kafka/topics.js';
import {
  EventSigner,
  HEADER_KEY_ID,
  HEADER_SEQUENCE,
  HEADER_SIGNATURE,
} from '../../shared/security/eventAuth.js';
import { eventKeyEnv, loadEventKeys, provisionEventKeys } from '../../shared/security/eventKeys.js';
import { generateSigningKeyPair } from '../../shared/security/eventSignature.js';
import { Region } from '../../services/region/region.js';
import {
  kafkaClientSecurity,
  randomId,
  regionKafkaEnv,
  sharedInfra,
  testLogger,
  testSessionTokenKeys,
  waitFor,
} from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const PARTITIONS = 3;
const HOUR = 3_600_000;

interface Captured {
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

interface Forged {
  readonly name: string;
  readonly partition: number;
  readonly key: string;
  readonly value: Buffer;
  readonly headers?: Record<string, string>;
  readonly kind: string;
  readonly reason: RegExp;
}

/** A change of item sig/`key` as us would publish it, stamped `at`. */
const usChange = (key: string, value: unknown, at = Date.now(), vv = 1): ChangeEvent => ({
  v: 1,
  type: 'change',
  origin: 'us',
  collection: 'sig',
  key,
  value,
  deleted: false,
  hlc: { wall: at, logical: 0, region: 'us' },
  vv: { us: vv },
  writtenAt: at,
});

const log = testLogger();
const keysDir = mkdtempSync(join(tmpdir(), 'hothot-signed-'));
let files: ReturnType<typeof provisionEventKeys>;
let cluster: TestRegions;
/** The regions now running (restarts replace them). */
const live: Record<string, Region> = {};
let kafka: Kafka;
let producer: Producer;
let tap: Consumer;
let usTopic: string;
/** Everything us published, as Kafka has it. */
const captured: Captured[] = [];
/** Changes applied by eu (duplicates included), from its applier's own reports. */
let euChangesApplied = 0;

/**
 * SECURITY_MODE=on when the shared broker has credentials for the regions (TLS + SCRAM, ACLs), as a
 * deployment runs; on a PLAINTEXT broker `on` cannot be satisfied, so insecure-dev plus the event
 * keys (which sign and verify whatever the mode).
 */
let env: Record<string, string> = {};

/** Each region's API port, kept across restarts. */
const ports: Record<string, string> = {};
function watch(region: Region): Region {
  ports[region.config.region] ??= new URL(region.url).port;
  region.applier?.on('applied', (r) => {
    if (region.config.region === 'eu') euChangesApplied += r.changes;
  });
  return region;
}

async function put(region: string, key: string, value: unknown): Promise<void> {
  const res = await fetch(`${live[region]!.url}/v1/items/sig/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  expect(res.status, await res.text()).toBeLessThan(300);
}
const itemIn = (region: string, key: string) => findItem(live[region]!.pool, { collection: 'sig', key });
const applied = (region: string, key: string, value: unknown) =>
  waitFor(`${key} = ${JSON.stringify(value)} in ${region}`, async () => {
    const item = await itemIn(region, key);
    return item !== undefined && JSON.stringify(item.value) === JSON.stringify(value) ? item : undefined;
  });
const quarantinedIn = async (region: string) =>
  (await listDeadLetters(live[region]!.pool, 1000)).filter((d) => d.code === DeadLetterCode.Quarantined);

/** Partition → offset after the last message now on us's topic. */
async function topicEnds(): Promise<Map<number, bigint>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(usTopic);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Whether eu's group has committed every partition of us's topic up to `ends`. */
async function consumedThrough(ends: Map<number, bigint>): Promise<boolean | undefined> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [committed] = await admin.fetchOffsets({
      groupId: applyGroupId(cluster.prefix, 'eu'),
      topics: [usTopic],
    });
    const at = new Map(committed!.partitions.map((p) => [p.partition, BigInt(p.offset)]));
    return [...ends].every(([p, end]) => (at.get(p) ?? -1n) >= end) || undefined;
  } finally {
    await admin.disconnect();
  }
}

/** Restart `name` with the event keys `keys` (same database, topics and port). */
async function restart(name: string, keys = files[name]!): Promise<void> {
  const old = live[name]!;
  await old.stop();
  const config = loadConfig({
    REGION: name,
    PEER_REGIONS: name === 'us' ? 'eu' : 'us',
    DATABASE_URL: cluster.databaseUrls[name],
    KAFKA_BROKERS: sharedInfra().kafkaBrokers.join(','),
    ...regionKafkaEnv(name),
    KAFKA_TOPIC_PREFIX: cluster.prefix,
    PORT: ports[name]!,
    ...env,
    ...eventKeyEnv(keys),
  });
  const region = new Region(config, testLogger(name));
  live[name] = region;
  await region.start();
  watch(region); // its applier exists once started
}

const test = regionsTest(() => {
  files = provisionEventKeys(keysDir, ['us', 'eu']);
  env = {
    SECURITY_MODE: sharedInfra().kafkaSecurity === undefined ? 'insecure-dev' : 'on',
    SESSION_TOKEN_KEYS: testSessionTokenKeys(),
    HEARTBEAT_INTERVAL_MS: '300',
    MAX_CLOCK_SKEW_MS: String(4 * HOUR),
  };
  // The harness gives each region its Kafka principal and the topics' ACLs; the keys are this test's.
  return startTestRegions(['us', 'eu'], env, (r) => eventKeyEnv(files[r]!));
});

describe('authenticated replication: forged, tampered and replayed events', () => {
  test.beforeAll(async ({ regions }) => {
    cluster = regions;
    live.us = watch(cluster.regions.us!);
    live.eu = watch(cluster.regions.eu!);
    usTopic = changeTopic(cluster.prefix, 'us');
    // The test's own client may write any topic: the broker's superuser when it has one.
    const security = kafkaClientSecurity();
    kafka = createKafka(
      {
        clientId: 'signed-events-test',
        brokers: sharedInfra().kafkaBrokers,
        ...(security === undefined ? {} : { security }),
      },
      log,
    );
    producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    // The regions create the topics in the background; eu consumes once they exist.
    await waitFor('eu to apply us', () => live.eu!.applier?.isConsuming || undefined);
    tap = kafka.consumer({ groupId: `tap-${randomId()}`, maxWaitTimeInMs: 100 });
    await tap.connect();
    await tap.subscribe({ topic: usTopic, fromBeginning: true });
    await tap.run({
      eachMessage: ({ partition, message }) => {
        captured.push({
          partition,
          offset: message.offset,
          key: message.key!,
          value: message.value!,
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
        });
        return Promise.resolve();
      },
    });
  }, REGIONS_START_MS);
  afterAll(async () => {
    await tap?.disconnect();
    await producer?.disconnect();
    await Promise.allSettled(Object.values(live).map((r) => r.stop()));
    rmSync(keysDir, { recursive: true, force: true });
  });

  const byOffset = new Map<string, Forged>();
  let forged: Forged[] = [];
  let genuineAda: Captured;
  let forgedHeartbeatSentAt = 0;

  it('when us writes, then what it publishes is signed (key id, sequence, signature) and eu applies it', async () => {
    await put('us', 'ada', { name: 'Ada' });
    await applied('eu', 'ada', { name: 'Ada' });
    genuineAda = await waitFor('us to publish ada', () =>
      captured.find((c) => c.key.toString() === itemMessageKey('sig', 'ada')),
    );
    expect(genuineAda.headers[HEADER_KEY_ID]).toBe('us-1');
    expect(genuineAda.headers[HEADER_SEQUENCE]).toMatch(
      new RegExp(`^\\d+\\.[0-9a-f]{8}\\.${genuineAda.partition}\\.\\d+$`),
    );
    expect(genuineAda.headers[HEADER_SIGNATURE]).toMatch(/^[A-Za-z0-9+/]{86}==$/);
    expect(genuineAda.partition).toBe(keyPartition(itemMessageKey('sig', 'ada'), PARTITIONS));
    const beat = await waitFor('a heartbeat of us', () =>
      captured.find((c) => c.key.toString() === heartbeatMessageKey('us')),
    );
    expect(beat.headers[HEADER_KEY_ID]).toBe('us-1');
    expect(await quarantinedIn('eu')).toEqual([]);
  });

  it('when a Kafka writer publishes forged, tampered, replayed and unsigned events on us topic, then eu quarantines each with its reason and applies none', async () => {
    const now = Date.now();
    const far = now + HOUR; // within this test's MAX_CLOCK_SKEW_MS: only the signature stops it
    forgedHeartbeatSentAt = far;
    const change = (key: string, value: unknown, vv = 1) => usChange(key, value, now, vv);
    const heartbeat = (partition: number): HeartbeatEvent => ({
      v: 1,
      type: 'heartbeat',
      origin: 'us',
      hlc: { wall: far, logical: 0, region: 'us' },
      sentAt: far,
      partition,
      partitions: PARTITIONS,
      safeBefore: far,
      watermarks: { eu: far },
      policies: {},
    });
    const euKeys = loadEventKeys(files.eu!, 'eu');
    const stranger = generateSigningKeyPair('us-9');
    // The partition later genuine writes of `after` take: the forgeries go before them.
    const p = keyPartition(itemMessageKey('sig', 'after'), PARTITIONS);
    const other = (genuineAda.partition + 1) % PARTITIONS;
    const at = (
      name: string,
      key: string,
      value: Buffer,
      headers: Record<string, string> | undefined,
      kind: string,
      reason: RegExp,
      partition = p,
    ): Forged => ({
      name,
      partition,
      key,
      value,
      ...(headers === undefined ? {} : { headers }),
      kind,
      reason,
    });
    const k = (key: string) => itemMessageKey('sig', key);
    const unsigned = encodeEvent(change('forged-unsigned', { evil: 1 }));
    const byEu = encodeEvent(change('forged-by-eu', { evil: 2 }));
    const byEuAsUs1 = encodeEvent(change('forged-as-us-1', { evil: 3 }));
    // A real us event, altered: a newer vector and another value (it would fast-forward if applied).
    const tampered = Buffer.from(
      genuineAda.value.toString().replace('"Ada"', '"Eve"').replace('"vv":{"us":1}', '"vv":{"us":7}'),
    );
    expect(tampered.equals(genuineAda.value)).toBe(false);
    const hbUnsigned = encodeEvent(heartbeat(p));
    const hbStranger = encodeEvent(heartbeat(p));
    const genuineBeat = captured.find((c) => c.key.toString() === heartbeatMessageKey('us'))!;
    forged = [
      at(
        'an unsigned change',
        k('forged-unsigned'),
        unsigned,
        undefined,
        'unsigned',
        /^unsigned event: no hothot-sig header$/,
      ),
      at(
        "a change signed with eu's key claiming origin us",
        k('forged-by-eu'),
        byEu,
        new EventSigner(euKeys.signing, 'us').headers(byEu, p),
        'unknown_key',
        /^unknown key id "eu-1" for region us$/,
      ),
      at(
        "a change signed with eu's key under us's key id",
        k('forged-as-us-1'),
        byEuAsUs1,
        new EventSigner({ keyId: 'us-1', privateKey: euKeys.signing.privateKey }, 'us').headers(byEuAsUs1, p),
        'bad_signature',
        /^bad signature: the event was not signed by us's key us-1 or was altered$/,
      ),
      at(
        'a tampered copy of a real us event',
        k('ada'),
        tampered,
        genuineAda.headers,
        'bad_signature',
        /^bad signature: /,
        genuineAda.partition,
      ),
      at(
        'a replay of a real us event',
        k('ada'),
        genuineAda.value,
        genuineAda.headers,
        'replayed',
        /^replayed: publish sequence \S+ of us is not after \S+, already accepted on partition \d$/,
        genuineAda.partition,
      ),
      at(
        'a replay of a real us event on another partition',
        k('ada'),
        genuineAda.value,
        genuineAda.headers,
        'replayed',
        new RegExp(
          `^replayed: publish sequence \\S+ of us was published to partition ${genuineAda.partition}, not ${other}$`,
        ),
        other,
      ),
      at(
        'a replay of a real heartbeat',
        heartbeatMessageKey('us'),
        genuineBeat.value,
        genuineBeat.headers,
        'replayed',
        /^replayed: /,
        genuineBeat.partition,
      ),
      at(
        'an unsigned heartbeat',
        heartbeatMessageKey('us'),
        hbUnsigned,
        undefined,
        'unsigned',
        /^unsigned event/,
      ),
      at(
        'a heartbeat signed with a key id not in the ring',
        heartbeatMessageKey('us'),
        hbStranger,
        new EventSigner(stranger.signing, 'us').headers(hbStranger, p),
        'unknown_key',
        /^unknown key id "us-9" for region us$/,
      ),
      at(
        'headers that are not a signature',
        k('forged-malformed'),
        unsigned,
        { [HEADER_KEY_ID]: 'us-1', [HEADER_SIGNATURE]: 'x', [HEADER_SEQUENCE]: '1' },
        'malformed',
        /^malformed signature headers: /,
      ),
    ];
    const appliedBefore = euChangesApplied;
    for (const f of forged) {
      const [meta] = await producer.send({
        topic: usTopic,
        acks: -1,
        messages: [
          {
            key: f.key,
            value: f.value,
            partition: f.partition,
            ...(f.headers ? { headers: f.headers } : {}),
          },
        ],
      });
      byOffset.set(`${f.partition}/${meta!.baseOffset!}`, f);
    }
    const letters = await waitFor(`${forged.length} quarantined messages in eu`, async () => {
      const q = await quarantinedIn('eu');
      return q.length >= forged.length ? q : undefined;
    });
    expect(letters).toHaveLength(forged.length);
    for (const d of letters) {
      const f = byOffset.get(`${d.partition}/${d.offset}`);
      expect(f, `quarantined at ${d.partition}/${d.offset}: ${d.reason}`).toBeDefined();
      expect(d.reason, f!.name).toMatch(f!.reason);
      expect(d.topic).toBe(usTopic);
      expect(Buffer.from(d.payload!).equals(f!.value), f!.name).toBe(true);
    }
    // Nothing of them was applied: no change at all while they went through.
    expect(euChangesApplied - appliedBefore).toBe(0);

    // The partition goes on: a later genuine write behind the forgeries applies.
    await put('us', 'after', { n: 1 });
    await applied('eu', 'after', { n: 1 });
    for (const key of ['forged-unsigned', 'forged-by-eu', 'forged-as-us-1', 'forged-malformed'])
      expect(await itemIn('eu', key), key).toBeUndefined();
    expect(await itemIn('eu', 'ada')).toMatchObject({ value: { name: 'Ada' }, vv: { us: 1 } });
  });

  it('when the forged heartbeats were quarantined, then no watermark, acknowledgement or peer liveness moved', async () => {
    const { rows } = await live.eu!.pool.query<{ safe_before: string }>(
      "SELECT safe_before FROM peer_partition_progress WHERE origin = 'us'",
    );
    expect(rows.length).toBe(PARTITIONS);
    for (const r of rows) expect(Number(r.safe_before)).toBeLessThan(forgedHeartbeatSentAt - HOUR / 2);
    const report = (await readPeerReports(live.eu!.pool)).find((r) => r.reporter === 'us');
    expect(report?.watermarks.eu ?? 0).toBeLessThan(forgedHeartbeatSentAt - HOUR / 2);
    expect(report!.sentAt.getTime()).toBeLessThan(forgedHeartbeatSentAt - HOUR / 2);
  });

  it('when eu reports itself, then its status and metrics count the quarantined messages by reason', async () => {
    const status = (await (await fetch(`${live.eu!.url}/v1/status`)).json()) as {
      quarantined: number;
      deadLetters: number;
    };
    expect(status.quarantined).toBe(forged.length);
    expect(status.deadLetters).toBe(forged.length);
    const metrics = await (await fetch(`${live.eu!.url}/metrics`)).text();
    const count = (reason: string) =>
      Number(
        new RegExp(`^hothot_quarantined_events_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)$`, 'm').exec(
          metrics,
        )?.[1],
      );
    const want: Record<string, number> = {};
    for (const f of forged) want[f.kind] = (want[f.kind] ?? 0) + 1;
    for (const reason of ['unsigned', 'malformed', 'unknown_key', 'bad_signature', 'replayed'])
      expect(count(reason), reason).toBe(want[reason] ?? 0);
    expect(metrics).toMatch(
      new RegExp(`^hothot_dead_letters_total\\{[^}]*code="quarantined"[^}]*\\} ${forged.length}$`, 'm'),
    );
  });

  it('when eu consumes the whole topic again (offsets reset), then redeliveries are not replays: nothing more is quarantined or applied wrongly', async () => {
    await live.eu!.stop();
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.resetOffsets({
        groupId: applyGroupId(cluster.prefix, 'eu'),
        topic: usTopic,
        earliest: true,
      });
    } finally {
      await admin.disconnect();
    }
    const appliedBefore = euChangesApplied;
    await restart('eu');
    await put('us', 'after', { n: 2 });
    await applied('eu', 'after', { n: 2 });
    const highWatermarks = await topicEnds();
    // Every message on us's topic up to now, the forgeries too, consumed again and committed.
    await waitFor('eu to consume the whole topic again', () => consumedThrough(highWatermarks));
    // Redelivered: the genuine changes again (ada, after n=1) and the new one.
    expect(euChangesApplied - appliedBefore).toBeGreaterThanOrEqual(3);
    expect(await quarantinedIn('eu')).toHaveLength(forged.length);
    expect(await itemIn('eu', 'ada')).toMatchObject({ value: { name: 'Ada' }, vv: { us: 1 } });
    for (const key of ['forged-unsigned', 'forged-by-eu', 'forged-as-us-1', 'forged-malformed'])
      expect(await itemIn('eu', key), key).toBeUndefined();
    // Each quarantined message was counted once, by the process that first refused it.
    const metrics = await (await fetch(`${live.eu!.url}/metrics`)).text();
    expect(
      metrics.match(/^hothot_quarantined_events_total\{.*\} (\d+)$/gm)?.map((l) => l.split(' ')[1]),
    ).toEqual(['0', '0', '0', '0', '0']);
  });

  it('when us rotates to a new key listed alongside the old one, then events signed with either key verify', async () => {
    const rotated = provisionEventKeys(keysDir, ['us', 'eu'], {
      keyId: (r) => (r === 'us' ? 'us-2' : 'eu-1'),
      keepOldPublicKeys: true,
    });
    // Step 1: every region learns the new public key (restart: the keyring is read at start).
    await restart('eu', rotated.eu);
    // Step 2: us signs with the new key.
    await restart('us', rotated.us);
    await put('us', 'rotated', { key: 2 });
    await applied('eu', 'rotated', { key: 2 });
    const withNew = await waitFor('us to publish with us-2', () =>
      captured.find((c) => c.key.toString() === itemMessageKey('sig', 'rotated')),
    );
    expect(withNew.headers[HEADER_KEY_ID]).toBe('us-2');
    // Meanwhile, something still signing with the old key (a relay not yet restarted) is accepted.
    const old = loadEventKeys(files.us!, 'us').signing;
    const late = encodeEvent(usChange('late-old-key', { key: 1 }));
    const partition = keyPartition(itemMessageKey('sig', 'late-old-key'), PARTITIONS);
    await producer.send({
      topic: usTopic,
      acks: -1,
      messages: [
        {
          key: itemMessageKey('sig', 'late-old-key'),
          value: late,
          partition,
          headers: new EventSigner(old, 'us').headers(late, partition),
        },
      ],
    });
    await applied('eu', 'late-old-key', { key: 1 });
    expect(await quarantinedIn('eu')).toHaveLength(forged.length);
  });

  it('when us publishes a chunk of chained messages, then eu takes the chain head’s one signature for them all, and a chain broken by an altered message vouches only for what follows the break', async () => {
    const signer = new EventSigner(loadEventKeys(files.us!, 'us').signing, 'us');
    const partition = 0;
    /** `n` keys of collection sig that go to `partition`. */
    const keysOn = (prefix: string, n: number) => {
      const keys: string[] = [];
      for (let i = 0; keys.length < n; i++)
        if (keyPartition(itemMessageKey('sig', `${prefix}${i}`), PARTITIONS) === partition)
          keys.push(`${prefix}${i}`);
      return keys;
    };
    const event = (key: string, value: unknown) => encodeEvent(usChange(key, value));
    // Each message's own signature spoiled (well-formed, wrong): only its chain can vouch for it.
    const spoiled = (headers: Record<string, string>) => ({
      ...headers,
      [HEADER_SIGNATURE]: Buffer.alloc(64, 7).toString('base64'),
    });
    const chunkOf = (keys: readonly string[]) =>
      signer.chain(
        keys.map((key) => {
          const value = event(key, { chained: key });
          return {
            key: itemMessageKey('sig', key),
            value,
            partition,
            headers: signer.headers(value, partition),
          };
        }),
      );
    const send = (
      messages: readonly { key: string; value: Buffer; partition: number; headers: Record<string, string> }[],
    ) =>
      producer.send({
        topic: usTopic,
        acks: -1,
        messages: messages.map((m) => ({ ...m, headers: spoiled(m.headers) })),
      });

    const whole = keysOn('chained-', 6);
    await send(chunkOf(whole));
    for (const key of whole) await applied('eu', key, { chained: key });
    expect(await quarantinedIn('eu')).toHaveLength(forged.length);

    // The third message altered after signing: the chain up to it vouches for nothing (those
    // messages stand alone, and fail); the messages after it are a genuine chain to the head.
    const keys = keysOn('broken-', 6);
    const broken = chunkOf(keys).map((m, i) =>
      i === 2 ? { ...m, value: event(keys[2]!, { altered: true }) } : m,
    );
    await send(broken);
    for (const key of keys.slice(3)) await applied('eu', key, { chained: key });
    await waitFor(
      'eu to quarantine the three messages before the break',
      async () => (await quarantinedIn('eu')).length === forged.length + 3 || undefined,
    );
    for (const key of keys.slice(0, 3)) expect(await itemIn('eu', key), key).toBeUndefined();
  });
});
