import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { POLICIES, Policy } from '../../shared/domain/mergePolicy.js';
import type { PolicyVersion } from '../../shared/domain/policies/policyRules.js';
import { decodeEvent, encodeChangeEvent } from '../../shared/kafka/envelope.js';
import { seeded } from './support/fc.js';
import { buildWrites, localWritesArb } from './support/localWrites.js';

const fcRuns = seeded(import.meta.url);
// Properties take seconds on a busy two-core machine; a soak run (FC_NUM_RUNS) sets its own limit.
if (!process.env.FC_NUM_RUNS?.trim()) vi.setConfig({ testTimeout: 30_000 });

describe.each(POLICIES)('encodeChangeEvent (%s)', (policy) => {
  it('when a local write is encoded, then the decoder reads back the same version', () => {
    fc.assert(
      fc.property(localWritesArb(policy), (writes) => {
        for (const { after, region } of buildWrites(policy, writes)) {
          const payload = encodeChangeEvent({
            origin: region,
            collection: 'c',
            key: 'k',
            version: after,
            writtenAt: 1_234,
          });
          const decoded = decodeEvent(Buffer.from(payload), region);
          if (!decoded.ok) throw new Error(decoded.reason);
          const e = decoded.event;
          if (e.type !== 'change') throw new Error(`decoded a ${e.type} event`);
          expect(e).toMatchObject({ origin: region, collection: 'c', key: 'k', writtenAt: 1_234 });
          // As the applier turns an event back into a version.
          const version: PolicyVersion = {
            policy: e.policy ?? Policy.Lww,
            ...(e.crdt === undefined ? {} : { crdt: e.crdt }),
            value: e.deleted ? null : e.value,
            deleted: e.deleted,
            hlc: e.hlc,
            vv: e.vv,
          };
          expect(version).toEqual(after);
        }
      }),
      fcRuns.params(200),
    );
  });
});

describe('encodeChangeEvent (wire format)', () => {
  it('when an lww version is encoded, then the event names neither policy nor state, fields in the v1 order', () => {
    const payload = encodeChangeEvent({
      origin: 'eu',
      collection: 'people',
      key: 'ada',
      version: {
        policy: Policy.Lww,
        value: { a: 1 },
        deleted: false,
        hlc: { wall: 5, logical: 1, region: 'eu' },
        vv: { eu: 2 },
      },
      writtenAt: 7,
    });
    expect(payload).toBe(
      '{"v":1,"type":"change","origin":"eu","collection":"people","key":"ada","value":{"a":1},"deleted":false,' +
        '"hlc":{"wall":5,"logical":1,"region":"eu"},"vv":{"eu":2},"writtenAt":7}',
    );
  });

  it('when a counter version is encoded, then the policy and its state follow the common fields', () => {
    const crdt = { counters: { n: { eu: { p: 3, n: 0 } } } };
    const payload = encodeChangeEvent({
      origin: 'eu',
      collection: 'likes',
      key: 'x',
      version: {
        policy: Policy.Counter,
        crdt,
        value: { n: 3 },
        deleted: false,
        hlc: { wall: 5, logical: 0, region: 'eu' },
        vv: { eu: 1 },
      },
      writtenAt: 7,
    });
    expect(Object.keys(JSON.parse(payload) as object)).toEqual([
      'v',
      'type',
      'origin',
      'collection',
      'key',
      'value',
      'deleted',
      'hlc',
      'vv',
      'writtenAt',
      'policy',
      'crdt',
    ]);
  });
});
