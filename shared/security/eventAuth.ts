/**
 * Authenticated replication: how a region signs what it publishes and how a peer checks it before
 * anything of it is applied. Pure apart from the random instance nonce.
 *
 * Every message a region publishes (changes and heartbeats) carries three Kafka headers:
 *
 * - `hothot-kid`: the id of the signing key (one region may have several public keys: rotation);
 * - `hothot-seq`: the publish sequence `<instance ms>.<nonce>.<partition>.<counter>` — the
 *   publishing relay instance (its start time and 8 random hex digits), the partition the message
 *   is published to, and a counter that the instance increments for every message it publishes to
 *   that partition, in publish order;
 * - `hothot-sig`: base64 Ed25519 signature over the domain, the origin (the region whose topic it
 *   is), the key id, the sequence and the exact value bytes (shared/security/eventSignature.ts).
 *
 * The messages a relay publishes to one partition are also chained: each carries `hothot-prev`, the
 * base64 link of the message before it on that partition (32 zero bytes on the first of a signer),
 * and the last message of each relay chunk to that partition carries `hothot-chain`, a signature
 * over its own link (shared/security/eventSignature.ts, `chainLink`). The chain goes on from one
 * chunk to the next, so a head fixes every message of its partition before it back to wherever a
 * batch starts in the chain. A peer checks, per unbroken chain in a batch, the signature of its last
 * head instead of one per message (Ed25519 verification is the costliest step of applying a
 * backlog); a message no head can vouch for (after the last head of the batch, before a broken link,
 * under a bad head signature) is checked by its own signature, which every message keeps. Either way
 * the same bytes are vouched for.
 *
 * A peer verifies with the public keys of the topic's region, then checks the sequence against what
 * it has accepted from that region on that partition ({@link admitSequence}): a genuine message
 * published again (a replay) carries an old sequence at a new offset, or another partition's, and is
 * refused.
 */
import { randomBytes } from 'node:crypto';
import {
  CHAIN_LINK_BYTES,
  CHAIN_START,
  chainLink,
  isKeyId,
  signChainHead,
  verifyChainHead,
  verifyChainHeadAsync,
  signEvent,
  signEventAsync,
  verifyEvent,
  verifyEventAsync,
  type PublicKeyring,
  type SignatureCheck,
  type SignatureFailure,
  type SigningKey,
} from './eventSignature.js';

export const HEADER_KEY_ID = 'hothot-kid';
export const HEADER_SIGNATURE = 'hothot-sig';
export const HEADER_SEQUENCE = 'hothot-seq';
/** A chained message's previous link (base64; 32 zero bytes on a chain's first message). */
export const HEADER_CHAIN_PREVIOUS = 'hothot-prev';
/** On a chain's last message: the signature over its link, vouching for the whole chain. */
export const HEADER_CHAIN_SIGNATURE = 'hothot-chain';

/**
 * Most bytes the signature headers add to one Kafka record: names (10 each, and 11 and 12 for the
 * chain's), values (key id ≤ 64, signature 88, sequence ≤ 48, previous link 44, chain signature 88)
 * and their varints, rounded up. Counted in every record's size (shared/kafka/messageSize.ts),
 * signed or not, so the API's size limit is the same everywhere.
 */
export const SIGNATURE_HEADERS_MAX_BYTES = 512;

/** Why a message is quarantined: the `reason` label of `hothot_quarantined_events_total`. */
export type QuarantineKind = SignatureFailure | 'malformed' | 'replayed';
export const QUARANTINE_KINDS: readonly QuarantineKind[] = [
  'unsigned',
  'malformed',
  'unknown_key',
  'bad_signature',
  'replayed',
];

/** A parsed `hothot-seq`. */
export interface PublishSeq {
  /** `<instance ms>.<nonce>`: one publishing relay instance. */
  readonly instance: string;
  /** When the instance started (ms): orders instances for pruning. */
  readonly instanceMs: number;
  /** The partition it was published to. */
  readonly partition: number;
  /** The instance's message counter for that partition, from 1, in publish order. */
  readonly counter: number;
  readonly text: string;
}

