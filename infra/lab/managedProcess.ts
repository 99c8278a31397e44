/**
 * A lab process started by this process (the Kafka broker, Toxiproxy, HAProxy, a region): its
 * output appended to a log file, never a pipe, so that it outlives the CLI that started it; its exit
 * recorded; waited for until it serves, failing with the tail of what it wrote; stopped with a grace
 * period, then SIGKILL. Each of those classes owns one and keeps its own public API.
 *
 * A process known only by the pid recorded in lab.json is stopped with `terminatePid`
 * (processes.ts), which this uses too. PostgreSQL is started and stopped by `pg_ctl`, not spawned
 * here; it shares {@link errorWithLogTail}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeLogFile, fileSize, openLogFile, tailFile } from './logFiles.js';
import { indent, isPidAlive, signalPid, terminatePid } from './processes.js';
import { waitFor } from './waitFor.js';

/** Lines of a process's log quoted in an error: enough for a stack trace or a config complaint. */
const LOG_TAIL_LINES = 40;
const DEFAULT_READY_INTERVAL_MS = 100;

/** How a process ended, as Node reports it. */
export interface ProcessExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ManagedProcessOptions {
  /** What errors call it, e.g. `HAProxy`, `region us`. */
  readonly name: string;
  /** Receives stdout and stderr, appended to. */
  readonly logFile: string;
  /**
   * Run in its own session, not tied to this process: it survives this process and Ctrl-C in this
   * terminal does not reach it. @default false
   */
  readonly detached?: boolean;
}

export interface SpawnOptions {
  readonly cwd?: string;
  /** @default this process's environment */
  readonly env?: NodeJS.ProcessEnv;
  /** What the error names when there is no process, e.g. `java: is Java installed?`. @default the command */
  readonly what?: string;
}

export interface ReadyOptions {
  /** What is awaited, for the timeout error ("Toxiproxy to answer on …"). */
  readonly description: string;
  readonly timeoutMs: number;
  /** @default 100 */
  readonly intervalMs?: number;
}

export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  private readonly detached: boolean;
  private current: ChildProcess | undefined;
  private currentPid = 0;
  private lastExit: ProcessExit | undefined;
  private exitWaiters: Array<(exit: ProcessExit) => void> = [];
  /** Size of the log file when the current incarnation started (its own output begins there). */
  private logStart = 0;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    this.detached = options.detached ?? false;
  }

  /** Start `command args…` (a new incarnation) with stdout and stderr appended to the log file; returns its pid. */
  spawn(command: string, args: readonly string[], options: SpawnOptions = {}): number {
    this.logStart = fileSize(this.logFile);
    const fd = openLogFile(this.logFile);
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', fd, fd],
        detached: this.detached,
      });
    } finally {
      closeLogFile(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${options.what ?? command}`);
    this.current = child;
    this.currentPid = child.pid;
    this.lastExit = undefined;
    child.on('error', () => undefined);
    child.on('exit', (code, signal) => {
      if (this.current !== child) return;
      this.lastExit = { code, signal };
      const waiters = this.exitWaiters;
      this.exitWaiters = [];
      for (const w of waiters) w(this.lastExit);
    });
    if (this.detached) child.unref();
    return child.pid;
  }

  /** Pid of the current incarnation (0 before the first spawn). */
  get pid(): number {
    return this.currentPid;
  }

  /** The child process handle of the current incarnation (undefined before the first spawn). */
  get child(): ChildProcess | undefined {
    return this.current;
  }

  /** Offset in {@link logFile} where the current incarnation's output starts. */
  get logStartOffset(): number {
    return this.logStart;
  }

  /** How the current incarnation ended, if it has. */
  get exit(): ProcessExit | undefined {
    return this.lastExit;
  }

  /** Whether the current incarnation is alive (the pid guards the detached case, whose exit event may never come). */
  isRunning(): boolean {
    return this.lastExit === undefined && isPidAlive(this.currentPid);
  }

  /** Send `signal` to the current incarnation (SIGKILL to simulate a crash). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.currentPid > 0) signalPid(this.currentPid, signal);
  }

  /** Resolves when the current incarnation exits (at once if it has, or was never spawned). */
  waitForExit(): Promise<ProcessExit> {
    if (this.lastExit !== undefined || this.current === undefined) {
      return Promise.resolve(this.lastExit ?? { code: null, signal: null });
    }
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the exit is recorded. Idempotent. */
  async stop(graceMs: number): Promise<void> {
    if (this.current === undefined || this.lastExit !== undefined) return;
    const exited = this.waitForExit();
    await terminatePid(this.currentPid, { graceMs });
    // A referenced timer: a detached child is unref'd, so without it nothing would keep this
    // process's event loop alive until the exit event arrives.
    const keepAlive = setInterval(() => undefined, 1_000);
    await exited.finally(() => clearInterval(keepAlive));
  }

  /**
   * Poll `ready` until it says true (a probe that throws counts as not yet). Fails early when the process
   * exits first, and on failure (early or at the deadline) with the tail of what this incarnation
   * wrote; the process is left as it is (the caller stops it).
   */
  async waitUntilReady(ready: () => Promise<boolean>, options: ReadyOptions): Promise<void> {
    try {
      await waitFor(ready, {
        description: options.description,
        timeoutMs: options.timeoutMs,
        intervalMs: options.intervalMs ?? DEFAULT_READY_INTERVAL_MS,
        abortIf: () => {
          if (!this.isRunning())
            throw new Error(`${this.name} ${describeExit(this.lastExit)} before it was ready`);
        },
      });
    } catch (err) {
      throw await errorWithLogTail(errorMessage(err), err, {
        logFile: this.logFile,
        label: `${this.name} log`,
        fromOffset: this.logStart,
      });
    }
  }
}

/** `was killed by SIGKILL`, `exited with code 1`, or `exited` when the exit is not known yet. */
export function describeExit(exit: ProcessExit | undefined): string {
  if (exit === undefined) return 'exited';
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
}

/**
 * An error whose message is `message` followed by the last lines of `logFile` written since
 * `fromOffset` (what the process said about it), under `label` (`region us log /path:`).
 */
export async function errorWithLogTail(
  message: string,
  cause: unknown,
  log: { logFile: string; label: string; fromOffset?: number },
): Promise<Error> {
  const tail = await tailFile(log.logFile, LOG_TAIL_LINES, log.fromOffset ?? 0);
  return new Error(`${message}\n  ${log.label} ${log.logFile}:\n${indent(tail || '(empty)')}`, { cause });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
