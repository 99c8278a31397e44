/**
 * `hothot keys …`: the API keys of clients, in a region's database (table `api_key`, see
 * services/api/http/auth.ts). Keys are per region database, so a key a client uses in several regions
 * is created in each at once: give several targets (`--region us --region eu`, `--all-regions` for a
 * lab, or several `--database-url`).
 *
 *   hothot keys create --scopes read,write [--collections a,b] [--name N]   prints the key ONCE
 *   hothot keys list [--json]                                               never the secret or its hash
 *   hothot keys revoke <id>                                                 stops working within API_KEY_CACHE_MS
 *
 * Targets: `--database-url <url>` (repeatable), `--region <name>` (repeatable; a lab region, read
 * from lab.json), `--all-regions` (every region of the lab), or `$DATABASE_URL`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import { insertApiKey, listApiKeys, revokeApiKey, type ApiKeyInfo } from '../../shared/db/queries/apiKey.js';
import { isValidCollection } from '../../shared/domain/itemRules.js';
import { SCOPES, generateApiKey, isScope, type Scope } from '../../shared/security/apiKey.js';
import { readLabState } from '../lab/labState.js';
import { resolveLabRoot } from '../lab/paths.js';
import { resolveDatabaseUrl } from './outboxCommands.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

interface TargetOptions {
  databaseUrl?: string[];
  region?: string[];
  allRegions?: boolean;
  dir?: string;
}

/** One region database to work on; `label` names it without credentials. */
export interface KeyTarget {
  readonly label: string;
  readonly databaseUrl: string;
}

/** A database URL without its user and password, for messages. */
function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port !== '' ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'database';
  }
}

/** The region databases a command works on; throws a message saying what to pass when none is given. */
export function resolveKeyTargets(options: TargetOptions, env: NodeJS.ProcessEnv = process.env): KeyTarget[] {
  const targets: KeyTarget[] = [];
  const regions = options.region ?? [];
  if (regions.length > 0 || options.allRegions === true) {
    const root = resolveLabRoot(options.dir, env);
    const state = readLabState(root);
    if (state === undefined) throw new Error(`no lab is running in ${root} (lab.json not found)`);
    const names = options.allRegions === true ? state.regionNames : regions;
    // One way to a lab region's database for every ops command (hothot outbox, hothot keys).
    for (const name of names)
      targets.push({ label: name, databaseUrl: resolveDatabaseUrl({ region: name, dir: root }, env) });
  }
  for (const url of options.databaseUrl ?? []) targets.push({ label: describeUrl(url), databaseUrl: url });
  if (targets.length === 0 && env.DATABASE_URL !== undefined && env.DATABASE_URL !== '')
    targets.push({ label: describeUrl(env.DATABASE_URL), databaseUrl: env.DATABASE_URL });
  if (targets.length === 0)
    throw new Error(
      'say which region(s): --region <name> (a lab region; repeatable), --all-regions, --database-url <url> (repeatable), or set DATABASE_URL',
    );
  return targets;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function parseScopes(value: string): Scope[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = items.filter((s) => !isScope(s));
  if (items.length === 0 || bad.length > 0)
    throw new InvalidArgumentError(`expected a comma-separated subset of ${SCOPES.join(',')}`);
  return [...new Set(items as Scope[])];
}

function parseCollections(value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = items.filter((c) => !isValidCollection(c));
  if (items.length === 0 || bad.length > 0)
    throw new InvalidArgumentError(
      `expected comma-separated collection names${bad.length > 0 ? ` (not one: ${bad.join(', ')})` : ''}`,
    );
  return [...new Set(items)];
}

function targetOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--database-url <url>',
        "a region's PostgreSQL URL; repeat for several regions (default: $DATABASE_URL)",
      ).argParser(collect),
    )
    .addOption(
      new Option(
        '--region <name>',
        "a lab region (its database from the lab's lab.json); repeat for several",
      ).argParser(collect),
    )
    .addOption(new Option('--all-regions', 'every region of the lab'))
    .addOption(
      new Option(
        '--dir <path>',
        'lab directory, with --region or --all-regions (default: $HOTHOT_LAB_DIR or <repo>/.hothot)',
      ),
    );
}

/** A clearer message for what PostgreSQL says when the region never ran its migrations. */
function explain(e: unknown): string {
  if ((e as { code?: unknown }).code === '42P01')
    return 'this database has no api_key table yet: start the region once (it applies its migrations), then retry';
  return (e as Error).message;
}

