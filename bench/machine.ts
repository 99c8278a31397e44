/** The machine and software versions a run measured on (recorded in every report). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../infra/lab/paths.js';

export interface MachineInfo {
  readonly hostname: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly postgres: string;
  readonly pgbench: string;
  readonly kafka: string;
  readonly java: string;
  readonly kafkajs: string;
  readonly autocannon: string;
  readonly gitCommit: string;
  readonly gitDirty: boolean;
  /** 1-minute load average when the run started (others share this machine). */
  readonly loadAverageAtStart: number;
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stderr?: string };
    return (e.stderr ?? '').trim() || 'unknown';
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(pgBinDir: string, kafkaVersion: string): MachineInfo {
  const cpus = os.cpus();
  const java = tryRun('java', ['-version']).split('\n')[0] ?? 'unknown';
  return {
    hostname: os.hostname(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} (${tryRun('sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"'])})`,
    node: process.version,
    postgres: tryRun(join(pgBinDir, 'postgres'), ['--version']),
    pgbench: tryRun(join(pgBinDir, 'pgbench'), ['--version']),
    kafka: kafkaVersion,
    java,
    kafkajs: packageVersion('kafkajs'),
    autocannon: packageVersion('autocannon'),
    // A run from an exported snapshot (no .git) names its commit in BENCH_SOURCE_COMMIT.
    gitCommit: process.env.BENCH_SOURCE_COMMIT ?? tryRun('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']),
    gitDirty:
      process.env.BENCH_SOURCE_COMMIT === undefined &&
      tryRun('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'services', 'shared']) !== '',
    loadAverageAtStart: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}