const SEQ_PATTERN = /^(\d{1,16})\.([0-9a-f]{8})\.(0|[1-9]\d{0,4})\.([1-9]\d{0,15})$/;
/** Latest instant JavaScript dates reach (ms). */
const MAX_MS = 8_640_000_000_000_000;

export function parseSeq(text: string): PublishSeq | undefined {
  const m = SEQ_PATTERN.exec(text);
  if (m === null) return undefined;
  const instanceMs = Number(m[1]);
  const partition = Number(m[3]);
  const counter = Number(m[4]);
  if (instanceMs > MAX_MS || !Number.isSafeInteger(counter)) return undefined;
  return { instance: `${m[1]}.${m[2]}`, instanceMs, partition, counter, text };
}

/**
 * The publish sequence of one relay instance: a new instance (a process start, a new relay) gets a
 * new id, so no counter is ever stored, and a clock going backwards changes nothing (the counter is
 * not a time). One counter per partition. Single-threaded: the relay signs in publish order.
 */
export class PublishSequence {
  readonly instance: string;
  private readonly counters = new Map<number, number>();

  constructor(startedAtMs = Date.now(), nonce = randomBytes(4).toString('hex')) {
    if (!/^[0-9a-f]{8}$/.test(nonce)) throw new Error('the sequence nonce must be 8 lower-case hex digits');
    this.instance = `${Math.max(0, Math.floor(startedAtMs))}.${nonce}`;
  }

  next(partition: number): string {
    if (!Number.isInteger(partition) || partition < 0 || partition > 99_999)
      throw new Error(`partition ${partition} is out of range`);
    const counter = (this.counters.get(partition) ?? 0) + 1;
    this.counters.set(partition, counter);
    return `${this.instance}.${partition}.${counter}`;
  }
}

/** Signs what this region publishes: one Ed25519 signature per message, and one per partition of a chunk ({@link chain}). */
export class EventSigner {
  constructor(
    readonly key: SigningKey,
    /** This region: the origin bound into every signature. */
    readonly origin: string,
    readonly sequence: PublishSequence = new PublishSequence(),
  ) {}

  /** Per partition, the link of the last message {@link chain} chained: the next chunk goes on from it. */
  private readonly lastLinks = new Map<number, Buffer>();

  /** The headers of one message with this `value` to `partition`, under the next sequence number. */
  headers(value: Buffer, partition: number): Record<string, string> {
    const seq = this.sequence.next(partition);
    return {
      [HEADER_KEY_ID]: this.key.keyId,
      [HEADER_SEQUENCE]: seq,
      [HEADER_SIGNATURE]: signEvent(this.key, this.origin, value, seq).toString('base64'),
    };
  }

  /**
   * {@link headers}, signed on the thread pool: the sequence number is taken now (call in publish
   * order), the signature comes later. What the relay uses for a large chunk: its messages are signed in parallel
   * without blocking the event loop (the API shares it).
   */
  async headersAsync(value: Buffer, partition: number): Promise<Record<string, string>> {
    const seq = this.sequence.next(partition);
    const signature = await signEventAsync(this.key, this.origin, value, seq);
    return {
      [HEADER_KEY_ID]: this.key.keyId,
      [HEADER_SEQUENCE]: seq,
      [HEADER_SIGNATURE]: signature.toString('base64'),
    };
  }

