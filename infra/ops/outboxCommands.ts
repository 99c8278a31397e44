/**
 * `hothot outbox …`: what an operator does about outbox rows Kafka would not take (set aside in
 * `outbox_held` by the relay, see services/relay/outboxRelay.ts). Works against a region's
 * PostgreSQL: `--database-url`, a lab region (`--region us`, read from lab.json), or `$DATABASE_URL`.
 *
 *   hothot outbox held  [--json]            list them, with size and reason
 *   hothot outbox retry <id…> | --all       put them back in the outbox (after raising the limit)
 *   hothot outbox drop  <id…> | --all --yes remove them: peers never get those versions
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import pg from 'pg';
import { dropHeld, listHeld, requeueHeld, type HeldRow } from '../../shared/db/queries/outbox.js';
import { labDatabaseUrl } from '../lab/lab.js';
import { readLabState } from '../lab/labState.js';
import { resolveLabRoot } from '../lab/paths.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

interface TargetOptions {
  databaseUrl?: string;
  region?: string;
  dir?: string;
}

/** The region database to work on; throws a message saying what to pass when none is given. */
export function resolveDatabaseUrl(options: TargetOptions, env: NodeJS.ProcessEnv = process.env): string {
  if (options.databaseUrl !== undefined) return options.databaseUrl;
  if (options.region !== undefined) {
    const root = resolveLabRoot(options.dir, env);
    const state = readLabState(root);
    if (state === undefined) throw new Error(`no lab is running in ${root} (lab.json not found)`);
    // lab.json keeps the URL without its password; this puts it back (from the lab's secrets).
    return labDatabaseUrl(state, options.region);
  }
  if (env.DATABASE_URL !== undefined && env.DATABASE_URL !== '') return env.DATABASE_URL;
  throw new Error(
    'say which region: --region <name> (a lab region), --database-url <url>, or set DATABASE_URL',
  );
}

const ids = (value: string, previous: string[] = []): string[] => {
  if (!/^\d{1,19}$/.test(value)) throw new InvalidArgumentError(`${JSON.stringify(value)} is not a row id`);
  return [...previous, value];
};

function targetOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--database-url <url>', "the region's PostgreSQL URL (default: $DATABASE_URL)"))
    .addOption(new Option('--region <name>', "a lab region: its database is read from the lab's lab.json"))
    .addOption(
      new Option('--dir <path>', 'lab directory, with --region (default: $HOTHOT_LAB_DIR or <repo>/.hothot)'),
    );
}

async function withDatabase(
  options: TargetOptions,
  work: (pool: pg.Pool) => Promise<number>,
): Promise<number> {
  let url: string;
  try {
    url = resolveDatabaseUrl(options);
  } catch (e) {
    err(`hothot outbox: ${(e as Error).message}`);
    return 2;
  }
  const pool = new pg.Pool({ connectionString: url, max: 1, application_name: 'hothot-outbox-cli' });
  try {
    return await work(pool);
  } catch (e) {
    // Never the URL: it may carry a password.
    err(`hothot outbox: ${(e as Error).message}`);
    return 1;
  } finally {
    await pool.end();
  }
}

/** Which held rows a retry or drop means: the ids given, or all with --all (never neither or both). */
function selection(given: string[], all: boolean | undefined, verb: string): string[] | undefined {
  if (all === true && given.length > 0)
    throw new InvalidArgumentError(`${verb}: give row ids or --all, not both`);
  if (all !== true && given.length === 0)
    throw new InvalidArgumentError(`${verb}: give the ids of held rows (see hothot outbox held) or --all`);
  return all === true ? undefined : given;
}

function describeRow(r: HeldRow): string {
  return `${r.id.padStart(8)}  ${String(r.bytes).padStart(10)}  ${r.heldAt.toISOString()}  ${r.msgKey}\n          ${r.reason}`;
}

export function addOutboxCommands(program: Command): void {
  const outbox = program
    .command('outbox')
    .description("a region's outbox rows that Kafka would not take (held): list, retry, drop")
    .addHelpText(
      'after',
      `
The relay sets a row aside in the outbox_held table when Kafka will not take it (the event is larger
than the broker's message.max.bytes, e.g. after the limit was lowered), so that the rows behind it are
published. Until it is resolved the peers do not have that version of the item (a later write of the
same item replicates as usual and supersedes it). /v1/status (outbox.heldRows) and the metric
hothot_outbox_held_rows show held rows; the relay logs each one as an error.`,
    );

  targetOptions(outbox.command('held').description('list the held rows: id, bytes, when, key, reason'))
    .option('--json', 'print JSON')
    .option('--limit <n>', 'rows at most', (v) => Number(v), 1000)
    .action(async (options: TargetOptions & { json?: boolean; limit: number }) => {
      process.exitCode = await withDatabase(options, async (pool) => {
        const rows = await listHeld(pool, options.limit);
        if (options.json) {
          out(JSON.stringify(rows, null, 2));
        } else if (rows.length === 0) {
          out('no held rows: every committed write is in the outbox or published');
        } else {
          out(`${'id'.padStart(8)}  ${'bytes'.padStart(10)}  held at                   key`);
          for (const r of rows) out(describeRow(r));
          out(
            `${rows.length} held row(s): raise the limit and run \`hothot outbox retry --all\`, or drop them`,
          );
        }
        return 0;
      });
    });

  targetOptions(
    outbox
      .command('retry')
      .description(
        'put held rows back in the outbox: the relay publishes them, or holds them again if they still do not fit',
      )
      .argument('[ids...]', 'ids of held rows', ids)
      .option('--all', 'every held row'),
  ).action(async (given: string[], options: TargetOptions & { all?: boolean }) => {
    const chosen = selection(given, options.all, 'retry');
    process.exitCode = await withDatabase(options, async (pool) => {
      const n = await requeueHeld(pool, chosen);
      out(`${n} row(s) put back in the outbox`);
      return chosen !== undefined && n < chosen.length ? 1 : 0;
    });
  });

  targetOptions(
    outbox
      .command('drop')
      .description('remove held rows for good: the peers never receive those versions')
      .argument('[ids...]', 'ids of held rows', ids)
      .option('--all', 'every held row')
      .option('--yes', 'confirm: the versions stay in this region only'),
  ).action(async (given: string[], options: TargetOptions & { all?: boolean; yes?: boolean }) => {
    const chosen = selection(given, options.all, 'drop');
    if (options.yes !== true) {
      err('hothot outbox drop: the peers will never receive these versions; add --yes to confirm');
      process.exitCode = 2;
      return;
    }
    process.exitCode = await withDatabase(options, async (pool) => {
      const n = await dropHeld(pool, chosen);
      out(`${n} held row(s) dropped`);
      return chosen !== undefined && n < chosen.length ? 1 : 0;
    });
  });
}
