/**
 * Signatures of the events a region publishes: Ed25519 over a domain-separated message that names
 * the origin region, the key id, a context (the publish sequence, see shared/security/eventAuth.ts)
 * and the event bytes, so a signature made by one region's key can never pass as another region's,
 * a key id cannot be swapped and the sequence cannot be changed. Each region holds its own private
 * key; every peer holds the public keys of every region, several per region (rotation), by key id.
 * Pure apart from key generation.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

const DOMAIN = Buffer.from('hothot-event-v1\0');
/** Domains of a chain's links and of the signature over its head (see {@link chainLink}). */
const CHAIN_LINK_DOMAIN = Buffer.from('hothot-chain-link-v1\0');
const CHAIN_HEAD_DOMAIN = Buffer.from('hothot-chain-head-v1\0');
/** Bytes of a chain link (SHA-256). */
export const CHAIN_LINK_BYTES = 32;
/** The link before a chain's first message. */
export const CHAIN_START: Buffer = Buffer.alloc(CHAIN_LINK_BYTES);
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export interface SigningKey {
  readonly keyId: string;
  readonly privateKey: KeyObject;
}

/** region → key id → public key. */
export type PublicKeyring = ReadonlyMap<string, ReadonlyMap<string, KeyObject>>;

export function isKeyId(s: unknown): s is string {
  return typeof s === 'string' && KEY_ID_PATTERN.test(s);
}

export function generateSigningKeyPair(keyId: string): {
  signing: SigningKey;
  publicKeyPem: string;
  privateKeyPem: string;
} {
  if (!isKeyId(keyId))
    throw new Error(`key id ${JSON.stringify(keyId)} is invalid: 1-64 of A-Z a-z 0-9 . _ -`);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    signing: { keyId, privateKey },
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export function signingKeyFromPem(keyId: string, pem: string): SigningKey {
  if (!isKeyId(keyId))
    throw new Error(`key id ${JSON.stringify(keyId)} is invalid: 1-64 of A-Z a-z 0-9 . _ -`);
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error('the event signing key must be an Ed25519 private key');
  return { keyId, privateKey };
}

export function publicKeyFromPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('a peer event key must be an Ed25519 public key');
  return key;
}

/**
 * The bytes signed: domain, origin, key id and context, each NUL-terminated (none of them may hold a
 * NUL: region ids and key ids are patterns without one, and the caller's context is checked), then
 * the event bytes as published.
 */
function signedMessage(origin: string, keyId: string, context: string, value: Buffer): Buffer {
  if (context.includes('\0')) throw new Error('the signature context must not contain NUL');
  return Buffer.concat([DOMAIN, Buffer.from(`${origin}\0${keyId}\0${context}\0`), value]);
}

/** Sign `value` as published by `origin`, bound to `context` (the publish sequence). */
export function signEvent(key: SigningKey, origin: string, value: Buffer, context: string): Buffer {
  return sign(null, signedMessage(origin, key.keyId, context, value), key.privateKey);
}

/**
 * {@link signEvent} on libuv's thread pool: the event loop is not blocked meanwhile, and a batch
 * signed at once uses every core, at some more CPU per signature than signing inline (figures:
 * bench/README.md, "Figures quoted from code comments").
 */
export function signEventAsync(
  key: SigningKey,
  origin: string,
  value: Buffer,
  context: string,
): Promise<Buffer> {
  const message = signedMessage(origin, key.keyId, context, value);
  return new Promise((resolve, reject) =>
    sign(null, message, key.privateKey, (err, signature) => (err ? reject(err) : resolve(signature))),
  );
}

/**
 * Chained messages (one relay chunk's messages to one partition, in publish order): each message's
 * link is SHA-256 over the previous link and everything its own signature covers (origin, key id,
 * context, value), so the last link fixes every message of the chain, and one signature over it
 * ({@link signChainHead}) vouches for them all. A verifier holding a suffix of the chain starts from
 * the link its first message names as previous: that link is fixed by the head too.
 */
export function chainLink(
  previous: Buffer,
  origin: string,
  keyId: string,
  context: string,
  value: Buffer,
): Buffer {
  if (previous.length !== CHAIN_LINK_BYTES) throw new Error('a chain link is 32 bytes');
  return createHash('sha256')
    .update(CHAIN_LINK_DOMAIN)
    .update(previous)
    .update(signedMessage(origin, keyId, context, value))
    .digest();
}

