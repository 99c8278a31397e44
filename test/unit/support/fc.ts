/**
 * One fixed way to seed every randomized unit test.
 *
 * The seed comes from `FC_SEED` (or `HOTHOT_SEED`), else a fresh random one; each test file logs
 * the seed it used once, so any run — including a failing one in CI — can be replayed exactly:
 *
 *     FC_SEED=<seed> npx vitest run test/<unit|integration>/<file> --project <unit|integration>
 *
 * `FC_NUM_RUNS` overrides the number of runs of every property (e.g. a long soak run, which also
 * lifts the per-test timeout); replaying a failure needs the same value as the failing run (none
 * when it was not set). On failure fast-check's own error also reports the seed and the path of
 * the shrunk counterexample.
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Parameters as FcParameters } from 'fast-check';
import { vi } from 'vitest';

function readSeed(): number {
  const raw = process.env.FC_SEED ?? process.env.HOTHOT_SEED;
  if (raw === undefined || raw.trim() === '') return (Math.random() * 0x1_0000_0000) | 0;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed))
    throw new Error(`FC_SEED/HOTHOT_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return seed | 0;
}

function readNumRunsOverride(): number | undefined {
  const raw = process.env.FC_NUM_RUNS;
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`FC_NUM_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

export interface SeededRuns {
  readonly seed: number;
  /** fast-check parameters for one property: this file's seed and `numRuns` (unless overridden). */
  params<T = unknown>(numRuns: number): FcParameters<T>;
}

/** Call once at the top of a test file with `import.meta.url`; logs the seed. */
export function seeded(moduleUrl: string): SeededRuns {
  const seed = readSeed();
  const override = readNumRunsOverride();
  const file = relative(process.cwd(), fileURLToPath(moduleUrl));
  const project = file.startsWith('test/unit/') ? 'unit' : 'integration';
  // A soak run (FC_NUM_RUNS) takes as long as it takes; the default 5 s per test is for normal runs.
  if (override !== undefined) vi.setConfig({ testTimeout: 3_600_000 });
  console.log(
    `[fast-check] ${file}: seed=${seed}${override === undefined ? '' : ` numRuns=${override}`} ` +
      `(replay: FC_SEED=${seed} npx vitest run ${file} --project ${project})`,
  );
  return {
    seed,
    params: <T>(numRuns: number): FcParameters<T> => ({ seed, numRuns: override ?? numRuns }),
  };
}
