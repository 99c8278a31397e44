/**
 * The error taxonomy (shared/errors/failureKind.ts) and the one retry loop that follows it
 * (shared/lifecycle/retry.ts): what is retried, what is thrown at once, what crashes.
 */
import fc from 'fast-check';
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  KafkaJSSASLAuthenticationError,
} from 'kafkajs';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { ClockSkewError } from '../../shared/domain/hlc.js';
import { PolicyMismatchError, WriteRefusedError } from '../../shared/domain/policies/policyRules.js';
import { UnavailableError, BadRequestError } from '../../shared/errors/appError.js';
import { failureKind, TransientError, type FailureKind } from '../../shared/errors/failureKind.js';
import { MessageTooLargeError, PublishTimeoutError } from '../../shared/kafka/publisher.js';
import { NotReadyForBatchesError } from '../../shared/kafka/consumer.js';
import { backoffDelay, retry, STOPPED } from '../../shared/lifecycle/retry.js';
import { seeded } from './support/fc.js';

const fcRuns = seeded(import.meta.url);
const log = pino({ level: 'silent' });

/** A node-postgres error as the driver makes it: a message and a SQLSTATE `code`. */
function pgError(code: string, message = `pg ${code}`): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

function protocolError(type: string, code: number, retriable: boolean): Error {
  return new KafkaJSProtocolError({ message: type, type, code, retriable } as unknown as Error);
}

describe('failureKind', () => {
  const cases: readonly [string, unknown, FailureKind][] = [
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'x')"), 'bug'],
    ['a RangeError', new RangeError('Invalid array length'), 'bug'],
    [
      'a TypeError raised inside a dependency (kafkajs listing topics before it has metadata)',
      Object.assign(
        new TypeError("Cannot destructure property 'topicMetadata' of '(intermediate value)' as it is null."),
        {
          stack:
            "TypeError: Cannot destructure property 'topicMetadata' of '(intermediate value)' as it is null.\n" +
            '    at Object.listTopics (/app/node_modules/kafkajs/src/admin/index.js:103:13)\n' +
            '    at async ensureTopics (/app/shared/kafka/client.ts:95:30)',
        },
      ),
      'transient',
    ],
    ['a ReferenceError', new ReferenceError('x is not defined'), 'bug'],
    ['a failed assertion', Object.assign(new Error('x == y'), { name: 'AssertionError' }), 'bug'],
    ['a lost PostgreSQL connection', new Error('Connection terminated unexpectedly'), 'transient'],
    [
      'a pool that could not connect in time',
      new Error('timeout exceeded when trying to connect'),
      'transient',
    ],
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'transient'],
    ['a deadlock', pgError('40P01'), 'transient'],
    ['a serialization failure', pgError('40001'), 'transient'],
    ['a PostgreSQL restart', pgError('57P01'), 'transient'],
    ['a full disk', pgError('53100'), 'transient'],
    ['a cancelled statement', pgError('57014'), 'transient'],
    ['a NUL PostgreSQL rejects', pgError('22P05'), 'permanent'],
    ['a unique violation', pgError('23505'), 'permanent'],
    ['refused credentials', pgError('28P01'), 'permanent'],
    [
      'a migration failing on a lost connection',
      new Error('migration 0001 failed', { cause: pgError('08006') }),
      'transient',
    ],
    [
      'a migration failing on bad SQL',
      new Error('migration 0001 failed', { cause: pgError('42601') }),
      'permanent',
    ],
    [
      'a broker not reachable',
      new KafkaJSConnectionError('Connection error: connect ECONNREFUSED'),
      'transient',
    ],
    [
      'a request timing out',
      new KafkaJSRequestTimeoutError('Request Produce(key: 0, version: 7) timed out'),
      'transient',
    ],
    [
      'retries exhausted on a lost connection',
      new KafkaJSNumberOfRetriesExceeded(new KafkaJSConnectionError('Connection timeout'), {
        retryCount: 5,
        retryTime: 100,
      }),
      'transient',
    ],
    ['a rebalance (kafkajs: not retriable)', protocolError('REBALANCE_IN_PROGRESS', 27, false), 'transient'],
    [
      'an unknown member (kafkajs: not retriable)',
      protocolError('UNKNOWN_MEMBER_ID', 25, false),
      'transient',
    ],
    ['a leader moving', protocolError('NOT_LEADER_FOR_PARTITION', 6, true), 'transient'],
    ['a topic not authorized', protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false), 'permanent'],
    ['a group not authorized', protocolError('GROUP_AUTHORIZATION_FAILED', 30, false), 'permanent'],
    [
      'a refused SASL login (the broker says why)',
      new (KafkaJSSASLAuthenticationError as unknown as new (m: string) => Error)(
        'SASL SCRAM SHA512 authentication failed: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512',
      ),
      'permanent',
    ],
    [
      'a SASL exchange cut by a lost connection',
      new (KafkaJSSASLAuthenticationError as unknown as new (m: string) => Error)(
        'SASL SCRAM SHA512 authentication failed: Not connected',
      ),
      'transient',
    ],
    [
      'retries exhausted on a refused topic',
      new KafkaJSNumberOfRetriesExceeded(protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false), {
        retryCount: 0,
        retryTime: 0,
      }),
      'permanent',
    ],
    [
      'a TypeError inside kafkajs',
      new KafkaJSNonRetriableError(new TypeError('x is undefined')),
      'transient',
    ],
    ['a publish not acknowledged in time', new PublishTimeoutError(5000), 'transient'],
    ['an event over the broker limit', new MessageTooLargeError('MESSAGE_TOO_LARGE'), 'permanent'],
    [
      'a region waiting for its snapshot',
      new NotReadyForBatchesError('the snapshot is loading'),
      'transient',
    ],
    ['a state that passes', new TransientError('not known yet'), 'transient'],
    ['a 503', new UnavailableError('unavailable', 'down'), 'transient'],
    ['a 400', new BadRequestError('invalid_value', 'bad'), 'permanent'],
    [
      'a peer stamp too far ahead',
      new ClockSkewError({ wall: 10_000, logical: 0, region: 'eu' }, 0, 500),
      'permanent',
    ],
    ['a policy mismatch', new PolicyMismatchError('fields vs lww'), 'permanent'],
    ['a refused write', new WriteRefusedError('invalid_value', 'not an object'), 'permanent'],
    [
      'an aggregate with one permanent part',
      new AggregateError([pgError('40001'), pgError('22P05')]),
      'permanent',
    ],
    [
      'an aggregate of transient parts',
      new AggregateError([pgError('40001'), pgError('08006')]),
      'transient',
    ],
    ['an error of unknown origin', new Error('something else'), 'permanent'],
    ['a thrown string', 'oops', 'permanent'],
  ];
  it.each(cases)('when the failure is %s, then it is classified as expected', (_what, err, kind) => {
    expect(failureKind(err)).toBe(kind);
  });

  it('when an error of any kind is wrapped as the cause of a plain error, then the wrapper has its kind', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...cases.filter(([, e]) => e instanceof Error)),
        fc.integer({ min: 1, max: 4 }),
        ([, err, kind], depth) => {
          let wrapped: unknown = err;
          for (let i = 0; i < depth; i++) wrapped = new Error(`context ${i}`, { cause: wrapped });
          expect(failureKind(wrapped)).toBe(kind);
        },
      ),
      fcRuns.params(200),
    );
  });
});

