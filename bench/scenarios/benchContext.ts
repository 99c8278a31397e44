/** What every scenario gets: the lab, the mode, progress output and helpers to wait for quiet. */
import type { BenchLab, DatabaseName } from '../lab/benchLab.js';
import { sleep, waitFor } from '../../infra/lab/waitFor.js';
import { countRows } from '../measure/commitTimes.js';
import type { HttpRequestSpec } from '../load/openLoop.js';
import { itemValue } from '../load/payloads.js';

export interface BenchContext {
  readonly lab: BenchLab;
  readonly quick: boolean;
  /** Scratch directory (pgbench scripts and logs). */
  readonly workDir: string;
  readonly pgBinDir: string;
  readonly log: (message: string) => void;
}

/** A PUT of item `key` in `collection` with a ~90-byte value. */
export function putItem(collection: string, key: string | number, n = 0): HttpRequestSpec {
  return { method: 'PUT', path: `/v1/items/${collection}/${key}`, body: itemValue(n) };
}

export async function outboxRows(lab: BenchLab, db: 'us' | 'eu'): Promise<number> {
  const { rows } = await lab.db(db).query<{ n: string }>('SELECT count(*) AS n FROM outbox');
  return Number(rows[0]?.n ?? 0);
}

/** Wait until `target` holds as many rows of `collection` as `origin`; returns false on timeout. */
export async function waitForRows(
  lab: BenchLab,
  origin: DatabaseName,
  target: DatabaseName,
  collection: string,
  timeoutMs: number,
): Promise<boolean> {
  // Again until the origin's count holds still: requests an overloaded origin still had queued may
  // commit after the first count (two runs at 2,000/s showed ~65 of ~14,400 rows undelivered when
  // the lag was read; late or lost was not told apart then).
  const deadline = Date.now() + timeoutMs;
  let want = await countRows(lab.db(origin), collection);
  try {
    for (;;) {
      const expected = want;
      await waitFor(async () => (await countRows(lab.db(target), collection)) >= expected, {
        description: `${target} to hold the ${expected} rows of ${collection} that ${origin} has`,
        timeoutMs: Math.max(1, deadline - Date.now()),
        intervalMs: 100,
      });
      want = await countRows(lab.db(origin), collection);
      if (want === expected) return true;
    }
  } catch {
    return false;
  }
}

/**
 * Wait until hothot is quiet: both outboxes (nearly) empty — heartbeats come and go — and both
 * regions hold the same number of items. Returns the ms it took, or NaN on timeout.
 */
export async function waitForQuiet(lab: BenchLab, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  try {
    await waitFor(
      async () => {
        const [ou, oe, iu, ie] = await Promise.all([
          outboxRows(lab, 'us'),
          outboxRows(lab, 'eu'),
          lab.db('us').query<{ n: string }>('SELECT count(*) AS n FROM item'),
          lab.db('eu').query<{ n: string }>('SELECT count(*) AS n FROM item'),
        ]);
        return ou <= 2 && oe <= 2 && iu.rows[0]?.n === ie.rows[0]?.n;
      },
      { description: 'hothot to drain', timeoutMs, intervalMs: 200 },
    );
    return Date.now() - t0;
  } catch {
    return Number.NaN;
  }
}

/**
 * After an overloaded open-loop run, wait until the region has worked off the requests it had
 * queued (a client that gave up does not cancel them): three probe PUTs in a row answered within
 * `fastMs`. Returns the ms waited, or NaN on timeout.
 */
export async function waitForResponsive(
  lab: BenchLab,
  region: 'us' | 'eu',
  timeoutMs = 120_000,
  fastMs = 100,
): Promise<number> {
  const t0 = Date.now();
  let fast = 0;
  for (let i = 0; Date.now() - t0 < timeoutMs; i++) {
    const started = performance.now();
    try {
      const spec = putItem('settle', i);
      const res = await fetch(`${lab.region(region).url}${spec.path}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: lab.authorization },
        body: spec.body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      fast = res.ok && performance.now() - started < fastMs ? fast + 1 : 0;
    } catch {
      fast = 0;
    }
    if (fast >= 3) return Date.now() - t0;
    await sleep(fast > 0 ? 50 : 250);
  }
  return Number.NaN;
}
