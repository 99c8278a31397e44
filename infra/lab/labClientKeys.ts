/**
 * The lab's client credentials: the session-token MAC key every region shares, and one admin API key
 * (read, write, admin) created in every region's database once the regions are ready. Both live in
 * files of mode 0600 and are reused across restarts; lab.json names the admin key's file, never the
 * key. `HOTHOT_LAB_ADMIN_KEY` (the tests set it) makes the lab use that key instead of its own.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { insertApiKey } from '../../shared/db/queries/apiKey.js';
import { SCOPES, hashApiKeySecret, parseApiKey } from '../../shared/security/apiKey.js';
import { MIN_MAC_KEY_BYTES } from '../../shared/security/tokenMac.js';

/** Name the lab's admin key has in `hothot keys list`. */
export const LAB_ADMIN_KEY_NAME = 'lab admin';
/** Environment variable that hands the lab an admin key to use (tests). */
export const LAB_ADMIN_KEY_ENV = 'HOTHOT_LAB_ADMIN_KEY';

/** `<root>/admin-key`: the lab's admin API key (next to lab.json, so `--fresh` keeps it). */
export function adminKeyPath(root: string): string {
  return join(root, 'admin-key');
}

/** `<root>/lab/session-token-keys`: the lab's SESSION_TOKEN_KEYS. */
export function sessionTokenKeysPath(root: string): string {
  return join(root, 'lab', 'session-token-keys');
}

/** Write `text` readable by its owner only (also when the file existed with wider permissions). */
function writeSecret(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

function readIfExists(file: string): string | undefined {
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}

/**
 * The lab's SESSION_TOKEN_KEYS value (base64url of 32 random bytes), made once and kept in
 * {@link sessionTokenKeysPath}.
 */
export function ensureSessionTokenKeys(root: string): string {
  const file = sessionTokenKeysPath(root);
  const existing = readIfExists(file);
  if (
    existing !== undefined &&
    existing !== '' &&
    existing.split(',').every((k) => Buffer.from(k, 'base64url').length >= MIN_MAC_KEY_BYTES)
  )
    return existing;
  const keys = randomBytes(32).toString('base64url');
  writeSecret(file, `${keys}\n`);
  return keys;
}

export interface LabAdminKey {
  readonly token: string;
  readonly id: string;
  readonly file: string;
  /** Where it came from: generated now, read from the file of an earlier run, or the environment. */
  readonly source: 'generated' | 'file' | 'env';
}

/**
 * The lab's admin key: `$HOTHOT_LAB_ADMIN_KEY`, else the one in {@link adminKeyPath}, else a new one.
 * Written to the file (0600) in every case, so the file always holds the key the lab uses.
 */
export function ensureAdminKey(root: string, env: NodeJS.ProcessEnv = process.env): LabAdminKey {
  const file = adminKeyPath(root);
  const fromEnv = env[LAB_ADMIN_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    const parts = parseApiKey(fromEnv.trim());
    if (parts === undefined)
      throw new Error(`${LAB_ADMIN_KEY_ENV} is not a hothot API key (hh_<id>_<secret>)`);
    if (readIfExists(file) !== fromEnv.trim()) writeSecret(file, `${fromEnv.trim()}\n`);
    return { token: fromEnv.trim(), id: parts.id, file, source: 'env' };
  }
  const existing = readIfExists(file);
  const parsed = existing !== undefined ? parseApiKey(existing) : undefined;
  if (existing !== undefined && parsed !== undefined) {
    chmodSync(file, 0o600);
    return { token: existing, id: parsed.id, file, source: 'file' };
  }
  // A fresh key: the same shape `hothot keys create` makes.
  const secret = randomBytes(32).toString('base64url');
  const id = Array.from(randomBytes(16), (b) => 'abcdefghijklmnopqrstuvwxyz234567'[b & 31]).join('');
  const token = `hh_${id}_${secret}`;
  writeSecret(file, `${token}\n`);
  return { token, id, file, source: 'generated' };
}

/**
 * Create (or re-assert: overwritten, un-revoked) the admin key with every scope in each database.
 * Needs the regions' migrations applied (a region answering /readyz has applied them).
 */
export async function provisionAdminKey(token: string, databaseUrls: readonly string[]): Promise<void> {
  const parts = parseApiKey(token);
  if (parts === undefined) throw new Error('the lab admin key is not a hothot API key');
  for (const url of databaseUrls) {
    const pool = new pg.Pool({ connectionString: url, max: 1, application_name: 'hothot-lab' });
    try {
      await insertApiKey(
        pool,
        {
          id: parts.id,
          secretHash: hashApiKeySecret(parts.secret),
          scopes: SCOPES,
          collections: null,
          name: LAB_ADMIN_KEY_NAME,
        },
        { replace: true },
      );
    } finally {
      await pool.end();
    }
  }
}
