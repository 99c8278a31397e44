/**
 * The first admin key of a deployment that has no shell on its database (compose, a managed
 * PostgreSQL): `BOOTSTRAP_ADMIN_KEY_FILE` names a file holding one API key token; at start the region
 * creates that key with every scope unless a key with its id already exists. An existing key is left
 * as it is — revoked stays revoked — so revoking the bootstrap key holds across restarts.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../../shared/logging/logger.js';
import { findApiKey, insertApiKey } from '../../shared/db/queries/apiKey.js';
import type { Queryable } from '../../shared/db/pool.js';
import { SCOPES, apiKeySecretMatches, hashApiKeySecret, parseApiKey } from '../../shared/security/apiKey.js';

/** Name the bootstrap key has in `hothot keys list`. */
export const BOOTSTRAP_ADMIN_KEY_NAME = 'bootstrap admin';

export type BootstrapOutcome = 'created' | 'present' | 'revoked' | 'mismatch';

/** Create the key in `file` unless its id exists; the token itself is never logged. */
export async function bootstrapAdminKey(q: Queryable, file: string, log: Logger): Promise<BootstrapOutcome> {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(
      `BOOTSTRAP_ADMIN_KEY_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      { cause: err },
    );
  }
  const parts = parseApiKey(token);
  if (parts === undefined)
    throw new Error(`BOOTSTRAP_ADMIN_KEY_FILE: ${file} does not hold a hothot API key (hh_<id>_<secret>)`);
  const created = await insertApiKey(q, {
    id: parts.id,
    secretHash: hashApiKeySecret(parts.secret),
    scopes: SCOPES,
    collections: null,
    name: BOOTSTRAP_ADMIN_KEY_NAME,
  });
  if (created) {
    log.info({ keyId: parts.id }, 'bootstrap admin key created');
    return 'created';
  }
  const existing = await findApiKey(q, parts.id);
  if (existing !== undefined && !apiKeySecretMatches(parts.secret, existing.secretHash)) {
    // Someone else's key has this id: never overwrite it.
    log.warn({ keyId: parts.id }, 'bootstrap admin key: a different key has this id; left as it is');
    return 'mismatch';
  }
  if (existing?.revoked === true) {
    log.info({ keyId: parts.id }, 'bootstrap admin key is revoked; left revoked');
    return 'revoked';
  }
  log.debug({ keyId: parts.id }, 'bootstrap admin key already present');
  return 'present';
}
