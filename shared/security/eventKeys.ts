/**
 * Event-signing key files: this region's private key (PKCS#8 PEM, `EVENT_SIGNING_KEY_FILE`, id
 * `EVENT_SIGNING_KEY_ID`) and every region's public keys (`EVENT_PUBLIC_KEYS_FILE`, JSON
 * `{"<region>": {"<key id>": "<SPKI PEM>"}}`). Loaded once at start; also written for the lab and
 * the tests ({@link provisionEventKeys}).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateSigningKeyPair,
  isKeyId,
  publicKeyFromPem,
  signingKeyFromPem,
  type PublicKeyring,
  type SigningKey,
} from './eventSignature.js';
import { isRegionName } from '../domain/regionName.js';

export interface EventSigningFiles {
  readonly keyFile: string;
  readonly keyId: string;
  readonly publicKeysFile: string;
}

export interface EventKeys {
  readonly signing: SigningKey;
  readonly keyring: PublicKeyring;
  /** Things worth a warning (a private key file others can read). */
  readonly warnings: readonly string[];
}

/** A key file that cannot be used: names the variable and says what is wrong. */
export class EventKeyError extends Error {
  override readonly name = 'EventKeyError';
  readonly retryable = false;
}

/**
 * Read this region's signing key and the public keyring, and check that they agree: `region`'s
 * entry of the keyring must hold `keyId` with the public half of the private key (a mismatch would
 * make every peer quarantine everything this region publishes).
 */