  /**
   * Chain `messages` (one relay chunk, signed by this signer, in publish order; call it for the
   * chunks in publish order too): per partition, add `hothot-prev` to each, going on from the last
   * link this signer chained to that partition (32 zero bytes on its first), and `hothot-chain` to
   * the last (see the module comment): one more signature per partition, the cheaper of the two
   * (a verification saved at the peer costs more: see bench/README.md). Returns new messages.
   */
  chain<
    M extends {
      readonly partition: number;
      readonly value: Buffer;
      readonly headers: Record<string, string>;
    },
  >(messages: readonly M[]): M[] {
    const byPartition = new Map<number, number[]>();
    messages.forEach((m, i) => {
      const list = byPartition.get(m.partition);
      if (list === undefined) byPartition.set(m.partition, [i]);
      else list.push(i);
    });
    const out = [...messages];
    for (const [partition, indices] of byPartition) {
      let link = this.lastLinks.get(partition) ?? CHAIN_START;
      indices.forEach((index, n) => {
        const m = messages[index]!;
        const seq = m.headers[HEADER_SEQUENCE];
        if (m.headers[HEADER_KEY_ID] !== this.key.keyId || seq === undefined)
          throw new Error('chain() takes only messages this signer signed');
        const headers = { ...m.headers };
        headers[HEADER_CHAIN_PREVIOUS] = link.toString('base64');
        link = chainLink(link, this.origin, this.key.keyId, seq, m.value);
        if (n === indices.length - 1)
          headers[HEADER_CHAIN_SIGNATURE] = signChainHead(this.key, this.origin, link).toString('base64');
        out[index] = { ...m, headers };
      });
      this.lastLinks.set(partition, link);
    }
    return out;
  }
}

export type MessageCheck =
  | { readonly ok: true; readonly seq: PublishSeq; readonly keyId: string }
  | { readonly ok: false; readonly kind: QuarantineKind; readonly reason: string };

/** Standard base64 of 64 bytes, padded: what {@link EventSigner} writes and nothing else. */
const SIGNATURE_PATTERN = /^[A-Za-z0-9+/]{86}==$/;

/**
 * Verify one message as published by `origin` (the region whose topic it came from): its headers
 * must be exactly what a signer writes, its key id one of `origin`'s, its signature good over the
 * value as received. Never throws.
 */
export function checkSignedMessage(
  keyring: PublicKeyring,
  origin: string,
  headers: Readonly<Record<string, string>>,
  value: Buffer | null,
): MessageCheck {
  const parsed = parseSignatureHeaders(headers);
  if (!parsed.ok) return parsed;
  const { kid, sig, seq } = parsed;
  return messageCheckOf(verifyEvent(keyring, origin, kid, sig, value ?? Buffer.alloc(0), seq.text), parsed);
}

/** A message's verdict from its own signature's check. */
function messageCheckOf(
  check: SignatureCheck,
  parsed: { readonly kid: string; readonly seq: PublishSeq },
): MessageCheck {
  return check.ok ? { ok: true, seq: parsed.seq, keyId: parsed.kid } : check;
}

/**
 * {@link checkSignedMessage} with the signature verified on the thread pool (the signing bench
 * measures it; the applier checks whole batches, chains included, with {@link checkSignedMessagesAsync}).
 */
export async function checkSignedMessageAsync(
  keyring: PublicKeyring,
  origin: string,
  headers: Readonly<Record<string, string>>,
  value: Buffer | null,
): Promise<MessageCheck> {
  const parsed = parseSignatureHeaders(headers);
  if (!parsed.ok) return parsed;
  const { kid, sig, seq } = parsed;
  return messageCheckOf(
    await verifyEventAsync(keyring, origin, kid, sig, value ?? Buffer.alloc(0), seq.text),
    parsed,
  );
}

/** A message to authenticate, from the topic of `origin`. */
export interface SignedMessage {
  readonly origin: string;
  readonly topic: string;
  readonly partition: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly value: Buffer | null;
}

/**
 * {@link checkSignedMessage} for a batch (in the order fetched; undefined: nothing to check), with
 * chains (see the module comment) checked by the signature of their last head: one verification per
 * unbroken chain instead of one per message (the heads before it are not checked: the last one's
 * link fixes their messages too). Whatever no head can vouch for is checked message by message, so
 * the verdicts are those of {@link checkSignedMessage}, only cheaper. Never throws for the data.
 */
export function checkSignedMessages(
  keyring: PublicKeyring,
  messages: readonly (SignedMessage | undefined)[],
): (MessageCheck | undefined)[] {
  const plan = planBatchChecks(messages);
  for (const h of plan.heads) settleHead(plan, h, verifyChainHead(keyring, h.origin, h.kid, h.sig, h.link));
  for (const i of plan.alone) {
    const { kid, sig, seq } = plan.parsed[i]!;
    const m = messages[i]!;
    settleAlone(plan, i, verifyEvent(keyring, m.origin, kid, sig, m.value ?? Buffer.alloc(0), seq.text));
  }
  return plan.results;
}

