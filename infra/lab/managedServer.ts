/**
 * A lab server that answers at a URL and is recorded in lab.json by its pid: Toxiproxy and the front
 * door (HAProxy). What they share on top of {@link ManagedProcess}: a start that leaves nothing
 * running when the server never serves, and a stop by pid, guarded by a marker in the pid's command
 * line (a pid reused by another program is left alone).
 */
import { ManagedProcess, type ReadyOptions } from './managedProcess.js';
import { terminatePid } from './processes.js';

/** Neither server holds state worth waiting for: SIGKILL follows SIGTERM soon. */
export const SERVER_STOP_GRACE_MS = 5_000;

/** What a server's lab.json entry holds at least. */
export interface ManagedServerInfo {
  pid: number;
  /** Base URL, e.g. `http://127.0.0.1:8283`. */
  url: string;
  logFile: string;
}

export abstract class ManagedServer<Info extends ManagedServerInfo> {
  protected readonly managed: ManagedProcess;

  /**
   * @param name what errors call it, e.g. `HAProxy`
   * @param marker what the pid's command line must contain for {@link stop} to signal it
   */
  protected constructor(
    readonly info: Info,
    name: string,
    detached: boolean,
    private readonly marker: string,
  ) {
    this.managed = new ManagedProcess({ name, logFile: info.logFile, detached });
  }

  /** Spawn `command args…` and wait until `ready` says so; stop it again when it does not. */
  protected async launch(
    command: string,
    args: readonly string[],
    ready: () => Promise<boolean>,
    options: ReadyOptions,
  ): Promise<void> {
    this.info.pid = this.managed.spawn(command, args);
    try {
      await this.managed.waitUntilReady(ready, options);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  get url(): string {
    return this.info.url;
  }

  get pid(): number {
    return this.info.pid;
  }

  isRunning(): boolean {
    return this.managed.isRunning();
  }

  /** SIGTERM, SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = SERVER_STOP_GRACE_MS): Promise<void> {
    await terminatePid(this.info.pid, { graceMs, marker: this.marker });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.managed.kill(signal);
  }
}
