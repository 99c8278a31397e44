/**
 * Runs infra/prerequisites.sh — the one check (and, as root with apt-get, install) of what the lab
 * needs, shared with .ci/run — and reports its lines and outcome. The script is the source of truth:
 * this module only chooses what to ask for and relays its output.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from './paths.js';

export const PREREQUISITES_SCRIPT = join(REPO_ROOT, 'infra', 'prerequisites.sh');

export type Prerequisite = 'node' | 'java' | 'maven' | 'go' | 'postgres' | 'haproxy' | 'openssl';

/** `ok`: all there; `optional-missing`: only something optional is missing; `missing`: something required. */
export type PrerequisitesOutcome = 'ok' | 'optional-missing' | 'missing';

export interface PrerequisitesOptions {
  need: readonly Prerequisite[];
  /** Of `need`, what may be missing (reported, not fatal). */
  optional?: readonly Prerequisite[];
  /** Each line the script prints (progress, warnings, the commands to run). */
  onLine: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

/** Run the script with `--brief`; resolves with its outcome (exit 0 / 3 / other). */
export function checkPrerequisites(options: PrerequisitesOptions): Promise<PrerequisitesOutcome> {
  if (options.need.length === 0) return Promise.resolve('ok');
  const args = [PREREQUISITES_SCRIPT, '--brief', '--need', options.need.join(',')];
  const optional = (options.optional ?? []).filter((p) => options.need.includes(p));
  if (optional.length > 0) args.push('--optional', optional.join(','));
  const env = options.env ?? process.env;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, {
      // The Node running the lab is the one to check, whatever PATH says.
      env: { ...env, HOTHOT_NODE: process.execPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let open = 2;
    let exitCode: number | null | undefined;
    const finish = () => {
      if (open > 0 || exitCode === undefined) return;
      resolve(exitCode === 0 ? 'ok' : exitCode === 3 ? 'optional-missing' : 'missing');
    };
    for (const stream of [child.stdout, child.stderr]) {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', options.onLine);
      lines.on('close', () => {
        open -= 1;
        finish();
      });
    }
    child.on('error', (err) =>
      reject(new Error(`could not run ${PREREQUISITES_SCRIPT}: ${err.message}`, { cause: err })),
    );
    child.on('close', (code) => {
      exitCode = code;
      finish();
    });
  });
}