/** {@link checkSignedMessages} with the signatures verified on the thread pool, in parallel. Never rejects for the data. */
export async function checkSignedMessagesAsync(
  keyring: PublicKeyring,
  messages: readonly (SignedMessage | undefined)[],
): Promise<(MessageCheck | undefined)[]> {
  const plan = planBatchChecks(messages);
  await Promise.all(
    plan.heads.map(async (h) =>
      settleHead(plan, h, await verifyChainHeadAsync(keyring, h.origin, h.kid, h.sig, h.link)),
    ),
  );
  await Promise.all(
    plan.alone.map(async (i) => {
      const { kid, sig, seq } = plan.parsed[i]!;
      const m = messages[i]!;
      settleAlone(
        plan,
        i,
        await verifyEventAsync(keyring, m.origin, kid, sig, m.value ?? Buffer.alloc(0), seq.text),
      );
    }),
  );
  return plan.results;
}

/** A chain's messages up to its last head, and that head's link, key and signature. */
interface HeadCheck {
  readonly indices: readonly number[];
  readonly origin: string;
  readonly kid: string;
  readonly link: Buffer;
  readonly sig: Buffer;
}

/** What a batch check verifies: the heads first, then what no head vouched for. */
interface BatchPlan {
  readonly results: (MessageCheck | undefined)[];
  readonly parsed: ({ readonly kid: string; readonly sig: Buffer; readonly seq: PublishSeq } | undefined)[];
  readonly heads: HeadCheck[];
  /** Checked by their own signature (a head that fails adds its messages). */
  readonly alone: number[];
}

function settleHead(plan: BatchPlan, h: HeadCheck, check: SignatureCheck): void {
  if (check.ok)
    for (const i of h.indices) plan.results[i] = { ok: true, seq: plan.parsed[i]!.seq, keyId: h.kid };
  else plan.alone.push(...h.indices);
}

function settleAlone(plan: BatchPlan, i: number, check: SignatureCheck): void {
  plan.results[i] = messageCheckOf(check, plan.parsed[i]!);
}

/** Parse every message's headers and follow the chains of each topic and partition. */
function planBatchChecks(messages: readonly (SignedMessage | undefined)[]): BatchPlan {
  const plan: BatchPlan = {
    results: new Array<MessageCheck | undefined>(messages.length),
    parsed: new Array<BatchPlan['parsed'][number]>(messages.length),
    heads: [],
    alone: [],
  };
  const { results, parsed, heads, alone } = plan;
  type Head = {
    readonly count: number;
    readonly origin: string;
    readonly link: Buffer;
    readonly sig: Buffer;
  };
  /** Per topic and partition, the chain being followed, and the last head it passed. */
  const open = new Map<string, { indices: number[]; kid: string; link: Buffer; head?: Head }>();
  const chainOf = (m: SignedMessage) => `${m.topic}\0${m.partition}`;
  /** The chain ends here: its last head vouches for the messages up to it; the rest stand alone. */
  const drop = (id: string) => {
    const chain = open.get(id);
    open.delete(id);
    if (chain === undefined) return;
    const { head } = chain;
    if (head === undefined) {
      alone.push(...chain.indices);
      return;
    }
    heads.push({
      indices: chain.indices.slice(0, head.count),
      origin: head.origin,
      kid: chain.kid,
      link: head.link,
      sig: head.sig,
    });
    alone.push(...chain.indices.slice(head.count));
  };
  messages.forEach((m, i) => {
    if (m === undefined) return;
    const p = parseSignatureHeaders(m.headers);
    if (!p.ok) {
      results[i] = p;
      return;
    }
    parsed[i] = p;
    const id = chainOf(m);
    const previousText = headerValue(m.headers, HEADER_CHAIN_PREVIOUS);
    const headText = headerValue(m.headers, HEADER_CHAIN_SIGNATURE);
    const previous = previousText === undefined ? undefined : decodeLink(previousText);
    const head = headText === undefined ? undefined : decodeSignature(headText);
    if (previous === undefined || (headText !== undefined && head === undefined)) {
      drop(id);
      alone.push(i);
      return;
    }
    let chain = open.get(id);
    // Continued only by a message that names the chain's last link and the same key; otherwise a
    // new chain starts here (a chain's first message, or the end of a chain begun in an earlier batch).
    if (chain === undefined || chain.kid !== p.kid || !previous.equals(chain.link)) {
      drop(id);
      chain = { indices: [], kid: p.kid, link: previous };
      open.set(id, chain);
    }
    chain.indices.push(i);
    chain.link = chainLink(chain.link, m.origin, p.kid, p.seq.text, m.value ?? Buffer.alloc(0));
    // The chain goes on past a head (the next chunk's messages name its link): a later head fixes
    // these messages too, so only the last one is checked.
    if (head !== undefined)
      chain.head = { count: chain.indices.length, origin: m.origin, link: chain.link, sig: head };
  });
  for (const id of [...open.keys()]) drop(id);
  return plan;
}