/** The bytes a chain-head signature covers: its own domain (never a message's), origin, key id, head. */
function chainHeadMessage(origin: string, keyId: string, head: Buffer): Buffer {
  return Buffer.concat([CHAIN_HEAD_DOMAIN, Buffer.from(`${origin}\0${keyId}\0`), head]);
}

/** Sign the last link of a chain of `origin`'s messages (see {@link chainLink}). */
export function signChainHead(key: SigningKey, origin: string, head: Buffer): Buffer {
  return sign(null, chainHeadMessage(origin, key.keyId, head), key.privateKey);
}

/** Check a chain-head signature (see {@link chainLink}). */
export function verifyChainHead(
  keyring: PublicKeyring,
  origin: string,
  keyId: string,
  signature: Buffer,
  head: Buffer,
): SignatureCheck {
  const checked = prepareCheck(keyring, origin, keyId, signature, '');
  if (!('key' in checked)) return checked;
  return verdict(verify(null, chainHeadMessage(origin, keyId, head), checked.key, signature), origin, keyId);
}

/** {@link verifyChainHead} on libuv's thread pool (see {@link signEventAsync}). */
export function verifyChainHeadAsync(
  keyring: PublicKeyring,
  origin: string,
  keyId: string,
  signature: Buffer,
  head: Buffer,
): Promise<SignatureCheck> {
  const checked = prepareCheck(keyring, origin, keyId, signature, '');
  if (!('key' in checked)) return Promise.resolve(checked);
  const message = chainHeadMessage(origin, keyId, head);
  return new Promise((resolve, reject) =>
    verify(null, message, checked.key, signature, (err, ok) =>
      err ? reject(err) : resolve(verdict(ok, origin, keyId)),
    ),
  );
}

/** Why a signature was refused, for metrics: low cardinality, stable. */
export type SignatureFailure = 'unsigned' | 'unknown_key' | 'bad_signature';

export type SignatureCheck = { ok: true } | { ok: false; kind: SignatureFailure; reason: string };

/** Check `signature` over `value` and `context` as published by `origin` with key `keyId`. */
export function verifyEvent(
  keyring: PublicKeyring,
  origin: string,
  keyId: string | undefined,
  signature: Buffer | undefined,
  value: Buffer,
  context: string,
): SignatureCheck {
  const checked = prepareCheck(keyring, origin, keyId, signature, context);
  if (!('key' in checked)) return checked;
  return verdict(
    verify(null, signedMessage(origin, keyId!, context, value), checked.key, signature!),
    origin,
    keyId!,
  );
}

/** {@link verifyEvent} on libuv's thread pool (see {@link signEventAsync}). */
export function verifyEventAsync(
  keyring: PublicKeyring,
  origin: string,
  keyId: string | undefined,
  signature: Buffer | undefined,
  value: Buffer,
  context: string,
): Promise<SignatureCheck> {
  const checked = prepareCheck(keyring, origin, keyId, signature, context);
  if (!('key' in checked)) return Promise.resolve(checked);
  const message = signedMessage(origin, keyId!, context, value);
  return new Promise((resolve, reject) =>
    verify(null, message, checked.key, signature!, (err, ok) =>
      err ? reject(err) : resolve(verdict(ok, origin, keyId!)),
    ),
  );
}

function verdict(ok: boolean, origin: string, keyId: string): SignatureCheck {
  return ok
    ? { ok: true }
    : {
        ok: false,
        kind: 'bad_signature',
        reason: `bad signature: the event was not signed by ${origin}'s key ${keyId} or was altered`,
      };
}

/** The key to verify with, or why there is nothing to verify. */
function prepareCheck(
  keyring: PublicKeyring,
  origin: string,
  keyId: string | undefined,
  signature: Buffer | undefined,
  context: string,
): { key: KeyObject } | { ok: false; kind: SignatureFailure; reason: string } {
  if (signature === undefined || keyId === undefined)
    return { ok: false, kind: 'unsigned', reason: 'unsigned event' };
  const keys = keyring.get(origin);
  if (keys === undefined)
    return { ok: false, kind: 'unknown_key', reason: `no public key is known for region ${origin}` };
  const key = keys.get(keyId);
  if (key === undefined)
    return {
      ok: false,
      kind: 'unknown_key',
      reason: `unknown key id ${JSON.stringify(keyId.slice(0, 64))} for region ${origin}`,
    };
  if (signature.length !== 64 || context.includes('\0'))
    return { ok: false, kind: 'bad_signature', reason: 'bad signature: not an Ed25519 signature' };
  return { key };
}
