/**
 * The credentials docker-compose.yml mounts (`secrets:`), made by `hothot lab compose-secrets` into
 * `.hothot/compose/` (git- and docker-ignored) with the same module as the native lab's
 * (infra/lab/labSecrets.ts), and the ACL list the compose `kafka-setup` service applies
 * (infra/kafka/compose-acls.txt, derived from infra/lab/kafkaAcls.ts and checked by a unit test).
 *
 * The directory is 0700; the files in it are 0644 because the containers read them as their own
 * users (Kafka's appuser, PostgreSQL's postgres, the region's node) through bind mounts, and each
 * container mounts only its own. The CA key stays 0600 and is mounted nowhere.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brokerJaas } from './kafkaBroker.js';
import { meshAclRules, type AclRule } from './kafkaAcls.js';
import { KAFKA_ADMIN_PRINCIPAL, ensureLabSecrets } from './labSecrets.js';
import { provisionEventKeys } from '../../shared/security/eventKeys.js';
import { generateApiKey, parseApiKey } from '../../shared/security/apiKey.js';
import { REPO_ROOT } from './paths.js';

export const COMPOSE_SECRETS_DIR = join(REPO_ROOT, '.hothot', 'compose');
export const COMPOSE_REGIONS: readonly string[] = ['us', 'eu'];
export const COMPOSE_TOPIC_PREFIX = 'hothot';
/**
 * The ACLs the compose `kafka-setup` service creates, one `<principal> <topic|group> <name> <ops>` per
 * line, operations as kafka-acls.sh names them (`Write,DescribeConfigs`).
 */
export const COMPOSE_ACLS_FILE = join(REPO_ROOT, 'infra', 'kafka', 'compose-acls.txt');

/** Secret name in docker-compose.yml → file name in the compose secrets directory. */
export function composeSecretFiles(regions: readonly string[] = COMPOSE_REGIONS): Record<string, string> {
  return {
    'kafka-ca': 'ca.crt',
    'kafka-broker-keystore': 'kafka-broker.pem',
    'kafka-broker-jaas': 'kafka-broker.jaas',
    [`kafka-${KAFKA_ADMIN_PRINCIPAL}-password`]: `kafka-${KAFKA_ADMIN_PRINCIPAL}.password`,
    ...Object.fromEntries(
      regions.flatMap((r) => [
        [`kafka-${r}-password`, `kafka-${r}.password`],
        [`postgres-${r}-superuser-password`, `postgres-${r}-superuser.password`],
        [`postgres-${r}-app-password`, `postgres-${r}-app.password`],
        // Its event-signing key (docs/security.md, "Replication: signed events").
        [`event-${r}-key`, `${r}.${r}-1.key.pem`],
      ]),
    ),
    'event-public-keys': 'public-keys.json',
    // SESSION_TOKEN_KEYS_FILE of both regions: one key, so a session token verifies in either region.
    'session-token-keys': COMPOSE_SESSION_TOKEN_KEYS_FILE,
    // BOOTSTRAP_ADMIN_KEY_FILE of both regions: the admin API key each creates at start.
    'bootstrap-admin-key': COMPOSE_ADMIN_KEY_FILE,
  };
}

/** File (in the compose secrets directory) of the regions' SESSION_TOKEN_KEYS: one base64url key. */
export const COMPOSE_SESSION_TOKEN_KEYS_FILE = 'session-token-keys';
/** File (in the compose secrets directory) of the admin API key `hh_<id>_<secret>` the regions bootstrap. */
export const COMPOSE_ADMIN_KEY_FILE = 'admin-key';

/** The admin API key token the compose regions bootstrap (`Authorization: Bearer <token>`). */
export function readComposeAdminKey(dir: string = COMPOSE_SECRETS_DIR): string {
  return readFileSync(join(dir, COMPOSE_ADMIN_KEY_FILE), 'utf8').trim();
}

/** Keep `file` if `valid` accepts its content, else write `make()` into it. */
function keepOrWrite(file: string, valid: (text: string) => boolean, make: () => string): void {
  if (existsSync(file) && valid(readFileSync(file, 'utf8').trim())) return;
  writeFileSync(file, `${make()}\n`, { mode: 0o600 });
}

/** Make (or keep) the compose credentials in `dir`; returns the file names written. Prints nothing secret. */
export function writeComposeSecrets(
  dir: string = COMPOSE_SECRETS_DIR,
  regions: readonly string[] = COMPOSE_REGIONS,
): { dir: string; created: boolean; files: string[] } {
  const secrets = ensureLabSecrets(dir, { kafkaPrincipals: regions, postgresClusters: regions });
  // An Ed25519 event-signing key per region (`<region>.<region>-1.key.pem`, kept) and public-keys.json.
  provisionEventKeys(dir, regions);
  writeFileSync(join(dir, 'kafka-broker.jaas'), brokerJaas(secrets.kafkaPassword(KAFKA_ADMIN_PRINCIPAL)));
  keepOrWrite(
    join(dir, COMPOSE_SESSION_TOKEN_KEYS_FILE),
    (text) => text !== '' && text.split(',').every((k) => Buffer.from(k.trim(), 'base64url').length >= 32),
    () => randomBytes(32).toString('base64url'),
  );
  keepOrWrite(
    join(dir, COMPOSE_ADMIN_KEY_FILE),
    (text) => parseApiKey(text) !== undefined,
    () => generateApiKey().token,
  );
  const mounted = new Set(Object.values(composeSecretFiles(regions)));
  for (const file of readdirSync(dir)) chmodSync(join(dir, file), mounted.has(file) ? 0o644 : 0o600);
  chmodSync(dir, 0o700);
  return { dir, created: secrets.created, files: [...mounted].sort() };
}

/** The lines of {@link COMPOSE_ACLS_FILE} for `regions`: rules grouped by principal and resource. */
export function composeAclLines(
  prefix: string = COMPOSE_TOPIC_PREFIX,
  regions: readonly string[] = COMPOSE_REGIONS,
): string[] {
  const groups = new Map<string, AclRule[]>();
  for (const rule of meshAclRules(prefix, regions)) {
    const key = `${rule.principal} ${rule.resource.toLowerCase()} ${rule.name}`;
    groups.set(key, [...(groups.get(key) ?? []), rule]);
  }
  return [...groups].map(
    ([key, rules]) => `${key} ${rules.map((r) => aclCommandOperation(r.operation)).join(',')}`,
  );
}

/** An operation as kafka-acls.sh spells it: `DESCRIBE_CONFIGS` → `DescribeConfigs`. */
function aclCommandOperation(operation: string): string {
  return operation
    .split('_')
    .map((w) => w.charAt(0) + w.slice(1).toLowerCase())
    .join('');
}
