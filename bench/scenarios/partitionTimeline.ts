/**
 * #7 Partition timeline: both regions take open-loop writes at a fixed rate; `eu`'s broker link is
 * cut, then healed, and the run goes on until everything drained. Per second: acknowledged writes
 * per region, outbox backlog per region, and replication lag per direction.
 *
 * Lag at time T (per direction) = age of the oldest write committed in the origin by T that is not
 * yet committed in the target at T (0 when none): computed afterwards from commit timestamps, so it
 * grows through the cut and falls as the backlog drains. The regions' own view (`/v1/status` peer
 * heartbeat age) is sampled alongside.
 */
import { openLoop, type OpenLoopResult } from '../load/openLoop.js';
import { commitPairs, commitTimes, type CommitPair } from '../measure/commitTimes.js';
import { round } from '../measure/stats.js';
import type { BenchLab, RegionName } from '../lab/benchLab.js';
import { sleep } from '../../infra/lab/waitFor.js';
import { outboxRows, putItem, type BenchContext } from './benchContext.js';

export interface TimelineSecond {
  readonly t: number;
  readonly writesUs: number;
  readonly writesEu: number;
  readonly failedUs: number;
  readonly failedEu: number;
  readonly outboxUs: number | null;
  readonly outboxEu: number | null;
  /** Oldest unreplicated write's age, ms: us → eu and eu → us. */
  readonly lagUsToEuMs: number;
  readonly lagEuToUsMs: number;
  /** Heartbeat age each region reports for its peer (eu's view of us, us's view of eu), ms. */
  readonly statusLagUsToEuMs: number | null;
  readonly statusLagEuToUsMs: number | null;
}

export interface TimelineResult {
  readonly ratePerRegion: number;
  readonly cutAtS: number;
  readonly healAtS: number;
  readonly writesEndS: number;
  /** Seconds from heal until both directions had no unreplicated write (NaN if never). */
  readonly drainAfterHealS: number;
  readonly failedWrites: number;
  readonly seconds: readonly TimelineSecond[];
}

const TL = { us: 'tl-us', eu: 'tl-eu' } as const;

