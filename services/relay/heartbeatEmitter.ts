/**
 * Writes a heartbeat into the outbox every interval. Heartbeats travel the same outbox → Kafka →
 * apply path as data, so a peer's heartbeat age is the honest end-to-end replication lag even when
 * no data flows, and a stalled path shows as a growing age, never as zero.
 */
import type pg from 'pg';
import type { HybridLogicalClock } from '../../shared/domain/hlc.js';
import type { Logger } from '../../shared/logging/logger.js';
import { insertOutbox } from '../../shared/db/queries/outbox.js';
import type { HeartbeatEvent } from '../../shared/kafka/envelope.js';
import { heartbeatMessageKey } from '../../shared/kafka/topics.js';

export interface HeartbeatEmitterOptions {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly region: string;
  readonly intervalMs: number;
  readonly log: Logger;
  /** Called after a heartbeat is committed (wakes the relay). */
  readonly onWritten?: () => void;
}

export class HeartbeatEmitter {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly options: HeartbeatEmitterOptions) {}

  start(): void {
    if (this.timer || this.options.intervalMs <= 0) return;
    this.timer = setInterval(() => {
      if (this.inFlight) return; // the database is slow: skip a beat rather than pile up
      this.inFlight = this.beatOnce()
        .catch((err: unknown) => this.options.log.warn({ err }, 'heartbeat not written'))
        .finally(() => (this.inFlight = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Write one heartbeat now. */
  async beatOnce(): Promise<void> {
    const { clock, region } = this.options;
    const event: HeartbeatEvent = { v: 1, type: 'heartbeat', origin: region, hlc: clock.now(), sentAt: Date.now() };
    await insertOutbox(this.options.pool, heartbeatMessageKey(region), event);
    this.options.onWritten?.();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
