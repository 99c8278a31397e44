/**
 * A lab server run as a child process (HAProxy, Toxiproxy): started with its output appended to a
 * log file, tracked until it exits, and waited for until it serves — or stopped, with the tail of
 * its log in the error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeLogFile, fileSize, openLogFile, tailFile } from './logFiles.js';
import { indent, isPidAlive } from './processes.js';
import { waitFor } from './waitFor.js';

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class LabChild {
  private child: ChildProcess | undefined;
  private exited: ChildExit | undefined;
  private logStart = 0;

  /**
   * @param name what the errors call it, e.g. `HAProxy`
   * @param detached run in its own session, not tied to this process (the lab)
   */
  constructor(
    readonly name: string,
    readonly logFile: string,
    private readonly detached: boolean,
  ) {}

  /** Start `binary args…` with stdout and stderr appended to the log file; returns its pid. */
  spawn(binary: string, args: readonly string[]): number {
    this.logStart = fileSize(this.logFile);
    const fd = openLogFile(this.logFile);
    let child: ChildProcess;
    try {
      child = spawn(binary, args, { stdio: ['ignore', fd, fd], detached: this.detached });
    } finally {
      closeLogFile(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    child.on('error', () => undefined);
    child.on('exit', (code, signal) => {
      if (this.child === child) this.exited = { code, signal };
    });
    if (this.detached) child.unref();
    this.child = child;
    this.exited = undefined;
    return child.pid;
  }

  /** Whether the process started last is alive (`pid` guards the detached case, where no exit event comes). */
  isRunning(pid: number): boolean {
    return this.exited === undefined && isPidAlive(pid);
  }

  /**
   * Wait until `ready` says so. If it never does, or the process exits first, run `stop` and throw
   * with the tail of what the process wrote since it was spawned.
   */
  async waitUntilReady(
    ready: () => Promise<boolean>,
    options: { description: string; timeoutMs: number; stop: () => Promise<void> },
  ): Promise<void> {
    try {
      await waitFor(ready, {
        description: options.description,
        timeoutMs: options.timeoutMs,
        intervalMs: 100,
        abortIf: () => {
          if (this.exited !== undefined)
            throw new Error(`${this.name} exited (${JSON.stringify(this.exited)})`);
        },
      });
    } catch (err) {
      await options.stop();
      const tail = await tailFile(this.logFile, 20, this.logStart);
      throw new Error(
        `${err instanceof Error ? err.message : String(err)}\n  log ${this.logFile}:\n${indent(tail || '(empty)')}`,
        { cause: err },
      );
    }
  }
}
