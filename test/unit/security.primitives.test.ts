/**
 * The security primitives: API keys (format, hash, constant-time check), MAC'd tokens (forgery,
 * tampering, rotation) and event signatures (origin and key id bound into the signature).
 */
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { apiKeySecretMatches, generateApiKey, parseApiKey } from '../../shared/security/apiKey.js';
import {
  generateSigningKeyPair,
  publicKeyFromPem,
  signEvent,
  verifyEvent,
  type PublicKeyring,
  type SignatureCheck,
} from '../../shared/security/eventSignature.js';
import { openToken, sealToken } from '../../shared/security/tokenMac.js';
import { seeded } from './support/fc.js';

const runs = seeded(import.meta.url);

describe('API keys', () => {
  it('when a key is generated, then its token parses back to its id and secret and only that secret matches the stored hash', () => {
    const key = generateApiKey();
    expect(key.token).toMatch(/^hh_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
    expect(parseApiKey(key.token)).toEqual({ id: key.id, secret: key.secret });
    expect(apiKeySecretMatches(key.secret, key.secretHash)).toBe(true);
    expect(apiKeySecretMatches(generateApiKey().secret, key.secretHash)).toBe(false);
    expect(apiKeySecretMatches(key.secret, Buffer.alloc(3))).toBe(false);
  });

  it('when anything else is presented, then it does not parse as a key', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), (s) => {
        const parsed = parseApiKey(s);
        if (parsed !== undefined) expect(`hh_${parsed.id}_${parsed.secret}`).toBe(s);
      }),
      runs.params(500),
    );
    expect(parseApiKey('hh_short_secret')).toBeUndefined();
  });
});

describe('MAC tokens', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('when a token is sealed, then it opens with its key or a rotated-in key list, and any change to it is refused', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 80 }).filter((s) => !s.includes('.')),
        fc.nat(),
        (payload, at) => {
          const token = sealToken([k1], payload);
          expect(openToken([k1], token)).toBe(payload);
          expect(openToken([k2, k1], token)).toBe(payload);
          expect(openToken([k2], token)).toBeUndefined();
          const i = at % token.length;
          const flipped = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
          if (flipped !== token) expect(openToken([k1], flipped)).toBeUndefined();
        },
      ),
      runs.params(300),
    );
    expect(openToken([k1], 'no-mac')).toBeUndefined();
  });
});

describe('event signatures', () => {
  const us = generateSigningKeyPair('us-1');
  const eu = generateSigningKeyPair('eu-1');
  const keyring: PublicKeyring = new Map([
    ['us', new Map([['us-1', publicKeyFromPem(us.publicKeyPem)]])],
    ['eu', new Map([['eu-1', publicKeyFromPem(eu.publicKeyPem)]])],
  ]);
  const value = Buffer.from('{"v":1,"type":"change","origin":"us"}');
  const seq = '1700000000000.0a1b2c3d.7';

  it('when an event is signed by its origin, then it verifies', () => {
    expect(verifyEvent(keyring, 'us', 'us-1', signEvent(us.signing, 'us', value, seq), value, seq)).toEqual({
      ok: true,
    });
  });

  it('when the event is unsigned, tampered, signed by another region, or names another key, then it is refused with the reason', () => {
    const sig = signEvent(us.signing, 'us', value, seq);
    expect(verifyEvent(keyring, 'us', undefined, undefined, value, seq)).toEqual({
      ok: false,
      kind: 'unsigned',
      reason: 'unsigned event',
    });
    const tampered = Buffer.from(value);
    tampered[5] = tampered[5]! ^ 1;
    expect(verifyEvent(keyring, 'us', 'us-1', sig, tampered, seq).ok).toBe(false);
    // eu's key signing an event that claims origin us: eu's key id is not one of us's.
    const forged = signEvent(eu.signing, 'us', value, seq);
    const reason = (c: SignatureCheck) => (c.ok ? 'ok' : `${c.kind}: ${c.reason}`);
    expect(reason(verifyEvent(keyring, 'us', 'eu-1', forged, value, seq))).toMatch(
      /^unknown_key: unknown key id/,
    );
    expect(reason(verifyEvent(keyring, 'us', 'us-1', forged, value, seq))).toMatch(
      /^bad_signature: bad signature/,
    );
    expect(reason(verifyEvent(keyring, 'ap', 'us-1', sig, value, seq))).toMatch(
      /^unknown_key: no public key/,
    );
    expect(verifyEvent(keyring, 'us', 'us-1', sig.subarray(1), value, seq).ok).toBe(false);
  });

  it('when the context (publish sequence) differs from the one signed, then the signature is refused', () => {
    const sig = signEvent(us.signing, 'us', value, seq);
    const check = verifyEvent(keyring, 'us', 'us-1', sig, value, '1700000000000.0a1b2c3d.8');
    expect(check.ok ? 'ok' : check.kind).toBe('bad_signature');
    // The boundary between context and value is fixed: moving bytes across it breaks the signature.
    const moved = verifyEvent(
      keyring,
      'us',
      'us-1',
      sig,
      Buffer.concat([Buffer.from('7'), value]),
      seq.slice(0, -1),
    );
    expect(moved.ok).toBe(false);
    expect(() => signEvent(us.signing, 'us', value, 'a\u0000b')).toThrow(/NUL/);
    expect(verifyEvent(keyring, 'us', 'us-1', sig, value, 'a\u0000b').ok).toBe(false);
  });

  it('when a region rotates keys, then events signed with either listed key verify', () => {
    const next = generateSigningKeyPair('us-2');
    const rotated: PublicKeyring = new Map([
      [
        'us',
        new Map([
          ['us-1', publicKeyFromPem(us.publicKeyPem)],
          ['us-2', publicKeyFromPem(next.publicKeyPem)],
        ]),
      ],
    ]);
    expect(verifyEvent(rotated, 'us', 'us-2', signEvent(next.signing, 'us', value, seq), value, seq).ok).toBe(
      true,
    );
    expect(verifyEvent(rotated, 'us', 'us-1', signEvent(us.signing, 'us', value, seq), value, seq).ok).toBe(
      true,
    );
  });
});
