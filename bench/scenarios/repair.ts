/**
 * Digest anti-entropy (issue 11; docs/anti-entropy.md): write N items, wait until both regions are
 * digest-equal, then damage 100 random rows directly in eu's PostgreSQL — half of them changed by
 * hand (value replaced, version kept), half deleted — and measure:
 * - detection: damage → the first bucket counted divergent by either region (`/v1/status`
 *   antiEntropy.bucketsDivergent grows);
 * - repair: damage → both regions digest-equal again with every damaged row back as in us;
 * - keys republished by both regions over that time (`antiEntropy.keysRepublished`).
 * Targets: detected ≤ 30 s, repaired ≤ 60 s, republished ≤ 2 × damaged. Sampled every half second
 * from the damage until the repair, for the report's chart: damaged rows not yet as in us, buckets
 * counted divergent and keys republished since the damage.
 */
import { closedLoop } from '../load/closedLoop.js';
import { round } from '../measure/stats.js';
import { seededRandom } from '../../infra/lab/seededRandom.js';
import { sleep, waitFor } from '../../infra/lab/waitFor.js';
import type { BenchLab } from '../lab/benchLab.js';
import { putItem, waitForQuiet, type BenchContext } from './benchContext.js';

export const REPAIR_COLLECTION = 'repair';
export const REPAIR_DETECT_TARGET_S = 30;
export const REPAIR_TARGET_S = 60;

export interface RepairResult {
  readonly items: number;
  readonly damaged: number;
  readonly changed: number;
  readonly deleted: number;
  readonly seed: number;
  /** Damage → first divergent bucket, s (NaN: not detected in time). */
  readonly detectS: number;
  /** Damage → digest-equal with every damaged row restored, s (NaN: not repaired in time). */
  readonly repairS: number;
  /** Versions republished by both regions between the damage and the repair. */
  readonly keysRepublished: number;
  readonly republishedPerDamaged: number;
  readonly met: { readonly detect: boolean; readonly repair: boolean; readonly republished: boolean };
  /** What the regions said every {@link SAMPLE_MS} from the damage until the repair (or the deadline). */
  readonly timeline: readonly RepairSample[];
}

/** One sample of the repair's progress; counts are since the damage, over both regions. */
export interface RepairSample {
  /** Seconds since the damage. */
  readonly t: number;
  /** Damaged rows in eu not (yet) as in us: changed, or missing. */
  readonly damagedLeft: number;
  /** Buckets the regions counted divergent (`antiEntropy.bucketsDivergent`), us and eu. */
  readonly bucketsDivergent: number;
  /** Keys the regions republished (`antiEntropy.keysRepublished`), us and eu. */
  readonly keysRepublished: number;
}

const SAMPLE_MS = 500;

interface AntiEntropyStatus {
  readonly bucketsDivergent: number;
  readonly keysRepublished: number;
}

async function antiEntropyOf(lab: BenchLab, region: 'us' | 'eu'): Promise<AntiEntropyStatus> {
  const res = await fetch(`${lab.region(region).url}/v1/status`, {
    headers: { authorization: lab.authorization },
  });
  const body = (await res.json()) as { antiEntropy?: AntiEntropyStatus | null };
  if (body.antiEntropy === null || body.antiEntropy === undefined)
    throw new Error(`${region} reports no antiEntropy in /v1/status`);
  return body.antiEntropy;
}

async function digestOf(lab: BenchLab, region: 'us' | 'eu'): Promise<string> {
  const res = await fetch(`${lab.region(region).url}/v1/digest`, {
    headers: { authorization: lab.authorization },
  });
  return ((await res.json()) as { digest: string }).digest;
}

/** How many of `keys` eu does not hold as us does (a changed row, or a missing one). */
async function damagedLeft(lab: BenchLab, keys: readonly string[]): Promise<number> {
  const sql = `SELECT key, concat_ws('|', hlc_wall, hlc_logical, origin, vv::text, value::text) AS row
                 FROM item WHERE collection = $1 AND key = ANY($2)`;
  const [a, b] = await Promise.all(
    (['us', 'eu'] as const).map(async (r) => {
      const { rows } = await lab.db(r).query<{ key: string; row: string }>(sql, [REPAIR_COLLECTION, keys]);
      return new Map(rows.map((x) => [x.key, x.row]));
    }),
  );
  return keys.filter((k) => a!.get(k) !== b!.get(k)).length;
}

