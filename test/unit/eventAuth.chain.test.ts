/**
 * Chained messages (shared/security/eventAuth.ts): a relay chunk's messages to one partition carry
 * links and one signature over the last, and a peer checking a batch verifies that one signature
 * instead of one per message. The verdicts must be exactly those of checking each message alone;
 * the chain only makes them cheaper, and can never vouch for a message it does not fix.
 *
 * To see which path decided, some tests spoil the messages' own signatures (well-formed, wrong):
 * a message then passes only if its chain vouched for it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkSignedMessage,
  checkSignedMessages,
  checkSignedMessagesAsync,
  EventSigner,
  HEADER_CHAIN_PREVIOUS,
  HEADER_CHAIN_SIGNATURE,
  HEADER_SIGNATURE,
  PublishSequence,
  SIGNATURE_HEADERS_MAX_BYTES,
  type MessageCheck,
  type SignedMessage,
} from '../../shared/security/eventAuth.js';
import { eu, keyring, us } from './support/eventKeys.js';
import { seeded } from './support/fc.js';

const runs = seeded(import.meta.url);

const TOPIC = 'hothot.changes.us';
/** A well-formed Ed25519 signature that signs nothing here. */
const WRONG_SIGNATURE = Buffer.alloc(64, 7).toString('base64');

