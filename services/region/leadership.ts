/**
 * Which process of a region is its leader: the one holding a PostgreSQL session advisory lock on the
 * region's database. Exactly one process of a region runs the singletons — the outbox relay with its
 * heartbeats, maintenance and anti-entropy — and the others stand by, trying for the lock every
 * {@link LEADER_RETRY_MS}: when the leader exits or loses its database connection, PostgreSQL releases
 * the lock with its session and a standby takes over within that period (plus its connection time).
 *
 * The lock lives on a connection of its own, outside the pool, so that no pooled query can release it;
 * a failed connection means leadership is lost at once (`lost`), before PostgreSQL itself notices.
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from '../../shared/logging/logger.js';

/** How often a standby tries for the lock (and a leader that lost its connection reconnects). */
export const LEADER_RETRY_MS = 500;

/** The advisory lock key (one per database: one region per database). */
const LEADER_LOCK_KEY = 'hothot-region-leader';

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
    if (this.stopped || this.isLeader) return;
    this.attempt = this.tryForLock()
      .catch((err: unknown) => this.options.log.warn({ err }, 'could not try for the region leader lock'))
      .finally(() => {
        this.attempt = undefined;
        if (!this.stopped && !this.isLeader) {
          this.timer = setTimeout(() => this.tryNow(), this.options.retryMs ?? LEADER_RETRY_MS);
          this.timer.unref();
        }
      });
  }

  private async tryForLock(): Promise<void> {
    if (this.client === undefined) {
      const client = new pg.Client({ ...this.options.connection, pipeline: false });
      // A lost connection is lost leadership; a new client is made on the next try.
      client.on('error', (err) => void this.release(`connection failed: ${err.message}`, client));
      await client.connect();
      this.client = client;
    }
    const { rows } = await this.client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked',
      [LEADER_LOCK_KEY],
    );
    if (rows[0]?.locked !== true || this.stopped) return;
    this.leaderSince = Date.now();
    this.terms += 1;
    this.options.log.info(
      { pid: process.pid },
      'this process leads the region: relay, maintenance, anti-entropy',
    );
    this.emit('acquired');
  }

  private async release(reason: string, client = this.client): Promise<void> {
    if (client === undefined || client !== this.client) return;
    this.client = undefined;
    const wasLeader = this.isLeader;
    this.leaderSince = undefined;
    await client.end().catch(() => undefined);
    if (wasLeader) {
      this.options.log.warn({ reason }, 'this process no longer leads the region');
      this.emit('lost', reason);
    }
    if (!this.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.tryNow(), this.options.retryMs ?? LEADER_RETRY_MS);
      this.timer.unref();
    }
  }
}