export function loadEventKeys(files: EventSigningFiles, region: string): EventKeys {
  const warnings: string[] = [];
  let pem: string;
  try {
    pem = readFileSync(files.keyFile, 'utf8');
    const mode = statSync(files.keyFile).mode;
    // A container secret (/run/secrets) is readable by design by the container's own user only.
    if (process.platform !== 'win32' && (mode & 0o077) !== 0 && !files.keyFile.startsWith('/run/secrets/'))
      warnings.push(
        `EVENT_SIGNING_KEY_FILE ${files.keyFile} can be read by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`,
      );
  } catch (err) {
    throw new EventKeyError(`EVENT_SIGNING_KEY_FILE ${files.keyFile}: ${(err as Error).message}`);
  }
  let signing: SigningKey;
  try {
    signing = signingKeyFromPem(files.keyId, pem);
  } catch (err) {
    throw new EventKeyError(`EVENT_SIGNING_KEY_FILE ${files.keyFile}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    text = readFileSync(files.publicKeysFile, 'utf8');
  } catch (err) {
    throw new EventKeyError(`EVENT_PUBLIC_KEYS_FILE ${files.publicKeysFile}: ${(err as Error).message}`);
  }
  let keyring: PublicKeyring;
  try {
    keyring = parsePublicKeys(text);
  } catch (err) {
    throw new EventKeyError(`EVENT_PUBLIC_KEYS_FILE ${files.publicKeysFile}: ${(err as Error).message}`);
  }
  const own = keyring.get(region)?.get(files.keyId);
  if (own === undefined)
    throw new EventKeyError(
      `EVENT_PUBLIC_KEYS_FILE ${files.publicKeysFile} has no key ${files.keyId} for this region (${region}): ` +
        'add the public half of EVENT_SIGNING_KEY_FILE under it, in every region, before signing with it',
    );
  if (!samePublicKey(own, createPublicKey(signing.privateKey)))
    throw new EventKeyError(
      `EVENT_PUBLIC_KEYS_FILE ${files.publicKeysFile}: key ${files.keyId} of ${region} is not the public half of ` +
        `EVENT_SIGNING_KEY_FILE ${files.keyFile}`,
    );
  return { signing, keyring, warnings };
}

/** Parse `{"<region>": {"<key id>": "<SPKI PEM>"}}`; throws naming the entry at fault. */
export function parsePublicKeys(text: string): PublicKeyring {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error('expected {"<region>": {"<key id>": "<SPKI PEM>"}}');
  const ring = new Map<string, Map<string, KeyObject>>();
  for (const [region, keys] of Object.entries(json as Record<string, unknown>)) {
    if (!isRegionName(region)) throw new Error(`${JSON.stringify(region)} is not a region id`);
    if (typeof keys !== 'object' || keys === null || Array.isArray(keys))
      throw new Error(`${region}: expected {"<key id>": "<SPKI PEM>"}`);
    const byId = new Map<string, KeyObject>();
    for (const [keyId, pem] of Object.entries(keys as Record<string, unknown>)) {
      if (!isKeyId(keyId))
        throw new Error(`${region}: ${JSON.stringify(keyId)} is not a key id (1-64 of A-Z a-z 0-9 . _ -)`);
      if (typeof pem !== 'string') throw new Error(`${region}.${keyId}: expected a PEM string`);
      try {
        byId.set(keyId, publicKeyFromPem(pem));
      } catch (err) {
        throw new Error(`${region}.${keyId}: ${(err as Error).message}`);
      }
    }
    ring.set(region, byId);
  }
  return ring;
}

function samePublicKey(a: KeyObject, b: KeyObject): boolean {
  return a.export({ type: 'spki', format: 'der' }).equals(b.export({ type: 'spki', format: 'der' }));
}

/** The environment variables that give a region its event keys. */
export function eventKeyEnv(files: EventSigningFiles): Record<string, string> {
  return {
    EVENT_SIGNING_KEY_FILE: files.keyFile,
    EVENT_SIGNING_KEY_ID: files.keyId,
    EVENT_PUBLIC_KEYS_FILE: files.publicKeysFile,
  };
}

/**
 * Key files for a lab or a test: an Ed25519 key per region under `dir` (`<region>.<key id>.key.pem`,
 * mode 0600, kept if present, so a restarted lab signs with the same keys) and one public-keys file
 * for all regions (`public-keys.json`, rewritten with these regions' keys, plus the keys it listed
 * before when `keepOldPublicKeys`: a rotation). Returns each region's files.
 */
export function provisionEventKeys(
  dir: string,
  regions: readonly string[],
  options: {
    readonly keyId?: (region: string) => string;
    /** Keep listing the public keys the file already had (a rotation: old and new key). */
    readonly keepOldPublicKeys?: boolean;
  } = {},
): Record<string, EventSigningFiles> {
  const keyIdOf = options.keyId ?? ((r: string) => `${r}-1`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const publicKeysFile = join(dir, 'public-keys.json');
  const previous: Record<string, Record<string, string>> = options.keepOldPublicKeys === true &&
  existsSync(publicKeysFile)
    ? (JSON.parse(readFileSync(publicKeysFile, 'utf8')) as Record<string, Record<string, string>>)
    : {};
  const publicKeys: Record<string, Record<string, string>> = {};
  const files: Record<string, EventSigningFiles> = {};
  for (const region of regions) {
    const keyId = keyIdOf(region);
    const keyFile = join(dir, `${region}.${keyId}.key.pem`);
    let publicPem: string;
    if (existsSync(keyFile)) {
      publicPem = createPublicKey(readFileSync(keyFile, 'utf8'))
        .export({ type: 'spki', format: 'pem' })
        .toString();
    } else {
      const pair = generateSigningKeyPair(keyId);
      writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
      publicPem = pair.publicKeyPem;
    }
    chmodSync(keyFile, 0o600);
    publicKeys[region] = { ...(previous[region] ?? {}), [keyId]: publicPem };
    files[region] = { keyFile, keyId, publicKeysFile };
  }
  for (const [region, keys] of Object.entries(previous))
    if (!regions.includes(region)) publicKeys[region] = keys;
  // Replaced in one step: running regions re-read it when it changes (never half written).
  writeFileSync(`${publicKeysFile}.tmp`, `${JSON.stringify(publicKeys, null, 2)}\n`, { mode: 0o644 });
  renameSync(`${publicKeysFile}.tmp`, publicKeysFile);
  return files;
}