interface Published {
  readonly partition: number;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

/** One relay chunk as the relay makes it: signed in publish order, then chained per partition. */
function chunk(signer: EventSigner, partitions: readonly number[], tag = 'v'): Published[] {
  return signer.chain(
    partitions.map((partition, i) => {
      const value = Buffer.from(JSON.stringify({ type: 'change', origin: 'us', key: `${tag}${i}` }));
      return { partition, value, headers: signer.headers(value, partition) };
    }),
  );
}

const received = (m: Published, origin = 'us'): SignedMessage => ({
  origin,
  topic: TOPIC,
  partition: m.partition,
  headers: m.headers,
  value: m.value,
});
const ownSignatureSpoiled = (m: Published): Published => ({
  ...m,
  headers: { ...m.headers, [HEADER_SIGNATURE]: WRONG_SIGNATURE },
});
const verdict = (c: MessageCheck | undefined) => (c === undefined ? 'none' : c.ok ? 'ok' : c.kind);
const check = (messages: readonly Published[]) =>
  checkSignedMessagesAsync(
    keyring,
    messages.map((m) => received(m)),
  );

describe('chaining a relay chunk', () => {
  it('when a chunk is chained, then each partition’s messages carry links, the last of each a signature, and the headers fit the allowance', () => {
    const signer = new EventSigner(us.signing, 'us');
    const n = 6;
    const messages = chunk(signer, [...Array.from({ length: n }, () => 0), 1, 1]);
    for (const [partition, count] of [
      [0, n],
      [1, 2],
    ] as const) {
      const own = messages.filter((m) => m.partition === partition);
      expect(own.map((m) => HEADER_CHAIN_PREVIOUS in m.headers)).toEqual(own.map(() => true));
      expect(own[0]!.headers[HEADER_CHAIN_PREVIOUS]).toBe(Buffer.alloc(32).toString('base64'));
      expect(own.map((m) => HEADER_CHAIN_SIGNATURE in m.headers)).toEqual([
        ...Array.from({ length: count - 1 }, () => false),
        true,
      ]);
    }
    for (const m of messages) {
      const bytes = Object.entries(m.headers).reduce((sum, [k, v]) => sum + k.length + v.length + 4, 1);
      expect(bytes).toBeLessThanOrEqual(SIGNATURE_HEADERS_MAX_BYTES);
      // Every message keeps its own signature.
      expect(checkSignedMessage(keyring, 'us', m.headers, m.value).ok).toBe(true);
    }
  });

  it('when chunks follow one another, then each partition’s chain goes on from the last chunk’s end, and a batch of several chunks is vouched for by its last head alone', async () => {
    const signer = new EventSigner(us.signing, 'us');
    const first = chunk(signer, [0, 0, 1], 'a');
    const second = chunk(signer, [1, 0], 'b');
    const third = chunk(signer, [0], 'c');
    // The second chunk's message to partition 1 names the first chunk's last link there.
    const onP1 = [...first, ...second].filter((m) => m.partition === 1);
    expect(onP1[1]!.headers[HEADER_CHAIN_PREVIOUS]).not.toBe(Buffer.alloc(32).toString('base64'));
    // Own signatures and the earlier chunks' heads spoiled: only the last heads can vouch.
    const spoilHead = (m: Published): Published =>
      HEADER_CHAIN_SIGNATURE in m.headers
        ? { ...m, headers: { ...m.headers, [HEADER_CHAIN_SIGNATURE]: WRONG_SIGNATURE } }
        : m;
    const batch = [...first.map(spoilHead), ...second.map(spoilHead), ...third].map(ownSignatureSpoiled);
    // Partition 0's last head (third chunk) fixes all four of its messages; partition 1's last head
    // (second chunk, spoiled) fixes nothing, so its two messages stand alone and fail.
    const expected = ['ok', 'ok', 'bad_signature', 'bad_signature', 'ok', 'ok'];
    expect((await check(batch)).map(verdict)).toEqual(expected);
    expect(
      checkSignedMessages(
        keyring,
        batch.map((m) => received(m)),
      ).map(verdict),
    ).toEqual(expected);
    // Without the third chunk, partition 0's last head is the spoiled one of the second chunk.
    expect((await check(batch.slice(0, 5))).map(verdict)).toEqual(
      batch.slice(0, 5).map(() => 'bad_signature'),
    );
  });

  it('when another signer’s messages are handed to chain(), then it refuses', () => {
    const other = new EventSigner(eu.signing, 'eu');
    const messages = chunk(
      other,
      Array.from({ length: 5 }, () => 0),
    );
    expect(() => new EventSigner(us.signing, 'us').chain(messages)).toThrow(
      /only messages this signer signed/,
    );
  });
});

describe('checking chained messages', () => {
  const n = 8;

  it('when a whole chain arrives, then its one head signature vouches for every message, with each one’s own sequence', async () => {
    const signer = new EventSigner(us.signing, 'us', new PublishSequence(1_700_000_000_000, '0badc0de'));
    const messages = chunk(
      signer,
      Array.from({ length: n }, () => 3),
    ).map(ownSignatureSpoiled);
    const checks = await check(messages);
    expect(checks.map(verdict)).toEqual(Array.from({ length: n }, () => 'ok'));
    expect(checks.map((c) => (c?.ok ? c.seq.counter : -1))).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
  });

  it('when a batch starts inside a chain, then the end of the chain is still vouched for by its head', async () => {
    const messages = chunk(
      new EventSigner(us.signing, 'us'),
      Array.from({ length: n }, () => 0),
    ).map(ownSignatureSpoiled);
    expect((await check(messages.slice(3))).map(verdict)).toEqual(Array.from({ length: n - 3 }, () => 'ok'));
  });

  it('when a batch ends before the chain’s head, then its messages are checked by their own signatures', async () => {
    const messages = chunk(
      new EventSigner(us.signing, 'us'),
      Array.from({ length: n }, () => 0),
    );
    const firstPart = messages.slice(0, n - 2);
    expect((await check(firstPart)).map(verdict)).toEqual(firstPart.map(() => 'ok'));
    expect((await check(firstPart.map(ownSignatureSpoiled))).map(verdict)).toEqual(
      firstPart.map(() => 'bad_signature'),
    );
  });

  it('when a chained message is altered, reordered, left out, or the head is forged, then the chain vouches for none and each message stands alone', async () => {
    const signer = new EventSigner(us.signing, 'us');
    const good = chunk(
      signer,
      Array.from({ length: n }, () => 0),
    );
    const altered = good.map((m, i) =>
      i === 2 ? { ...m, value: Buffer.from(`${m.value.toString()} `) } : m,
    );
    // Alone, every message but the altered one passes.
    expect((await check(altered)).map(verdict)).toEqual(
      good.map((_, i) => (i === 2 ? 'bad_signature' : 'ok')),
    );
    const spoiled = good.map(ownSignatureSpoiled);
    const swapped = [spoiled[0]!, spoiled[2]!, spoiled[1]!, ...spoiled.slice(3)];
    const gap = [...spoiled.slice(0, 2), ...spoiled.slice(3)];
    const forgedHead = spoiled.map((m, i) =>
      i === n - 1
        ? {
            ...m,
            headers: {
              ...m.headers,
              [HEADER_CHAIN_SIGNATURE]: new EventSigner(
                { keyId: 'us-1', privateKey: eu.signing.privateKey },
                'us',
              )
                .chain(good)
                .at(-1)!.headers[HEADER_CHAIN_SIGNATURE]!,
            },
          }
        : m,
    );
    // A reordered or gapped chain: every message out of place breaks it, and those before the
    // last break stand alone (and fail); the genuine, in-order end is still fixed by the head.
    expect((await check(swapped)).map(verdict)).toEqual([
      'bad_signature',
      'bad_signature',
      'bad_signature',
      ...Array.from({ length: n - 3 }, () => 'ok'),
    ]);
    expect((await check(gap)).map(verdict)).toEqual([
      'bad_signature',
      'bad_signature',
      ...Array.from({ length: n - 3 }, () => 'ok'),
    ]);
    expect((await check(forgedHead)).map(verdict)).toEqual(spoiled.map(() => 'bad_signature'));
    // us's chain on eu's topic: eu's keys do not know us-1.
    const asEu = await checkSignedMessagesAsync(
      keyring,
      spoiled.map((m) => received(m, 'eu')),
    );
    expect(asEu.map(verdict)).toEqual(spoiled.map(() => 'unknown_key'));
  });

  it('when the chain headers are malformed, then the messages are checked alone', async () => {
    const messages = chunk(
      new EventSigner(us.signing, 'us'),
      Array.from({ length: n }, () => 0),
    );
    const bad = messages.map((m, i) =>
      i === 3 ? { ...m, headers: { ...m.headers, [HEADER_CHAIN_PREVIOUS]: 'not base64!' } } : m,
    );
    expect((await check(bad)).map(verdict)).toEqual(messages.map(() => 'ok'));
  });

  it('for any chunks, cuts into batches and spoiled messages, then a batch check gives each message the verdict a check of it alone gives, or ok where an unbroken chain to a genuine head vouches for it', async () => {
    const signer = new EventSigner(us.signing, 'us');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 14 }), {
          minLength: 1,
          maxLength: 3,
        }),
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        async (chunks, cuts, spoils) => {
          const all = chunks.flatMap((partitions, c) => chunk(signer, partitions, `c${c}-`));
          const spoilt = new Set(spoils.map((s) => s % all.length));
          const sent = all.map((m, i) => (spoilt.has(i) ? ownSignatureSpoiled(m) : m));
          const bounds = [...new Set([0, ...cuts.map((c) => c % (all.length + 1)), all.length])].sort(
            (a, b) => a - b,
          );
          for (let b = 0; b + 1 < bounds.length; b++) {
            const batch = sent.slice(bounds[b], bounds[b + 1]);
            const checks = await check(batch);
            // The inline check (a small batch) gives the same verdicts as the thread pool's.
            expect(
              checkSignedMessages(
                keyring,
                batch.map((m) => received(m)),
              ),
            ).toEqual(checks);
            batch.forEach((m, i) => {
              const alone = checkSignedMessage(keyring, 'us', m.headers, m.value);
              // Only a spoiled own signature can differ, and only towards ok (its chain vouched).
              if (alone.ok) expect(verdict(checks[i])).toBe('ok');
              else expect(['ok', alone.kind]).toContain(verdict(checks[i]));
              if (checks[i]?.ok && alone.ok) expect(checks[i]).toEqual(alone);
            });
          }
        },
      ),
      runs.params(60),
    );
  });
});