describe('backoffDelay', () => {
  it('when failures go on, then the wait doubles from the first and never passes the longest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 200 }),
        (first, max, n) => {
          const b = { firstMs: first, maxMs: max };
          expect(backoffDelay(b, 1)).toBe(Math.min(first, max));
          expect(backoffDelay(b, n + 1)).toBeGreaterThanOrEqual(backoffDelay(b, n));
          expect(backoffDelay(b, n)).toBeLessThanOrEqual(max);
        },
      ),
      fcRuns.params(200),
    );
  });
});

describe('retry', () => {
  const backoff = { firstMs: 1, maxMs: 4 };
  const noWait = () => Promise.resolve();

  it('when the work fails transiently and then succeeds, then it is retried and its result returned', async () => {
    const failures: number[] = [];
    let calls = 0;
    const result = await retry(
      async () => {
        await Promise.resolve(); // a real asynchronous step
        calls += 1;
        if (calls < 4) throw pgError('40P01');
        return 'done';
      },
      { what: 'apply', log, backoff, wait: noWait, onFailure: (_e, n) => failures.push(n) },
    );
    expect(result).toBe('done');
    expect(calls).toBe(4);
    expect(failures).toEqual([1, 2, 3]);
  });

  it('when the work fails permanently, then it is tried once and the error thrown', async () => {
    let calls = 0;
    const err = pgError('22P05');
    await expect(
      retry(
        async () => {
          await Promise.resolve(); // a real asynchronous step
          calls += 1;
          throw err;
        },
        { what: 'apply', log, backoff, wait: noWait },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it('when the work hits a programmer error, then it crashes loudly: logged as fatal, never retried', async () => {
    const onBug = vi.fn();
    const fatal = vi.fn();
    const spyLog = Object.assign(Object.create(log) as typeof log, { fatal });
    let calls = 0;
    const err = new TypeError('undefined is not a function');
    await expect(
      retry(
        async () => {
          await Promise.resolve(); // a real asynchronous step
          calls += 1;
          throw err;
        },
        { what: 'publish', log: spyLog, backoff, wait: noWait, onBug },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
    expect(onBug).toHaveBeenCalledWith(err);
    expect(fatal).toHaveBeenCalledTimes(1);
  });

  it('when the work says "not yet", then it is waited out for the time asked without counting as failures', async () => {
    const waits: number[] = [];
    const failures: number[] = [];
    const reasons: string[] = [];
    let calls = 0;
    await retry(
      async () => {
        await Promise.resolve(); // a real asynchronous step
        calls += 1;
        if (calls <= 3) throw new NotReadyForBatchesError('loading', 7);
        if (calls === 4) throw pgError('08006');
        return undefined;
      },
      {
        what: 'apply',
        log,
        backoff: { firstMs: 50, maxMs: 400 },
        wait: (ms) => (waits.push(ms), Promise.resolve()),
        onFailure: (_e, n) => failures.push(n),
        onNotYet: (r) => reasons.push(r),
      },
    );
    expect(waits).toEqual([7, 7, 7, 50]);
    expect(failures).toEqual([1]);
    expect(reasons).toEqual(['loading', 'loading', 'loading']);
  });

  it('when attempts run out, then the last transient failure is thrown', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          await Promise.resolve(); // a real asynchronous step
          calls += 1;
          throw pgError('40001', `attempt ${calls}`);
        },
        { what: 'fetch offsets', log, backoff, wait: noWait, attempts: 3 },
      ),
    ).rejects.toThrow('attempt 3');
    expect(calls).toBe(3);
  });

  it('when the component stops while failing, then no further attempt is made and STOPPED is returned', async () => {
    let calls = 0;
    let stopping = false;
    const stopped = await retry(
      async () => {
        await Promise.resolve(); // a real asynchronous step
        calls += 1;
        if (calls === 2) stopping = true;
        throw pgError('08006');
      },
      { what: 'join', log, backoff, wait: noWait, stopped: () => stopping },
    );
    expect(stopped).toBe(STOPPED);
    expect(calls).toBe(2);
  });
});
