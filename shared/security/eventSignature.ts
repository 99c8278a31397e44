/**
 * Signatures of the events a region publishes: Ed25519 over a domain-separated message that names
 * the origin region, the key id and the event bytes, so a signature made by one region's key can
 * never pass as another region's, and a key id cannot be swapped. Each region holds its own private
 * key; every peer holds the public keys of every region, several per region (rotation), by key id.
 * Pure apart from key generation.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';

const DOMAIN = Buffer.from('hothot-event-v1\0');
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

function signedMessage(origin: string, keyId: string, value: Buffer): Buffer {
  return Buffer.concat([DOMAIN, Buffer.from(`${origin}\0${keyId}\0`), value]);
}

export function signEvent(key: SigningKey, origin: string, value: Buffer): Buffer {
  return sign(null, signedMessage(origin, key.keyId, value), key.privateKey);
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/** Check `signature` over `value` as published by `origin` with key `keyId`. */
export function verifyEvent(
  keyring: PublicKeyring,
  origin: string,
  keyId: string | undefined,
  signature: Buffer | undefined,
  value: Buffer,
): SignatureCheck {
  if (signature === undefined || keyId === undefined) return { ok: false, reason: 'unsigned event' };
  const keys = keyring.get(origin);
  if (keys === undefined) return { ok: false, reason: `no public key is known for region ${origin}` };
  const key = keys.get(keyId);
  if (key === undefined)
    return { ok: false, reason: `unknown key id ${JSON.stringify(keyId.slice(0, 64))} for region ${origin}` };
  if (signature.length !== 64) return { ok: false, reason: 'bad signature: not an Ed25519 signature' };
  return verify(null, signedMessage(origin, keyId, value), key, signature)
    ? { ok: true }
    : {
        ok: false,
        reason: `bad signature: the event was not signed by ${origin}'s key ${keyId} or was altered`,
      };
}
