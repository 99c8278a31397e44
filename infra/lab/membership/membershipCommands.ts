/**
 * `hothot lab add-region | remove-region | rebootstrap`: change which regions a running (detached) lab
 * has, or bring one back after Kafka deleted events it had not read. Each prints its phases with
 * counts and times; errors say what to do.
 */
import { Option, type Command } from 'commander';
import { validateRegions, type LabProgress } from '../lab.js';
import { resolveLabRoot } from '../paths.js';
import { addRegion } from './addRegion.js';
import { rebootstrapRegion } from './rebootstrapRegion.js';
import { removeRegion } from './removeRegion.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

function printProgress(event: LabProgress): void {
  if (event.type === 'info') out(`  ${event.message}`);
  else if (event.type === 'warning')
    out(
      `  WARNING  ${event.message}${event.fix !== undefined ? `\n           to fix it: ${event.fix}` : ''}`,
    );
}

const dirOption = () =>
  new Option('--dir <path>', 'lab directory (default: $HOTHOT_LAB_DIR or <repo>/.hothot)');

function regionArgument(value: string): string {
  return validateRegions([value])[0]!;
}

async function run(command: string, work: () => Promise<string>): Promise<number> {
  try {
    out(await work());
    return 0;
  } catch (e) {
    err(`hothot lab ${command}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

export function addMembershipCommands(lab: Command): void {
  lab
    .command('add-region')
    .description(
      'add a region to a running lab online: credentials, database, topic and ACLs, a snapshot of --from ' +
        '(one REPEATABLE READ transaction, streamed with COPY), replay from the recorded offsets; the other ' +
        'regions learn it without a restart (peers file + SIGHUP). Writes go on throughout; see docs/operations.md',
    )
    .argument('<region>', 'the new region id (lower-case letters, digits, dashes)', regionArgument)
    .option('--from <region>', "region whose snapshot the new one starts from (default: the lab's first)")
    .addOption(dirOption())
    .action(async (region: string, options: { from?: string; dir?: string }) => {
      process.exitCode = await run('add-region', async () => {
        const root = resolveLabRoot(options.dir);
        out(`adding region ${region} to the lab in ${root}`);
        const r = await addRegion({
          root,
          region,
          ...(options.from !== undefined ? { source: options.from } : {}),
          onProgress: printProgress,
        });
        return (
          `region ${r.region} joined in ${seconds(r.joinMs)} (${seconds(r.totalMs)} with provisioning) with ` +
          `${r.snapshot.items.toLocaleString('en')} items from ${r.source}'s snapshot (copied in ${seconds(r.snapshot.ms)}); ` +
          `remove it with: hothot lab remove-region ${r.region}`
        );
      });
    });

  lab
    .command('remove-region')
    .description(
      'retire a region: stop it, delete its Kafka ACLs, tell the others without a restart (its acknowledgements ' +
        'stop blocking tombstone collection); its database and topic stay',
    )
    .argument('<region>', 'region to retire', regionArgument)
    .addOption(dirOption())
    .action(async (region: string, options: { dir?: string }) => {
      process.exitCode = await run('remove-region', async () => {
        const r = await removeRegion({
          root: resolveLabRoot(options.dir),
          region,
          onProgress: printProgress,
        });
        return `region ${r.region} retired in ${seconds(r.totalMs)}; the lab runs ${r.remaining.join(', ')}`;
      });
    });

  lab
    .command('rebootstrap')
    .description(
      "bring back a region Kafka left behind (status replication.complete false: peers' events expired " +
        'before it read them): stop it, merge a snapshot of --from, move its offsets forward, start it',
    )
    .argument('<region>', 'region to re-bootstrap', regionArgument)
    .option('--from <region>', 'region whose snapshot is merged in (default: the first other region)')
    .addOption(dirOption())
    .action(async (region: string, options: { from?: string; dir?: string }) => {
      process.exitCode = await run('rebootstrap', async () => {
        const r = await rebootstrapRegion({
          root: resolveLabRoot(options.dir),
          region,
          ...(options.from !== undefined ? { source: options.from } : {}),
          onProgress: printProgress,
        });
        return `region ${r.region} re-bootstrapped from ${r.source} in ${seconds(r.totalMs)} (${r.gapsResolved} gaps resolved)`;
      });
    });
}
