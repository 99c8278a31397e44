import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DIGEST_BUCKETS } from '../../shared/domain/digest.js';
import {
  decodeEvent,
  encodeEvent,
  type BucketKeysEvent,
  type DigestEvent,
  type RepairEvent,
} from '../../shared/kafka/envelope.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);

const NOW = 1_800_000_000_000;
const stamp = { wall: NOW, logical: 0, region: 'eu' };

const goodDigest: DigestEvent = {
  v: 1,
  type: 'digest',
  origin: 'eu',
  hlc: stamp,
  sentAt: NOW,
  settledBefore: NOW - 1000,
  gcHorizon: 0,
  digests: Array.from({ length: DIGEST_BUCKETS }, (_, i) => i.toString(16).padStart(16, '0')),
  maxWalls: Array.from({ length: DIGEST_BUCKETS }, () => NOW - 5000),
};

const goodKeys: BucketKeysEvent = {
  v: 1,
  type: 'bucket-keys',
  origin: 'eu',
  hlc: stamp,
  sentAt: NOW,
  gcHorizon: 0,
  bucket: 17,
  keys: [
    ['people', 'ada', '00000000000000ff'],
    ['people', 'alan', 'ffffffffffffffff'],
  ],
};

/** A version written in us, republished by eu. */
const goodRepair: RepairEvent = {
  v: 1,
  type: 'repair',
  origin: 'eu',
  collection: 'people',
  key: 'ada',
  value: { name: 'Ada' },
  deleted: false,
  hlc: { wall: NOW - 60_000, logical: 2, region: 'us' },
  vv: { us: 3 },
  writtenAt: NOW,
};

const decode = (e: object) => decodeEvent(Buffer.from(JSON.stringify(e)), 'eu');
const reasonOf = (e: object) => {
  const r = decode(e);
  if (r.ok) throw new Error('decoded, expected a refusal');
  return r.reason;
};

describe('anti-entropy events (digest, bucket-keys, repair)', () => {
  it('when well formed, then each decodes to itself', () => {
    for (const e of [goodDigest, goodKeys, goodRepair]) {
      const r = decodeEvent(encodeEvent(e), 'eu');
      expect(r).toEqual({ ok: true, event: e });
    }
  });

  it('when a repair carries a version written by another region, then it decodes; the publisher must still be the topic’s region', () => {
    expect(decode(goodRepair).ok).toBe(true);
    expect(decodeEvent(Buffer.from(JSON.stringify(goodRepair)), 'us')).toEqual({
      ok: false,
      reason: 'event from eu on the topic of us',
    });
  });

  it('when malformed, then each is refused with a reason naming the field', () => {
    expect(reasonOf({ ...goodDigest, digests: goodDigest.digests.slice(1) })).toMatch(
      /^invalid digest event: digests:/,
    );
    expect(reasonOf({ ...goodDigest, digests: ['xyz', ...goodDigest.digests.slice(1)] })).toMatch(
      /digests\.0: not a digest/,
    );
    expect(reasonOf({ ...goodDigest, maxWalls: goodDigest.maxWalls.map(() => -1) })).toMatch(/maxWalls/);
    expect(reasonOf({ ...goodDigest, hlc: { ...stamp, region: 'us' } })).toMatch(
      /hlc.region differs from origin/,
    );
    expect(reasonOf({ ...goodKeys, bucket: DIGEST_BUCKETS })).toMatch(/bucket/);
    expect(reasonOf({ ...goodKeys, keys: [['people', 'ada', 'nothex']] })).toMatch(
      /keys\.0\.2: not a digest/,
    );
    expect(reasonOf({ ...goodKeys, keys: [['Bad Collection!', 'ada', '00000000000000ff']] })).toMatch(
      /keys\.0\.0/,
    );
    expect(reasonOf({ ...goodRepair, vv: { eu: 1 } })).toMatch(/vv has no entry for the writer/);
    expect(reasonOf({ ...goodRepair, deleted: true })).toMatch(/deleted and value disagree/);
    expect(reasonOf({ ...goodRepair, policy: 'fields' })).toMatch(/crdt does not match the policy/);
  });

  it('when any bytes arrive, then decoding never throws', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<object>(goodDigest, goodKeys, goodRepair),
        fc.string(),
        fc.jsonValue(),
        (base, field, value) => {
          const r = decode({ ...base, [field]: value });
          expect(typeof r.ok).toBe('boolean');
        },
      ),
      fcRuns.params(300),
    );
  });
});