export async function partitionTimeline(ctx: BenchContext): Promise<TimelineResult> {
  const { lab, quick, log } = ctx;
  const rate = quick ? 100 : 200;
  const [preS, cutS, postS, drainCapS] = quick ? [3, 6, 6, 20] : [10, 20, 20, 30];
  const writesEndS = preS + cutS + postS;
  const t0 = Date.now();
  const load = (region: RegionName) =>
    openLoop({
      baseUrl: lab.region(region).url,
      authorization: lab.authorization,
      rate,
      durationMs: writesEndS * 1000,
      connections: 16,
      seed: region === 'us' ? 1 : 2,
      request: (i) => putItem(TL[region], i, i),
    });
  const loads = Promise.all([load('us'), load('eu')]);

  const samples = new Map<
    number,
    { outboxUs: number | null; outboxEu: number | null; statusUs: number | null; statusEu: number | null }
  >();
  let cutAtS = Number.NaN;
  let healAtS = Number.NaN;
  let loadsDone = false;
  void loads.then(
    () => (loadsDone = true),
    () => (loadsDone = true),
  );
  try {
    for (let s = 1; ; s++) {
      await sleep(Math.max(0, t0 + s * 1000 - Date.now()));
      const [outboxUs, outboxEu, statusUs, statusEu] = await Promise.all([
        outboxRows(lab, 'us').catch(() => null),
        outboxRows(lab, 'eu').catch(() => null),
        peerLag(lab, 'eu'), // eu's view of us: us → eu
        peerLag(lab, 'us'),
      ]);
      samples.set(s, { outboxUs, outboxEu, statusUs, statusEu });
      if (s === preS) {
        await lab.cut('eu');
        cutAtS = (Date.now() - t0) / 1000;
        log(`t=${s}s: eu's broker link cut`);
      } else if (s === preS + cutS) {
        await lab.heal('eu');
        healAtS = (Date.now() - t0) / 1000;
        log(`t=${s}s: healed (outbox backlog eu ${outboxEu ?? '?'})`);
      }
      if (loadsDone && s >= writesEndS) {
        const quiet = (outboxUs ?? 1e9) <= 2 && (outboxEu ?? 1e9) <= 2 && (await replicated(lab));
        if (quiet || s >= writesEndS + drainCapS) break;
      }
    }
  } finally {
    if (lab.isCut('eu')) await lab.heal('eu');
  }
  const [us, eu] = await loads;
  const endS = Math.max(...samples.keys());

  const [usUs, usEu, euEu, euUs] = await Promise.all([
    commitTimes(lab.db('us'), TL.us),
    commitTimes(lab.db('eu'), TL.us),
    commitTimes(lab.db('eu'), TL.eu),
    commitTimes(lab.db('us'), TL.eu),
  ]);
  const usToEu = commitPairs(usUs, usEu);
  const euToUs = commitPairs(euEu, euUs);
  const unapplied = (pairs: CommitPair[], missing: number[]) => (T: number) => {
    let oldest = Number.POSITIVE_INFINITY;
    for (const p of pairs) if (p.origin <= T && p.target > T && p.origin < oldest) oldest = p.origin;
    for (const o of missing) if (o <= T && o < oldest) oldest = o;
    return Number.isFinite(oldest) ? T - oldest : 0;
  };
  const missingOf = (origin: Map<string, number>, target: Map<string, number>) =>
    [...origin.entries()].filter(([k]) => !target.has(k)).map(([, t]) => t);
  const lagUsToEu = unapplied(usToEu, missingOf(usUs, usEu));
  const lagEuToUs = unapplied(euToUs, missingOf(euEu, euUs));

  const seconds: TimelineSecond[] = [];
  let drainedAt = Number.NaN;
  for (let s = 1; s <= endS; s++) {
    const T = t0 + s * 1000;
    const sample = samples.get(s);
    const row: TimelineSecond = {
      t: s,
      writesUs: perSecond(us, s),
      writesEu: perSecond(eu, s),
      failedUs: us.failedPerSecond[s - 1] ?? 0,
      failedEu: eu.failedPerSecond[s - 1] ?? 0,
      outboxUs: sample?.outboxUs ?? null,
      outboxEu: sample?.outboxEu ?? null,
      lagUsToEuMs: round(lagUsToEu(T)),
      lagEuToUsMs: round(lagEuToUs(T)),
      statusLagUsToEuMs: sample?.statusUs ?? null,
      statusLagEuToUsMs: sample?.statusEu ?? null,
    };
    seconds.push(row);
    if (
      Number.isNaN(drainedAt) &&
      s > healAtS &&
      row.lagUsToEuMs < 1000 &&
      row.lagEuToUsMs < 1000 &&
      (row.outboxEu ?? 0) <= 2
    )
      drainedAt = s;
  }
  return {
    ratePerRegion: rate,
    cutAtS: round(cutAtS),
    healAtS: round(healAtS),
    writesEndS,
    drainAfterHealS: round(drainedAt - healAtS),
    failedWrites: us.failed + eu.failed,
    seconds,
  };
}

function perSecond(r: OpenLoopResult, s: number): number {
  return r.okPerSecond[s - 1] ?? 0;
}

/** Heartbeat age that `region` reports for its peer, or null. */
async function peerLag(lab: BenchLab, region: RegionName): Promise<number | null> {
  try {
    const res = await fetch(`${lab.region(region).url}/v1/status`, {
      headers: { authorization: lab.authorization },
      signal: AbortSignal.timeout(900),
    });
    const body = (await res.json()) as { peers: { lagMs: number | null }[] };
    return body.peers[0]?.lagMs ?? null;
  } catch {
    return null;
  }
}

async function replicated(lab: BenchLab): Promise<boolean> {
  const count = async (db: 'us' | 'eu', c: string) => {
    const { rows } = await lab
      .db(db)
      .query<{ n: string }>('SELECT count(*) AS n FROM item WHERE collection = $1', [c]);
    return Number(rows[0]?.n ?? 0);
  };
  const [a, b, c, d] = await Promise.all([
    count('us', TL.us),
    count('eu', TL.us),
    count('eu', TL.eu),
    count('us', TL.eu),
  ]);
  return a === b && c === d;
}