/** Standard base64 of 32 bytes, padded. */
const LINK_PATTERN = /^[A-Za-z0-9+/]{43}=$/;

function decodeLink(text: string): Buffer | undefined {
  if (!LINK_PATTERN.test(text)) return undefined;
  const link = Buffer.from(text, 'base64');
  return link.length === CHAIN_LINK_BYTES ? link : undefined;
}

function decodeSignature(text: string): Buffer | undefined {
  return SIGNATURE_PATTERN.test(text) ? Buffer.from(text, 'base64') : undefined;
}

/** The three headers, checked for form (not yet for the signature). */
function parseSignatureHeaders(
  headers: Readonly<Record<string, string>>,
):
  | { readonly ok: true; readonly kid: string; readonly sig: Buffer; readonly seq: PublishSeq }
  | { readonly ok: false; readonly kind: QuarantineKind; readonly reason: string } {
  const kid = headerValue(headers, HEADER_KEY_ID);
  const sig = headerValue(headers, HEADER_SIGNATURE);
  const seqText = headerValue(headers, HEADER_SEQUENCE);
  if (kid === undefined && sig === undefined && seqText === undefined)
    return { ok: false, kind: 'unsigned', reason: `unsigned event: no ${HEADER_SIGNATURE} header` };
  const missing = [
    [HEADER_KEY_ID, kid],
    [HEADER_SIGNATURE, sig],
    [HEADER_SEQUENCE, seqText],
  ].filter(([, v]) => v === undefined);
  if (missing.length > 0)
    return {
      ok: false,
      kind: 'malformed',
      reason: `malformed signature headers: no ${missing.map(([n]) => n).join(', ')} header`,
    };
  if (!isKeyId(kid))
    return {
      ok: false,
      kind: 'malformed',
      reason: `malformed signature headers: ${HEADER_KEY_ID} is not a key id`,
    };
  if (!SIGNATURE_PATTERN.test(sig!))
    return {
      ok: false,
      kind: 'malformed',
      reason: `malformed signature headers: ${HEADER_SIGNATURE} is not a base64 Ed25519 signature`,
    };
  const seq = parseSeq(seqText!);
  if (seq === undefined)
    return {
      ok: false,
      kind: 'malformed',
      reason: `malformed signature headers: ${HEADER_SEQUENCE} is not <instance ms>.<nonce>.<partition>.<counter>`,
    };
  return { ok: true, kid, sig: Buffer.from(sig!, 'base64'), seq };
}

/** A header's value, or undefined when absent (a header name is matched exactly). */
function headerValue(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  return Object.hasOwn(headers, name) ? headers[name] : undefined;
}

/**
 * What a region has accepted from one origin on one partition: the greatest offset, and per
 * publishing instance the greatest counter and the offset it was last accepted at. Stored in
 * `peer_replay_guard`, updated in the apply transaction.
 */
