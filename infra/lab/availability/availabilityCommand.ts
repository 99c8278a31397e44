/**
 * `hothot lab availability`: measure the availability model (docs/availability.md) on labs of its own
 * and write the report (JSON, Markdown, SVG chart) into bench/results/.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { REPO_ROOT } from '../paths.js';
import { writeAvailabilityReport } from './availabilityReport.js';
import { STUDY_REGIONS, runAvailabilityStudy } from './availabilityStudy.js';

export const DEFAULT_NS = [2, 3];
export const DEFAULT_PS = [0.1, 0.2, 0.3];
export const DEFAULT_DURATION_S = 60;
export const QUICK = { ns: [2, 3], ps: [0.2], durationS: 30 } as const;
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

const out = (line = '') => process.stdout.write(`${line}\n`);

function list(parse: (v: string) => number): (value: string) => number[] {
  return (value: string) =>
    value
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '')
      .map(parse);
}

const count = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > STUDY_REGIONS.length)
    throw new InvalidArgumentError(`each N must be an integer from 1 to ${STUDY_REGIONS.length}`);
  return n;
};
const fraction = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 0.9)) throw new InvalidArgumentError('each P must be a number from 0 to 0.9');
  return n;
};
const integer = (min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
  return n;
};

export interface AvailabilityCommandOptions {
  n?: number[];
  p?: number[];
  durationS?: number;
  quick?: boolean;
  seed?: number;
  writes: number;
  reads: number;
  outageS?: number;
  out: string;
  keep?: boolean;
  /** commander's --no-compiled. */
  compiled?: boolean;
}

/** Run the study as the command or the bench asks; returns the report's files. */
export async function runAvailabilityCommand(
  options: AvailabilityCommandOptions,
  log: (message: string) => void,
): Promise<{ json: string; markdown: string; chart: string; lost: number }> {
  const quick = options.quick === true;
  const seed = options.seed ?? randomBytes(4).readUInt32LE(0);
  const ns = options.n ?? (quick ? [...QUICK.ns] : DEFAULT_NS);
  const ps = options.p ?? (quick ? [...QUICK.ps] : DEFAULT_PS);
  const durationS = options.durationS ?? (quick ? QUICK.durationS : DEFAULT_DURATION_S);
  log(
    `availability: N ${ns.join(', ')} × P ${ps.join(', ')}, ${durationS} s each (≈ ${Math.round((ns.length * (60 + ps.length * (durationS + 20))) / 60)} min), seed ${seed} (rerun with --seed ${seed})`,
  );
  const study = await runAvailabilityStudy({
    ns,
    ps,
    durationMs: durationS * 1000,
    seed,
    quick,
    writesPerS: options.writes,
    readsPerS: options.reads,
    ...(options.outageS !== undefined ? { outageMs: options.outageS * 1000 } : {}),
    ...(options.keep === true ? { keep: true } : {}),
    compiled: options.compiled !== false,
    log,
  });
  const files = writeAvailabilityReport(study, options.out);
  log(`wrote ${files.markdown}, ${files.json} and ${files.chart}`);
  return { ...files, lost: study.points.reduce((s, p) => s + p.writesLost, 0) };
}

/** Register `availability` under the `lab` command. */
export function addAvailabilityCommand(lab: Command): void {
  lab
    .command('availability')
    .description(
      'measure availability through the front door while seeded chaos kills and restarts regions (each down a fraction P of the time); compare with 1 − P^N and (1 − P)^N',
    )
    .addOption(
      new Option(
        '--n <list>',
        `region counts N (default ${DEFAULT_NS.join(',')}; --quick ${QUICK.ns.join(',')})`,
      ).argParser(list(count)),
    )
    .addOption(
      new Option(
        '--p <list>',
        `down fractions P (default ${DEFAULT_PS.join(',')}; --quick ${QUICK.ps.join(',')})`,
      ).argParser(list(fraction)),
    )
    .addOption(
      new Option(
        '--duration-s <s>',
        `seconds of load per point (default ${DEFAULT_DURATION_S}; --quick ${QUICK.durationS})`,
      ).argParser(integer(10, 3600)),
    )
    .option(
      '--quick',
      `a short run: N ${QUICK.ns.join(',')}, P ${QUICK.ps.join(',')}, ${QUICK.durationS} s each`,
    )
    .addOption(
      new Option('--seed <n>', 'seed of the chaos schedule (printed; default random)').argParser(
        integer(0, 2 ** 32 - 1),
      ),
    )
    .addOption(new Option('--writes <per-s>', 'writes per second').argParser(integer(1, 2000)).default(20))
    .addOption(new Option('--reads <per-s>', 'reads per second').argParser(integer(0, 2000)).default(20))
    .addOption(
      new Option('--outage-s <s>', 'target length of one outage (default 12)').argParser(integer(1, 600)),
    )
    .option('--out <dir>', 'where the report goes', RESULTS_DIR)
    .option('--keep', "keep each lab's directory (logs) afterwards")
    .option(
      '--no-compiled',
      'run the region processes through tsx instead of the compiled build (dist/, built first)',
    )
    .addHelpText(
      'after',
      `
Starts a lab of its own per N (in a temporary directory, regions ${STUDY_REGIONS.join(', ')}…, with the
front door; not the lab of \`lab up\`), and for each P runs steady writes and reads through the front door
while each region's process is SIGKILLed and restarted on a seeded schedule. Prints progress; writes
<out>/<timestamp>-availability.{json,md,svg}. Exit status 1 when an acknowledged write was lost.
The method and a run's numbers: docs/availability.md.`,
    )
    .action(async (options: AvailabilityCommandOptions) => {
      const started = Date.now();
      const stamp = () => {
        const s = Math.round((Date.now() - started) / 1000);
        return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
      };
      const result = await runAvailabilityCommand(options, (m) => out(`[${stamp()}] ${m}`));
      process.exitCode = result.lost > 0 ? 1 : 0;
    });
}
