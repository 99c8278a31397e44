/**
 * Which process of a region is its leader: the one holding a PostgreSQL session advisory lock on the
 * region's database. Exactly one process of a region runs the singletons — the outbox relay with its
 * heartbeats, maintenance and anti-entropy — and the others stand by, trying for the lock every
 * {@link LEADER_RETRY_MS}: when the leader exits or loses its database connection, PostgreSQL releases
 * the lock with its session and a standby takes over within that period (plus its connection time).
 *
 * The lock lives on a connection of its own, outside the pool, so that no pooled query can release it;
 * a failed connection means leadership is lost at once (`lost`), before PostgreSQL itself notices.
 *
 * Preference: a process made to lead (a region's relay worker, which serves no requests, so that the
 * relay has an event loop of its own) holds a second advisory lock, the *preferred* mark, for as long as
 * it lives. A process leads only while it holds the mark or no process does: a standby without it does
 * not try for the leader lock while the mark is held, and a leader without it steps down (stops its
 * singletons, then releases the lock) when a preferred process appears, which takes over at its next
 * try ({@link PREFERRED_RETRY_MS}). When the preferred process dies, PostgreSQL releases both locks and
 * any standby takes over as before.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from '../../shared/logging/logger.js';
import { LEADER_LOCK_KEY } from '../../shared/db/queries/pgStatActivity.js';

/** How often a standby tries for the lock (and a leader that lost its connection reconnects). */
export const LEADER_RETRY_MS = 500;

/** How often a preferred process that holds the mark tries for the lock while another leads. */
export const PREFERRED_RETRY_MS = 100;

/** The key of the preferred mark: held by the process that should lead (a relay worker). */
const PREFERRED_LOCK_KEY = 'hothot-region-leader-preferred';

export interface LeadershipEvents {
  acquired: [];
  lost: [reason: string];
}

export interface LeadershipOptions {
  /** Connection settings of the region's database (the pool's). */
  readonly connection: pg.ClientConfig;
  readonly log: Logger;
  /** @default LEADER_RETRY_MS */
  readonly retryMs?: number;
  /** Whether this process should lead whenever it is up (holds the preferred mark). @default false */
  readonly preferred?: boolean;
  /**
   * Stop what the leader runs, before a leader that gives way to a preferred process releases the
   * lock (so that two relays never run at once). Without it the lock is released at once.
   */
  readonly stepDown?: () => Promise<void>;
}

export interface LeadershipSnapshot {
  readonly leader: boolean;
  /** When this process became leader, or null. */
  readonly since: string | null;
  /** Times this process became leader since it started. */
  readonly terms: number;
}

export class Leadership extends EventEmitter<LeadershipEvents> {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private leaderSince: number | undefined;
  private terms = 0;
  private attempt: Promise<void> | undefined;
  /** Whether this process's leadership connection holds the preferred mark. */
  private holdsMark = false;

  constructor(private readonly options: LeadershipOptions) {
    super();
  }

  get isLeader(): boolean {
    return this.leaderSince !== undefined;
  }

  snapshot(): LeadershipSnapshot {
    return {
      leader: this.isLeader,
      since: this.leaderSince === undefined ? null : new Date(this.leaderSince).toISOString(),
      terms: this.terms,
    };
  }