export async function repair(ctx: BenchContext): Promise<RepairResult> {
  const { lab, quick, log } = ctx;
  const items = quick ? 5_000 : 50_000;
  const damagedCount = 100;
  const seed = Number(process.env.HOTHOT_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);

  log(`writing ${items} items into us (seed=${seed})`);
  const written = await closedLoop({
    baseUrl: lab.region('us').url,
    authorization: lab.authorization,
    connections: 32,
    amount: items,
    maxDurationS: quick ? 60 : 240,
    request: (i) => putItem(REPAIR_COLLECTION, i, i),
  });
  log(`wrote ${written.ok} items; waiting until both regions are quiet and digest-equal`);
  await waitForQuiet(lab, 300_000);
  await waitFor(async () => (await digestOf(lab, 'us')) === (await digestOf(lab, 'eu')), {
    description: 'us and eu to be digest-equal before the damage',
    timeoutMs: 120_000,
    intervalMs: 500,
  });

  const { rows } = await lab
    .db('eu')
    .query<{ key: string }>(`SELECT key FROM item WHERE collection = $1 AND NOT deleted ORDER BY key`, [
      REPAIR_COLLECTION,
    ]);
  const pool = rows.map((r) => r.key);
  const keys: string[] = [];
  while (keys.length < Math.min(damagedCount, pool.length))
    keys.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!);
  const changed = keys.slice(0, Math.ceil(keys.length / 2));
  const deleted = keys.slice(changed.length);

  const before = await Promise.all([antiEntropyOf(lab, 'us'), antiEntropyOf(lab, 'eu')]);
  const damagedAt = Date.now();
  await lab
    .db('eu')
    .query(
      `UPDATE item SET value = jsonb_build_object('damaged', true) WHERE collection = $1 AND key = ANY($2)`,
      [REPAIR_COLLECTION, changed],
    );
  await lab
    .db('eu')
    .query(`DELETE FROM item WHERE collection = $1 AND key = ANY($2)`, [REPAIR_COLLECTION, deleted]);
  log(
    `damaged ${keys.length} rows in eu's PostgreSQL (${changed.length} changed, ${deleted.length} deleted)`,
  );

  const sinceDamage = async (): Promise<Omit<RepairSample, 't' | 'damagedLeft'>> => {
    const now = await Promise.all([antiEntropyOf(lab, 'us'), antiEntropyOf(lab, 'eu')]);
    return {
      bucketsDivergent: now.reduce((n, x, i) => n + x.bucketsDivergent - before[i]!.bucketsDivergent, 0),
      keysRepublished: now.reduce((n, x, i) => n + x.keysRepublished - before[i]!.keysRepublished, 0),
    };
  };
  const timeline: RepairSample[] = [];
  const sample = async () => {
    const t = (Date.now() - damagedAt) / 1000;
    try {
      const [counts, left] = await Promise.all([sinceDamage(), damagedLeft(lab, keys)]);
      timeline.push({ t: round(t), damagedLeft: left, ...counts });
    } catch {
      // A sample missed (the chart has a gap); the waits below report a region that stopped answering.
    }
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sample();
      await sleep(SAMPLE_MS);
    }
  })();

  let detectS = Number.NaN;
  let repairS = Number.NaN;
  try {
    await waitFor(
      async () => {
        const now = await Promise.all([antiEntropyOf(lab, 'us'), antiEntropyOf(lab, 'eu')]);
        return now.some((s, i) => s.bucketsDivergent > before[i]!.bucketsDivergent);
      },
      {
        description: 'the damage to be detected',
        timeoutMs: 2 * REPAIR_DETECT_TARGET_S * 1000,
        intervalMs: 100,
      },
    );
    detectS = (Date.now() - damagedAt) / 1000;
    log(`detected after ${detectS.toFixed(1)} s`);
    await waitFor(
      async () =>
        (await digestOf(lab, 'us')) === (await digestOf(lab, 'eu')) && (await damagedLeft(lab, keys)) === 0,
      { description: 'eu to be repaired', timeoutMs: 2 * REPAIR_TARGET_S * 1000, intervalMs: 200 },
    );
    repairS = (Date.now() - damagedAt) / 1000;
    log(`repaired after ${repairS.toFixed(1)} s`);
  } catch (err) {
    log(`not repaired: ${(err as Error).message}`);
  } finally {
    sampling = false;
    await sampler;
  }
  const after = await Promise.all([antiEntropyOf(lab, 'us'), antiEntropyOf(lab, 'eu')]);
  // The state at the end, repaired or not, and (for the chart) a second and a half of it.
  for (let i = 0; i < 4; i++) {
    if (i > 0) await sleep(SAMPLE_MS);
    await sample();
  }
  const keysRepublished = after.reduce((n, s, i) => n + s.keysRepublished - before[i]!.keysRepublished, 0);
  const republishedPerDamaged = keysRepublished / keys.length;
  log(
    `keys republished: ${keysRepublished} for ${keys.length} damaged (${republishedPerDamaged.toFixed(2)}×)`,
  );
  return {
    items: written.ok,
    damaged: keys.length,
    changed: changed.length,
    deleted: deleted.length,
    seed,
    detectS: round(detectS),
    repairS: round(repairS),
    keysRepublished,
    republishedPerDamaged: round(republishedPerDamaged),
    timeline,
    met: {
      detect: detectS <= REPAIR_DETECT_TARGET_S,
      repair: repairS <= REPAIR_TARGET_S,
      republished: republishedPerDamaged <= 2,
    },
  };
}
