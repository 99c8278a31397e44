/**
 * Wait until this region has applied at least what a session token names from every origin, or
 * fail with a retryable error: a read with a token never answers with data older than the token.
 */
import type pg from 'pg';
import { AppError, BadRequestError } from '../../../shared/errors/appError.js';
import { appliedWatermarks } from '../../../shared/db/queries/peerPartitionProgress.js';
import type { SessionToken } from '../http/sessionToken.js';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_MS = 10;

export interface SessionDeps {
  readonly pool: pg.Pool;
  readonly region: string;
  /** The peer regions now (membership can change while the region runs). */
  readonly peerRegions: () => readonly string[];
  readonly sessionWaitMs: number;
}

export async function awaitSession(deps: SessionDeps, token: SessionToken | undefined): Promise<void> {
  if (token === undefined) return;
  const needed = Object.entries(token).filter(([origin]) => origin !== deps.region);
  for (const [origin] of needed) {
    if (!deps.peerRegions().includes(origin)) {
      throw new BadRequestError(
        'invalid_session',
        `the session token names region ${origin}, which ${deps.region} does not replicate from`,
      );
    }
  }
  if (needed.length === 0) return;
  const deadline = Date.now() + deps.sessionWaitMs;
  for (;;) {
    const marks = await appliedWatermarks(deps.pool);
    const behind = needed.filter(([origin, wall]) => (marks.get(origin) ?? -1) <= wall);
    if (behind.length === 0) return;
    if (Date.now() >= deadline) {
      throw new AppError(
        'session_not_caught_up',
        503,
        `region ${deps.region} has not yet applied everything this session saw from ${behind.map(([o]) => o).join(', ')} ` +
          `(waited ${deps.sessionWaitMs} ms); retry, or read from the region you wrote to`,
        {
          retryable: true,
          details: {
            behind: Object.fromEntries(
              behind.map(([o, wall]) => [o, { needed: wall, applied: marks.get(o) ?? null }]),
            ),
          },
        },
      );
    }
    await sleep(POLL_MS);
  }
}
