/**
 * Client credentials outside a region: the lab's admin key and session-token keys
 * (infra/lab/labClientKeys.ts: files of mode 0600, reused, or the key the environment gives) and
 * the session token's wire form (services/api/http/sessionToken.ts: sealed, refused when altered).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  LAB_ADMIN_KEY_ENV,
  adminKeyPath,
  ensureAdminKey,
  ensureSessionTokenKeys,
  sessionTokenKeysPath,
} from '../../infra/lab/labClientKeys.js';
import {
  INSECURE_DEV_SESSION_KEY,
  formatSessionToken,
  parseSessionToken,
  sessionTokenKeys,
} from '../../services/api/http/sessionToken.js';
import { loadConfig } from '../../shared/config/loadConfig.js';
import { generateApiKey, parseApiKey } from '../../shared/security/apiKey.js';

const root = mkdtempSync(join(tmpdir(), 'hothot-client-keys-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const mode = (file: string) => statSync(file).mode & 0o777;

describe('the lab admin key', () => {
  it('when none exists, then one is made in a 0600 file and reused by the next start', () => {
    const dir = join(root, 'a');
    const first = ensureAdminKey(dir, {});
    expect(first.source).toBe('generated');
    expect(parseApiKey(first.token)?.id).toBe(first.id);
    expect(first.file).toBe(adminKeyPath(dir));
    expect(readFileSync(first.file, 'utf8').trim()).toBe(first.token);
    expect(mode(first.file)).toBe(0o600);
    chmodSync(first.file, 0o644);
    const again = ensureAdminKey(dir, {});
    expect(again).toMatchObject({ token: first.token, source: 'file' });
    expect(mode(first.file)).toBe(0o600);
  });

  it(`when ${LAB_ADMIN_KEY_ENV} is set, then that key is used and written to the file; a malformed one is refused`, () => {
    const dir = join(root, 'b');
    ensureAdminKey(dir, {});
    const given = generateApiKey();
    const used = ensureAdminKey(dir, { [LAB_ADMIN_KEY_ENV]: given.token });
    expect(used).toMatchObject({ token: given.token, id: given.id, source: 'env' });
    expect(readFileSync(adminKeyPath(dir), 'utf8').trim()).toBe(given.token);
    expect(() => ensureAdminKey(dir, { [LAB_ADMIN_KEY_ENV]: 'hh_nope' })).toThrow(LAB_ADMIN_KEY_ENV);
  });

  it('when the file holds something else than a key, then a new key replaces it', () => {
    const dir = join(root, 'c');
    ensureAdminKey(dir, {});
    writeFileSync(adminKeyPath(dir), 'garbage\n');
    expect(ensureAdminKey(dir, {}).source).toBe('generated');
  });
});

describe('the lab session-token keys', () => {
  it('when made, then 32 random bytes in a 0600 file, the same on the next start, and valid for the config', () => {
    const dir = join(root, 'd');
    const keys = ensureSessionTokenKeys(dir);
    expect(Buffer.from(keys, 'base64url')).toHaveLength(32);
    expect(mode(sessionTokenKeysPath(dir))).toBe(0o600);
    expect(ensureSessionTokenKeys(dir)).toBe(keys);
    const config = loadConfig({
      REGION: 'us',
      PEER_REGIONS: 'eu',
      DATABASE_URL: 'postgres://h/db',
      KAFKA_BROKERS: 'k:9092',
      SECURITY_MODE: 'insecure-dev',
      SESSION_TOKEN_KEYS: keys,
    });
    expect(config.security.sessionTokenKeys[0]!.equals(Buffer.from(keys, 'base64url'))).toBe(true);
  });

  it('when given as SESSION_TOKEN_KEYS_FILE, then the file is read; unreadable, short or doubled, each is named', () => {
    const dir = join(root, 'f');
    const keys = ensureSessionTokenKeys(dir);
    const env = {
      REGION: 'us',
      PEER_REGIONS: 'eu',
      DATABASE_URL: 'postgres://h/db',
      KAFKA_BROKERS: 'k:9092',
    };
    const dev = { ...env, SECURITY_MODE: 'insecure-dev' };
    const config = loadConfig({ ...dev, SESSION_TOKEN_KEYS_FILE: sessionTokenKeysPath(dir) });
    expect(config.security.sessionTokenKeys[0]!.equals(Buffer.from(keys, 'base64url'))).toBe(true);
    expect(() => loadConfig({ ...dev, SESSION_TOKEN_KEYS_FILE: join(dir, 'missing') })).toThrow(
      /SESSION_TOKEN_KEYS_FILE: cannot read .*missing \(ENOENT\)/,
    );
    expect(() =>
      loadConfig({ ...dev, SESSION_TOKEN_KEYS_FILE: sessionTokenKeysPath(dir), SESSION_TOKEN_KEYS: keys }),
    ).toThrow(/both set/);
    const short = join(dir, 'short');
    writeFileSync(short, 'c2hvcnQ\n');
    let message = '';
    try {
      loadConfig({ ...dev, SESSION_TOKEN_KEYS_FILE: short });
    } catch (err) {
      message = String(err);
    }
    expect(message).toMatch(/SESSION_TOKEN_KEYS_FILE: every key must be base64url of at least 32 bytes/);
    expect(message).not.toContain('c2hvcnQ');
    // On by default: the file satisfies the session-key requirement (the others are still named).
    let onMessage = '';
    try {
      loadConfig({ ...env, SESSION_TOKEN_KEYS_FILE: sessionTokenKeysPath(dir) });
    } catch (err) {
      onMessage = String(err);
    }
    expect(onMessage).toContain('EVENT_SIGNING_KEY_FILE is not set');
    expect(onMessage).not.toContain('SESSION_TOKEN_KEYS is not set');
    expect(() => loadConfig(env)).toThrow(/SESSION_TOKEN_KEYS is not set/);
  });
});

describe('session tokens', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('when a token is formatted, then it parses back under its key or a key list that holds it, and under no other', () => {
    const token = formatSessionToken({ us: 1700000000000, eu: 5 }, [k1]);
    expect(parseSessionToken(token, [k1])).toEqual({ us: 1700000000000, eu: 5 });
    expect(parseSessionToken(token, [k2, k1])).toEqual({ us: 1700000000000, eu: 5 });
    expect(() => parseSessionToken(token, [k2])).toThrow(/MAC does not verify/);
    expect(parseSessionToken(undefined, [k1])).toBeUndefined();
    expect(parseSessionToken(' ', [k1])).toBeUndefined();
  });

  it('when any character of a token changes, then it is refused as invalid_session', () => {
    const token = formatSessionToken({ us: 1700000000000 }, [k1]);
    for (let i = 0; i < token.length; i++) {
      const c = token[i] === 'A' ? 'B' : 'A';
      const altered = token.slice(0, i) + c + token.slice(i + 1);
      expect(() => parseSessionToken(altered, [k1]), `position ${i}`).toThrow(
        expect.objectContaining({ code: 'invalid_session', httpStatus: 400 }),
      );
    }
    const unsigned = Buffer.from(JSON.stringify({ v: 1, o: { us: 1 } })).toString('base64url');
    expect(() => parseSessionToken(unsigned, [k1])).toThrow(
      expect.objectContaining({ code: 'invalid_session' }),
    );
  });

  it('when no keys are configured, then insecure-dev seals with the public dev key and on refuses to run', () => {
    const base = {
      mode: 'insecure-dev',
      sessionTokenKeys: [],
      apiKeyCacheMs: 5000,
      bootstrapAdminKeyFile: undefined,
    } as const;
    expect(sessionTokenKeys({ ...base, jwt: undefined, eventSigning: undefined, kafka: undefined })).toEqual([
      INSECURE_DEV_SESSION_KEY,
    ]);
    expect(() =>
      sessionTokenKeys({ ...base, mode: 'on', jwt: undefined, eventSigning: undefined, kafka: undefined }),
    ).toThrow(/SESSION_TOKEN_KEYS/);
    expect(
      sessionTokenKeys({
        ...base,
        sessionTokenKeys: [k1],
        jwt: undefined,
        eventSigning: undefined,
        kafka: undefined,
      }),
    ).toEqual([k1]);
  });
});