/** Run `work` on each target in turn; exit code 0 when every one succeeded. */
async function onEachTarget(
  command: string,
  options: TargetOptions,
  work: (pool: pg.Pool, target: KeyTarget) => Promise<boolean>,
): Promise<number> {
  let targets: KeyTarget[];
  try {
    targets = resolveKeyTargets(options);
  } catch (e) {
    err(`hothot keys ${command}: ${(e as Error).message}`);
    return 2;
  }
  let ok = true;
  for (const target of targets) {
    const pool = new pg.Pool({
      connectionString: target.databaseUrl,
      max: 1,
      application_name: 'hothot-keys-cli',
    });
    try {
      ok = (await work(pool, target)) && ok;
    } catch (e) {
      // Never the URL: it may carry a password.
      err(`hothot keys ${command}: ${target.label}: ${explain(e)}`);
      ok = false;
    } finally {
      await pool.end();
    }
  }
  return ok ? 0 : 1;
}

function describeKey(k: ApiKeyInfo): string {
  return [
    k.id,
    (k.name === '' ? '-' : k.name).padEnd(16),
    k.scopes.join(',').padEnd(16),
    (k.collections === null ? '*' : k.collections.join(',')).padEnd(20),
    k.createdAt.toISOString(),
    k.revokedAt === null ? 'active' : `revoked ${k.revokedAt.toISOString()}`,
  ].join('  ');
}

export function addKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description("API keys of the region API's clients: create, list, revoke")
    .addHelpText(
      'after',
      `
Clients send a key as \`Authorization: Bearer hh_…\`. Scopes: read (GET items, listings, history,
conflicts), write (PUT, PATCH, DELETE, increment; implies read), admin (/v1/status, /metrics;
implies write and read). --collections limits a key to those collections (403 elsewhere).
Only a hash of the key is stored: it is shown once, by \`create\`. Keys live in each region's
database: create a key in every region its client uses (several --region, or --all-regions).
A revoked key stops working within API_KEY_CACHE_MS (default 5 s).`,
    );

  targetOptions(
    keys
      .command('create')
      .description('create a key in every region given and print it, once')
      .requiredOption('--scopes <list>', `comma-separated: ${SCOPES.join(', ')}`, parseScopes)
      .option('--collections <list>', 'limit the key to these collections (default: all)', parseCollections)
      .option('--name <text>', 'a name to recognise the key by in `keys list`', '')
      .option('--json', 'print {id, token, scopes, collections, name, regions} as JSON'),
  ).action(
    async (
      options: TargetOptions & { scopes: Scope[]; collections?: string[]; name: string; json?: boolean },
    ) => {
      const key = generateApiKey();
      const created: string[] = [];
      process.exitCode = await onEachTarget('create', options, async (pool, target) => {
        const inserted = await insertApiKey(pool, {
          id: key.id,
          secretHash: key.secretHash,
          scopes: options.scopes,
          collections: options.collections ?? null,
          name: options.name,
        });
        // 80 random bits of id: a clash is a bug, not bad luck.
        if (!inserted) throw new Error(`a key with id ${key.id} exists already; nothing created there`);
        created.push(target.label);
        return true;
      });
      if (created.length === 0) return;
      if (options.json === true) {
        out(
          JSON.stringify({
            id: key.id,
            token: key.token,
            scopes: options.scopes,
            collections: options.collections ?? null,
            name: options.name,
            regions: created,
          }),
        );
      } else {
        out(key.token);
        err(
          `key ${key.id} (${options.scopes.join(',')}${options.collections !== undefined ? ` on ${options.collections.join(',')}` : ''}) created in ${created.join(', ')}`,
        );
      }
      err('this is the only time the key is shown: store it now (only its hash is kept)');
    },
  );

  targetOptions(
    keys
      .command('list')
      .description('list the keys: id, name, scopes, collections, created, revoked (never a secret)')
      .option('--json', 'print JSON'),
  ).action(async (options: TargetOptions & { json?: boolean }) => {
    const all: Record<string, ApiKeyInfo[]> = {};
    process.exitCode = await onEachTarget('list', options, async (pool, target) => {
      all[target.label] = await listApiKeys(pool);
      return true;
    });
    if (options.json === true) {
      out(JSON.stringify(all, null, 2));
      return;
    }
    for (const [label, rows] of Object.entries(all)) {
      out(`${label}: ${rows.length} key(s)`);
      for (const k of rows) out(`  ${describeKey(k)}`);
    }
  });

  targetOptions(
    keys
      .command('revoke')
      .description('revoke a key in every region given: it stops working within API_KEY_CACHE_MS')
      .argument('<id>', 'the key id (the 16 characters after hh_, as `keys list` shows)', (v: string) => {
        if (!/^[a-z2-7]{16}$/.test(v))
          throw new InvalidArgumentError('expected a key id: 16 characters a-z, 2-7 (see hothot keys list)');
        return v;
      }),
  ).action(async (id: string, options: TargetOptions) => {
    process.exitCode = await onEachTarget('revoke', options, async (pool, target) => {
      const outcome = await revokeApiKey(pool, id);
      if (outcome === 'unknown') {
        err(`${target.label}: no key ${id}`);
        return false;
      }
      out(`${target.label}: key ${id} ${outcome === 'revoked' ? 'revoked' : 'was already revoked'}`);
      return true;
    });
  });
}
