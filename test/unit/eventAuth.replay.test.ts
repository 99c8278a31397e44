/**
 * Authenticated replication, the pure parts: the headers a signer writes and how a peer checks
 * them (unsigned, malformed, unknown key, bad signature), the replay rule on publish sequences
 * (redelivery vs replay, relay restarts, several relay instances at once, pruning), and the key
 * files (provisioning, loading, the checks that catch a misconfigured region).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  admitSequence,
  checkSignedMessage,
  checkSignedMessageAsync,
  emptyGuardState,
  EventSigner,
  HEADER_KEY_ID,
  HEADER_SEQUENCE,
  HEADER_SIGNATURE,
  MAX_REMEMBERED_INSTANCES,
  parseSeq,
  PublishSequence,
  SIGNATURE_HEADERS_MAX_BYTES,
  type MessageCheck,
  type PublishSeq,
} from '../../shared/security/eventAuth.js';
import { EventKeyError, loadEventKeys, provisionEventKeys } from '../../shared/security/eventKeys.js';
import { eu, keyring, us } from './support/eventKeys.js';
import { seeded } from './support/fc.js';

const runs = seeded(import.meta.url);

const value = Buffer.from(JSON.stringify({ v: 1, type: 'change', origin: 'us', key: 'k', value: { a: 1 } }));
const outcome = (c: MessageCheck) => (c.ok ? 'ok' : `${c.kind}: ${c.reason}`);

describe('signing and checking a message', () => {
  it('when a region signs a message, then a peer verifies it against the region whose topic it came from, and only that one', () => {
    const signer = new EventSigner(us.signing, 'us', new PublishSequence(1_700_000_000_000, '0badc0de'));
    const headers = signer.headers(value, 0);
    expect(Object.keys(headers).sort()).toEqual([HEADER_KEY_ID, HEADER_SEQUENCE, HEADER_SIGNATURE].sort());
    expect(headers[HEADER_SEQUENCE]).toBe('1700000000000.0badc0de.0.1');
    // One counter per partition.
    expect(signer.headers(value, 0)[HEADER_SEQUENCE]).toBe('1700000000000.0badc0de.0.2');
    expect(signer.headers(value, 2)[HEADER_SEQUENCE]).toBe('1700000000000.0badc0de.2.1');
    const check = checkSignedMessage(keyring, 'us', headers, value);
    expect(check).toMatchObject({
      ok: true,
      keyId: 'us-1',
      seq: { counter: 1, partition: 0, instance: '1700000000000.0badc0de' },
    });
    // The same message on eu's topic: us's key id is not one of eu's.
    expect(outcome(checkSignedMessage(keyring, 'eu', headers, value))).toMatch(
      /^unknown_key: unknown key id "us-1" for region eu/,
    );
    // The headers fit the allowance every record's size counts.
    const bytes = Object.entries(headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 1);
    expect(bytes).toBeLessThanOrEqual(SIGNATURE_HEADERS_MAX_BYTES);
  });

  it('when a message is unsigned, partly signed, malformed, tampered or signed by another region, then it is refused with the kind and the reason', () => {
    const headers = new EventSigner(us.signing, 'us').headers(value, 1);
    const forged = new EventSigner({ keyId: 'us-1', privateKey: eu.signing.privateKey }, 'us').headers(
      value,
      1,
    );
    const euAsUs = new EventSigner(eu.signing, 'us').headers(value, 1);
    const tampered = Buffer.from(value.toString().replace('"a":1', '"a":2'));
    const without = (name: string) => Object.fromEntries(Object.entries(headers).filter(([k]) => k !== name));
    const cases: [string, Record<string, string>, Buffer | null, RegExp][] = [
      ['no headers', {}, value, /^unsigned: unsigned event: no hothot-sig header$/],
      ['other headers only', { traceparent: 'x' }, value, /^unsigned: /],
      ['no signature', without(HEADER_SIGNATURE), value, /^malformed: .*no hothot-sig header$/],
      ['no sequence', without(HEADER_SEQUENCE), value, /^malformed: .*no hothot-seq header$/],
      ['no key id', without(HEADER_KEY_ID), value, /^malformed: .*no hothot-kid header$/],
      [
        'key id not a key id',
        { ...headers, [HEADER_KEY_ID]: 'us 1' },
        value,
        /^malformed: .*hothot-kid is not a key id/,
      ],
      [
        'signature not base64',
        { ...headers, [HEADER_SIGNATURE]: `${headers[HEADER_SIGNATURE]!.slice(0, 85)}*==` },
        value,
        /^malformed: .*not a base64 Ed25519/,
      ],
      [
        'two signatures joined',
        { ...headers, [HEADER_SIGNATURE]: `${headers[HEADER_SIGNATURE]},${headers[HEADER_SIGNATURE]}` },
        value,
        /^malformed: /,
      ],
      [
        'sequence not a sequence',
        { ...headers, [HEADER_SEQUENCE]: '12' },
        value,
        /^malformed: .*hothot-seq is not/,
      ],
      [
        'sequence changed',
        { ...headers, [HEADER_SEQUENCE]: headers[HEADER_SEQUENCE]!.replace(/\d+$/, '999') },
        value,
        /^bad_signature: /,
      ],
      [
        'tampered value',
        headers,
        tampered,
        /^bad_signature: bad signature: the event was not signed by us's key us-1 or was altered$/,
      ],
      ['null value', headers, null, /^bad_signature: /],
      ["eu's key claiming us's key id", forged, value, /^bad_signature: /],
      [
        "eu's key under its own id, claiming origin us",
        euAsUs,
        value,
        /^unknown_key: unknown key id "eu-1" for region us$/,
      ],
    ];
    for (const [name, h, v, want] of cases)
      expect(outcome(checkSignedMessage(keyring, 'us', h, v)), name).toMatch(want);
    expect(outcome(checkSignedMessage(keyring, 'ap', headers, value))).toMatch(
      /^unknown_key: no public key is known for region ap$/,
    );
  });

  it('when signing and checking run on the thread pool (what the relay and the applier use), then they agree with the synchronous ones', async () => {
    const signer = new EventSigner(us.signing, 'us', new PublishSequence(1_700_000_000_000, '0badc0de'));
    // Sequence numbers are taken at the call, in call order, whenever the signatures complete.
    const [h1, h2] = await Promise.all([signer.headersAsync(value, 4), signer.headersAsync(value, 4)]);
    expect([h1[HEADER_SEQUENCE], h2[HEADER_SEQUENCE]]).toEqual([
      '1700000000000.0badc0de.4.1',
      '1700000000000.0badc0de.4.2',
    ]);
    expect(checkSignedMessage(keyring, 'us', h1, value).ok).toBe(true);
    expect(await checkSignedMessageAsync(keyring, 'us', h2, value)).toMatchObject({
      ok: true,
      keyId: 'us-1',
    });
    const tampered = Buffer.from(value.toString().replace('"a":1', '"a":2'));
    expect(await checkSignedMessageAsync(keyring, 'us', h1, tampered)).toMatchObject({
      ok: false,
      kind: 'bad_signature',
    });
    expect(await checkSignedMessageAsync(keyring, 'us', {}, value)).toMatchObject({
      ok: false,
      kind: 'unsigned',
    });
    expect(await checkSignedMessageAsync(keyring, 'eu', h1, value)).toMatchObject({
      ok: false,
      kind: 'unknown_key',
    });
  });

  it('when a sequence header is parsed, then only <instance ms>.<8 hex>.<partition>.<counter ≥ 1> is accepted', () => {
    expect(parseSeq('1700000000000.0a1b2c3d.3.42')).toEqual({
      instance: '1700000000000.0a1b2c3d',
      instanceMs: 1_700_000_000_000,
      partition: 3,
      counter: 42,
      text: '1700000000000.0a1b2c3d.3.42',
    });
    for (const bad of [
      '',
      '1.0a1b2c3d.1',
      '1.0a1b2c3d.0.0',
      '1.0A1B2C3D.0.1',
      '1.0a1b2c3.0.1',
      '-1.0a1b2c3d.0.1',
      '1.0a1b2c3d.01.1',
      '1.0a1b2c3d.100000.1',
      '1.0a1b2c3d.0.1.2',
      '99999999999999999.0a1b2c3d.0.1',
      '1.0a1b2c3d.0.99999999999999999',
    ])
      expect(parseSeq(bad), bad).toBeUndefined();
  });
});

describe('the replay rule (admitSequence)', () => {
  const seqOf = (instanceMs: number, nonce: string, counter: number, partition = 0): PublishSeq =>
    parseSeq(`${instanceMs}.${nonce}.${partition}.${counter}`)!;
  const a = (n: number, partition = 0) => seqOf(1000, 'aaaaaaaa', n, partition);
  const b = (n: number, partition = 0) => seqOf(2000, 'bbbbbbbb', n, partition);

  it('when one relay publishes in order, then every message is accepted, and the same message published again is a replay', () => {
    const g = emptyGuardState();
    expect(admitSequence(g, a(1), 10n, 'us', 0)).toEqual({ ok: true, redelivery: false });
    expect(admitSequence(g, a(5), 11n, 'us', 0)).toEqual({ ok: true, redelivery: false }); // gaps: failed publishes
    const replay = admitSequence(g, a(1), 12n, 'us', 0);
    expect(replay.ok ? 'ok' : replay.reason).toBe(
      'replayed: publish sequence 1000.aaaaaaaa.0.1 of us is not after 1000.aaaaaaaa.0.5, already accepted on partition 0',
    );
    expect(admitSequence(g, a(5), 13n, 'us', 0).ok).toBe(false); // the latest, again: also a replay
    expect(g.lastOffset).toBe(11n);
  });

  it('when a genuine message is copied to another partition, then it is a replay there, whatever that partition has seen', () => {
    const g = emptyGuardState();
    const copied = admitSequence(g, a(9, 0), 5n, 'us', 1);
    expect(copied.ok ? 'ok' : copied.reason).toBe(
      'replayed: publish sequence 1000.aaaaaaaa.0.9 of us was published to partition 0, not 1',
    );
    expect(admitSequence(g, a(1, 1), 6n, 'us', 1).ok).toBe(true);
  });

  it('when the consumer delivers again what it already handled (same offset), then it is a redelivery, not a replay', () => {
    const g = emptyGuardState();
    admitSequence(g, a(1), 10n, 'us', 0);
    admitSequence(g, a(2), 11n, 'us', 0);
    expect(admitSequence(g, a(1), 10n, 'us', 0)).toEqual({ ok: true, redelivery: true });
    expect(admitSequence(g, a(2), 11n, 'us', 0)).toEqual({ ok: true, redelivery: true });
    expect(admitSequence(g, a(3), 12n, 'us', 0)).toEqual({ ok: true, redelivery: false });
  });

  it('when a relay restarts (a new instance, its clock even behind the old one) or two relays publish at once, then each instance is checked on its own', () => {
    const g = emptyGuardState();
    const restarted = seqOf(500, 'cccccccc', 1, 2); // a clock that went backwards: still a new instance
    expect(admitSequence(g, b(7, 2), 1n, 'us', 2).ok).toBe(true);
    expect(admitSequence(g, restarted, 2n, 'us', 2).ok).toBe(true);
    expect(admitSequence(g, a(1, 2), 3n, 'us', 2).ok).toBe(true); // interleaved with b
    expect(admitSequence(g, b(8, 2), 4n, 'us', 2).ok).toBe(true);
    expect(admitSequence(g, a(2, 2), 5n, 'us', 2).ok).toBe(true);
    expect(admitSequence(g, b(7, 2), 6n, 'us', 2).ok).toBe(false);
  });

  it('when more instances were seen than are remembered, then the one seen longest ago is forgotten: an unknown instance that started no later is a replay, a live one and a new one are not', () => {
    const g = emptyGuardState();
    let offset = 0n;
    const live = seqOf(500, 'aaaaaaaa', 1, 1); // started first, still publishing (heartbeats)
    expect(admitSequence(g, live, offset++, 'eu', 1).ok).toBe(true);
    for (let i = 1; i <= MAX_REMEMBERED_INSTANCES + 2; i++) {
      // Relays that start, publish once and stop (a crash loop), while the live one goes on.
      expect(admitSequence(g, seqOf(i * 1000, 'dddddddd', 1, 1), offset++, 'eu', 1).ok).toBe(true);
      expect(admitSequence(g, seqOf(500, 'aaaaaaaa', 1 + i, 1), offset++, 'eu', 1).ok).toBe(true);
    }
    expect(g.instances.size).toBe(MAX_REMEMBERED_INSTANCES);
    expect(g.instances.has('500.aaaaaaaa')).toBe(true);
    expect(g.floorMs).toBe(3000); // the crash-looping instances 1000, 2000 and 3000 were forgotten
    const old = admitSequence(g, seqOf(2000, 'dddddddd', 9, 1), offset++, 'eu', 1);
    expect(old.ok ? 'ok' : old.reason).toMatch(
      /^replayed: .* from a publisher instance that started no later than one already forgotten on partition 1 \(at 3000; 64 are remembered\)$/,
    );
    expect(admitSequence(g, seqOf(500, 'aaaaaaaa', 1000, 1), offset++, 'eu', 1).ok).toBe(true);
    expect(admitSequence(g, seqOf(99_000, 'eeeeeeee', 1, 1), offset++, 'eu', 1).ok).toBe(true);
  });

  it('when genuine publishes of several relay instances are interleaved in any order on a partition, then all are accepted and every later copy of any of them is a replay', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 }),
        fc.nat(),
        (schedule, pick) => {
          const counters = [0, 0, 0, 0];
          const g = emptyGuardState();
          const published: PublishSeq[] = [];
          let offset = 100n;
          for (const i of schedule) {
            counters[i]! += 1 + (pick % 3); // gaps: publishes that failed
            const s = seqOf(1000 * (i + 1), `0000000${i}`, counters[i]!);
            published.push(s);
            expect(admitSequence(g, s, offset++, 'us', 0).ok).toBe(true);
          }
          const copy = published[pick % published.length]!;
          expect(admitSequence(g, copy, offset++, 'us', 0).ok).toBe(false);
        },
      ),
      runs.params(300),
    );
  });
});

describe('key files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hothot-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('when keys are provisioned for a lab, then each region loads its own key and every public key, and a second run keeps them', () => {
    const files = provisionEventKeys(dir, ['us', 'eu']);
    expect(files.us).toEqual({
      keyFile: join(dir, 'us.us-1.key.pem'),
      keyId: 'us-1',
      publicKeysFile: join(dir, 'public-keys.json'),
    });
    const loaded = loadEventKeys(files.us!, 'us');
    expect(loaded.warnings).toEqual([]);
    expect([...loaded.keyring.keys()].sort()).toEqual(['eu', 'us']);
    const before = readFileSync(files.eu!.keyFile, 'utf8');
    provisionEventKeys(dir, ['us', 'eu']);
    expect(readFileSync(files.eu!.keyFile, 'utf8')).toBe(before);
  });

  it('when a region rotates, then the public keys list the old and the new key', () => {
    const rotated = provisionEventKeys(dir, ['us', 'eu'], {
      keyId: (r) => (r === 'us' ? 'us-2' : 'eu-1'),
      keepOldPublicKeys: true,
    });
    const ring = loadEventKeys(rotated.us!, 'us').keyring;
    expect([...ring.get('us')!.keys()].sort()).toEqual(['us-1', 'us-2']);
    expect([...ring.get('eu')!.keys()]).toEqual(['eu-1']);
  });

  it('when the key files are wrong, then loading fails naming the variable and the fix', () => {
    const files = provisionEventKeys(dir, ['us', 'eu']);
    const publicKeys = JSON.parse(readFileSync(files.us!.publicKeysFile, 'utf8')) as Record<
      string,
      Record<string, string>
    >;
    const write = (name: string, text: string) => {
      const f = join(dir, name);
      writeFileSync(f, text);
      return f;
    };
    const fail = (f: Partial<typeof files.us>, region = 'us') => {
      try {
        loadEventKeys({ ...files.us!, ...f }, region);
        return 'loaded';
      } catch (err) {
        expect(err).toBeInstanceOf(EventKeyError);
        return (err as Error).message;
      }
    };
    expect(fail({ keyFile: join(dir, 'missing.pem') })).toMatch(
      /^EVENT_SIGNING_KEY_FILE .*missing\.pem: ENOENT/,
    );
    expect(fail({ keyFile: files.us!.publicKeysFile })).toMatch(/^EVENT_SIGNING_KEY_FILE /);
    expect(fail({ publicKeysFile: write('bad.json', '{"us": ') })).toMatch(
      /^EVENT_PUBLIC_KEYS_FILE .*: not JSON/,
    );
    expect(fail({ publicKeysFile: write('bad2.json', '{"us": {"us 1": "x"}}') })).toMatch(
      /"us 1" is not a key id/,
    );
    expect(fail({ publicKeysFile: write('bad3.json', '{"us": {"us-1": "not a pem"}}') })).toMatch(
      /us\.us-1: /,
    );
    // This region's key id is not listed, or listed with another key: peers would refuse everything.
    expect(fail({ publicKeysFile: write('noown.json', JSON.stringify({ eu: publicKeys.eu })) })).toMatch(
      /has no key us-1 for this region \(us\)/,
    );
    expect(
      fail({
        publicKeysFile: write(
          'swapped.json',
          JSON.stringify({ ...publicKeys, us: { 'us-1': publicKeys.eu!['eu-1'] } }),
        ),
      }),
    ).toMatch(/key us-1 of us is not the public half of EVENT_SIGNING_KEY_FILE/);
    chmodSync(files.us!.keyFile, 0o644);
    expect(loadEventKeys(files.us!, 'us').warnings).toEqual([
      expect.stringMatching(/can be read by others \(mode 644\): chmod 600 it/),
    ]);
    chmodSync(files.us!.keyFile, 0o600);
  });
});