export interface ReplayGuardState {
  /** Greatest offset accepted on this partition (null: none yet). */
  lastOffset: bigint | null;
  /** Publishing instance → greatest counter accepted from it, and the offset it was last seen at. */
  readonly instances: Map<string, { counter: number; offset: bigint }>;
  /**
   * Greatest start time (ms) of the instances forgotten: an unknown instance started at or before it
   * is one of them (or older), so its message is a replay.
   */
  floorMs: number;
}

/**
 * Publishing instances remembered per origin and partition. Beyond it the one seen longest ago is
 * forgotten (a live relay heartbeats every partition every second: only stopped ones go).
 */
export const MAX_REMEMBERED_INSTANCES = 64;

export function emptyGuardState(): ReplayGuardState {
  return { lastOffset: null, instances: new Map(), floorMs: 0 };
}

export type ReplayCheck =
  { readonly ok: true; readonly redelivery: boolean } | { readonly ok: false; readonly reason: string };

/**
 * Admit a verified message with sequence `seq` at `offset` of `origin`'s `partition`, updating
 * `state` when it is accepted. Rules:
 *
 * 0. The partition signed must be the one it arrived on (a copy to another partition is a replay).
 * 1. At or below the greatest offset accepted: the consumer delivers again what it already handled
 *    (a crash between the PostgreSQL commit and the offset commit). Same bytes, same offset: not a
 *    replay. The caller skips it if it was quarantined the first time; otherwise it is re-applied,
 *    idempotently.
 * 2. A new offset from a known instance: its counter must be greater than every counter accepted
 *    from that instance on this partition (one instance publishes to a partition in order).
 * 3. A new offset from an unknown instance: a relay that started (or restarted) — accepted, unless
 *    it started no later than an instance already forgotten.
 */
export function admitSequence(
  state: ReplayGuardState,
  seq: PublishSeq,
  offset: bigint,
  origin: string,
  partition: number,
): ReplayCheck {
  if (seq.partition !== partition)
    return {
      ok: false,
      reason: `replayed: publish sequence ${seq.text} of ${origin} was published to partition ${seq.partition}, not ${partition}`,
    };
  const seen = state.instances.get(seq.instance);
  if (state.lastOffset !== null && offset <= state.lastOffset) {
    remember(state, seq, offset);
    return { ok: true, redelivery: true };
  }
  if (seen !== undefined && seq.counter <= seen.counter) {
    return {
      ok: false,
      reason:
        `replayed: publish sequence ${seq.text} of ${origin} is not after ${seq.instance}.${partition}.${seen.counter}, ` +
        `already accepted on partition ${partition}`,
    };
  }
  if (seen === undefined && seq.instanceMs <= state.floorMs) {
    return {
      ok: false,
      reason:
        `replayed: publish sequence ${seq.text} of ${origin} comes from a publisher instance that started no later ` +
        `than one already forgotten on partition ${partition} (at ${state.floorMs}; ${MAX_REMEMBERED_INSTANCES} are remembered)`,
    };
  }
  remember(state, seq, offset);
  state.lastOffset = offset;
  return { ok: true, redelivery: false };
}

function remember(state: ReplayGuardState, seq: PublishSeq, offset: bigint): void {
  const seen = state.instances.get(seq.instance);
  state.instances.set(seq.instance, {
    counter: Math.max(seq.counter, seen?.counter ?? 0),
    offset: seen !== undefined && seen.offset > offset ? seen.offset : offset,
  });
  while (state.instances.size > MAX_REMEMBERED_INSTANCES) {
    // The instance seen longest ago goes (never the one just accepted).
    let stalest: string | undefined;
    let stalestOffset: bigint | undefined;
    for (const [id, v] of state.instances) {
      if (id === seq.instance) continue;
      if (stalestOffset === undefined || v.offset < stalestOffset) [stalest, stalestOffset] = [id, v.offset];
    }
    state.instances.delete(stalest!);
    state.floorMs = Math.max(state.floorMs, Number(stalest!.slice(0, stalest!.indexOf('.'))));
  }
}
