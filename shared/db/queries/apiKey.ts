/**
 * Data access for the `api_key` table (migration 0006): what the API's authentication reads and
 * what `hothot keys` writes. The secret's hash never leaves this module except to the one function
 * that checks a presented secret against it (services/api/http/auth.ts).
 */
import type { Scope } from '../../security/apiKey.js';
import type { Queryable } from '../pool.js';

/** A key as `hothot keys list` shows it: never its hash. */
export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly Scope[];
  /** null: every collection. */
  readonly collections: readonly string[] | null;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

/** What authentication needs of a key: its hash, its grants, whether it is revoked. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly secretHash: Buffer;
  readonly scopes: readonly Scope[];
  readonly collections: readonly string[] | null;
  readonly revoked: boolean;
}

export interface NewApiKeyRow {
  readonly id: string;
  readonly secretHash: Buffer;
  readonly scopes: readonly Scope[];
  readonly collections: readonly string[] | null;
  readonly name: string;
}

/**
 * Insert a key. A key with the same id already there is left as it is (returns false), unless
 * `replace`: then it is overwritten and un-revoked (the lab re-asserting its own admin key).
 */
export async function insertApiKey(
  q: Queryable,
  key: NewApiKeyRow,
  options: { replace?: boolean } = {},
): Promise<boolean> {
  const { rowCount } = await q.query({
    text: `INSERT INTO api_key (id, secret_hash, scopes, collections, name)
           VALUES ($1, $2, $3::text[], $4::text[], $5)
           ON CONFLICT (id) DO ${
             options.replace === true
               ? `UPDATE SET secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes,
                             collections = EXCLUDED.collections, name = EXCLUDED.name, revoked_at = NULL`
               : 'NOTHING'
           }`,
    values: [key.id, key.secretHash, key.scopes, key.collections, key.name],
  });
  return (rowCount ?? 0) > 0;
}

/** The key with this id, revoked or not; undefined when there is none. */
export async function findApiKey(q: Queryable, id: string): Promise<ApiKeyRecord | undefined> {
  const { rows } = await q.query<ApiKeyRecord>({
    name: 'apiKey.find',
    text: `SELECT id, secret_hash AS "secretHash", scopes, collections, revoked_at IS NOT NULL AS revoked
             FROM api_key WHERE id = $1`,
    values: [id],
  });
  return rows[0];
}

export async function listApiKeys(q: Queryable): Promise<ApiKeyInfo[]> {
  const { rows } = await q.query<ApiKeyInfo>(
    `SELECT id, name, scopes, collections, created_at AS "createdAt", revoked_at AS "revokedAt"
       FROM api_key ORDER BY created_at, id`,
  );
  return rows;
}

/**
 * Revoke a key (the row stays, for the record). Returns `revoked`, `already` (it was revoked
 * before) or `unknown`.
 */
export async function revokeApiKey(q: Queryable, id: string): Promise<'revoked' | 'already' | 'unknown'> {
  const { rows } = await q.query<{ was: Date | null }>({
    text: `UPDATE api_key k SET revoked_at = coalesce(k.revoked_at, now())
             FROM api_key old WHERE k.id = $1 AND old.id = k.id
           RETURNING old.revoked_at AS was`,
    values: [id],
  });
  if (rows.length === 0) return 'unknown';
  return rows[0]!.was === null ? 'revoked' : 'already';
}