  /** Try for the lock now, then every retry period until this process holds it. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.tryNow();
  }

  /** Give up leadership (the connection closes, the lock with it) and stop trying. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.attempt;
    await this.release('stopped');
  }

  private tryNow(): void {
    if (this.stopped || this.attempt !== undefined) return;
    this.attempt = this.tryForLock()
      .catch((err: unknown) => this.options.log.warn({ err }, 'could not try for the region leader lock'))
      .finally(() => {
        this.attempt = undefined;
        this.schedule();
      });
  }

  /**
   * The next try: a standby tries for the lock; a leader without the mark checks whether a preferred
   * process appeared. Only a leader holding the mark (or the only one that can) needs no timer.
   */
  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped || (this.isLeader && this.holdsMark)) return;
    const retryMs = this.options.retryMs ?? LEADER_RETRY_MS;
    const ms = this.holdsMark ? Math.min(retryMs, PREFERRED_RETRY_MS) : retryMs;
    this.timer = setTimeout(() => this.tryNow(), ms);
    this.timer.unref();
  }

  private async tryForLock(): Promise<void> {
    if (this.client === undefined) {
      const client = new pg.Client({ ...this.options.connection, pipeline: false });
      // A lost connection is lost leadership; a new client is made on the next try.
      client.on('error', (err) => void this.release(`connection failed: ${err.message}`, client));
      await client.connect();
      this.client = client;
      this.holdsMark = false;
    }
    const client = this.client;
    const preferred = this.options.preferred === true;
    let locked: boolean;
    if (!preferred && !this.isLeader) {
      // One round trip: the mark free (taken and given back at once), then the leader lock. CASE,
      // not AND: PostgreSQL does not promise the order in which AND evaluates its operands. null: a
      // preferred process holds the mark.
      const { rows } = await client.query<{ locked: boolean | null }>(
        `SELECT CASE WHEN pg_try_advisory_lock(hashtextextended($1, 0))
                THEN CASE WHEN pg_advisory_unlock(hashtextextended($1, 0))
                     THEN pg_try_advisory_lock(hashtextextended($2, 0)) ELSE false END
                END AS locked`,
        [PREFERRED_LOCK_KEY, LEADER_LOCK_KEY],
      );
      locked = rows[0]?.locked === true;
    } else {
      // Whether another process holds the mark: a preferred process takes it (once per connection:
      // advisory locks stack), a leader without it tries for it and gives it back at once.
      let preferredElsewhere = false;
      if (!this.holdsMark) {
        const { rows } = await client.query<{ got: boolean }>(
          preferred
            ? 'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got'
            : `SELECT CASE WHEN pg_try_advisory_lock(hashtextextended($1, 0))
                      THEN pg_advisory_unlock(hashtextextended($1, 0)) ELSE false END AS got`,
          [PREFERRED_LOCK_KEY],
        );
        preferredElsewhere = rows[0]?.got !== true;
        if (preferred && !preferredElsewhere) this.holdsMark = true;
      }
      if (this.stopped || client !== this.client) return;
      if (this.isLeader) {
        if (preferredElsewhere) await this.giveWay(client);
        return;
      }
      if (preferredElsewhere) return;
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
        [LEADER_LOCK_KEY],
      );
      locked = rows[0]?.locked === true;
    }
    if (!locked || this.stopped || client !== this.client) return;
    this.leaderSince = Date.now();
    this.terms += 1;
    this.options.log.info(
      { pid: process.pid, preferred: this.holdsMark },
      'this process leads the region: relay, maintenance, anti-entropy',
    );
    this.emit('acquired');
  }

  /** Leave the lead to the preferred process that appeared: stop the singletons, then unlock. */
  private async giveWay(client: pg.Client): Promise<void> {
    this.options.log.info('a preferred process (a relay worker) is up: this process gives the lead to it');
    this.leaderSince = undefined;
    this.emit('lost', 'a preferred process is up');
    await this.options.stepDown?.();
    if (client !== this.client) return;
    await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [LEADER_LOCK_KEY]);
  }

  private async release(reason: string, client = this.client): Promise<void> {
    if (client === undefined || client !== this.client) return;
    this.client = undefined;
    this.holdsMark = false;
    const wasLeader = this.isLeader;
    this.leaderSince = undefined;
    await client.end().catch(() => undefined);
    if (wasLeader) {
      this.options.log.warn({ reason }, 'this process no longer leads the region');
      this.emit('lost', reason);
    }
    if (!this.stopped) this.schedule();
  }
}
