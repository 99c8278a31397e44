/**
 * Child processes of the native lab: running a command to completion, telling whether a pid is alive,
 * and stopping a pid (SIGTERM, then SIGKILL after a grace period).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sleep } from './waitFor.js';

/** A command exited non-zero, was killed, or could not be started. Carries the tail of its output. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly output: string,
    options?: { cause?: unknown },
  ) {
    const how = signal !== null ? `was killed by ${signal}` : `exited with code ${String(exitCode)}`;
    const tail = lastLines(output, 30);
    super(`${command} ${how}${tail === '' ? '' : `:\n${indent(tail)}`}`, options);
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) and fail after this long. @default 120000 */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Run a command to completion; resolves with its output, rejects with {@link CommandError}. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const display = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let combined = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      combined += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      combined += d;
    });
    const timer = setTimeout(() => {
      combined += `\n[killed after ${options.timeoutMs ?? 120_000} ms]`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CommandError(display, null, null, err.message, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(display, code, signal, combined));
    });
  });
}

/**
 * Whether `pid` is a live process. A zombie (exited, not yet reaped — common for detached children
 * re-parented to a PID 1 that never reaps) counts as dead.
 */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: "pid (comm) state …"; comm may contain spaces and parentheses, so take the last ")".
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return true; // no procfs: trust kill(0)
  }
}

/** The command line of `pid` joined by spaces, or undefined when it is gone or unreadable. */
export function pidCommandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is alive and, when procfs can tell, its command line contains `marker`. Guards against
 * signalling an unrelated process that reused the pid of a lab component long gone.
 */
export function isPidRunning(pid: number, marker?: string): boolean {
  if (!isPidAlive(pid)) return false;
  if (marker === undefined) return true;
  const cmdline = pidCommandLine(pid);
  return cmdline === undefined || cmdline.includes(marker);
}

/** Wait until `pid` is gone; resolves true when it went within `timeoutMs`. */
export async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isPidAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

export type TerminateOutcome = 'not-running' | 'terminated' | 'killed';

/**
 * Stop `pid`: SIGTERM, wait up to `graceMs`, then SIGKILL. Skips a pid that is gone or, when `marker`
 * is given, no longer runs the expected program.
 */
export async function terminatePid(
  pid: number,
  options: { graceMs?: number; marker?: string } = {},
): Promise<TerminateOutcome> {
  if (!isPidRunning(pid, options.marker)) return 'not-running';
  if (!signalPid(pid, 'SIGTERM')) return 'not-running';
  if (await waitForPidExit(pid, options.graceMs ?? 10_000)) return 'terminated';
  signalPid(pid, 'SIGKILL');
  await waitForPidExit(pid, 10_000);
  return 'killed';
}

/** Send a signal; false when the process no longer exists. */
export function signalPid(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** The last `n` non-empty lines of `text`. */
export function lastLines(text: string, n: number): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-n).join('\n');
}

export function indent(text: string, prefix = '    '): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}
