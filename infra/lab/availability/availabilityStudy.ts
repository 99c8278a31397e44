/**
 * The availability study: for each N, a lab of its own with N regions and the front door; for each P,
 * one measured point (availabilityPoint.ts); then the lab is taken down. `hothot lab availability` and
 * `npm run bench -- --only availability` run it.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPILED_REGION_MAIN, buildCompiledRegion } from '../compiledRegion.js';
import { Lab } from '../lab.js';
import { measureAvailabilityPoint, type AvailabilityPoint } from './availabilityPoint.js';
import type { AvailabilityStudy } from './availabilityReport.js';

/** Region ids by count: N = 2 is us, eu; N = 3 adds ap; … */
export const STUDY_REGIONS = ['us', 'eu', 'ap', 'sa', 'af'] as const;

export interface AvailabilityStudyOptions {
  readonly ns: readonly number[];
  readonly ps: readonly number[];
  readonly durationMs: number;
  readonly seed: number;
  readonly quick?: boolean;
  readonly writesPerS?: number;
  readonly readsPerS?: number;
  readonly outageMs?: number;
  /**
   * Run the region processes from the compiled build (`dist/`, built first), as deployed and as the
   * bench does: a restarted region is ready sooner than through tsx. @default true
   */
  readonly compiled?: boolean;
  /** Keep each lab's directory (logs) instead of deleting it. */
  readonly keep?: boolean;
  readonly log: (message: string) => void;
}

export async function runAvailabilityStudy(options: AvailabilityStudyOptions): Promise<AvailabilityStudy> {
  const started = new Date();
  const writesPerS = options.writesPerS ?? 20;
  const readsPerS = options.readsPerS ?? 20;
  const points: AvailabilityPoint[] = [];
  let index = 0;
  const compiled = options.compiled ?? true;
  if (compiled) {
    const t = Date.now();
    options.log('compiling the region process (npm run build → dist/)');
    await buildCompiledRegion();
    options.log(`compiled in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  for (const n of options.ns) {
    if (!(n >= 1 && n <= STUDY_REGIONS.length)) throw new Error(`N must be 1 to ${STUDY_REGIONS.length}`);
    const regions = STUDY_REGIONS.slice(0, n);
    const dir = mkdtempSync(join(tmpdir(), 'hothot-availability-'));
    chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must be able to enter it
    options.log(`N=${n}: starting a lab with regions ${regions.join(', ')} and the front door in ${dir}`);
    const t = Date.now();
    let lab: Lab | undefined;
    try {
      lab = await Lab.up({
        root: dir,
        regions,
        frontDoor: true,
        logLevel: 'warn',
        // Whole regions are killed (their primary): one process each, so that a kill is a region down.
        processes: 1,
        ...(compiled ? { regionEntry: COMPILED_REGION_MAIN } : {}),
      });
      options.log(`N=${n}: lab ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      for (const p of options.ps) {
        const seed = options.seed + index++;
        options.log(
          `N=${n} P=${p}: ${Math.round(options.durationMs / 1000)} s of load and chaos (seed ${seed})`,
        );
        const point = await measureAvailabilityPoint(lab, {
          p,
          durationMs: options.durationMs,
          seed,
          writesPerS,
          readsPerS,
          ...(options.outageMs !== undefined ? { outageMs: options.outageMs } : {}),
          log: (m) => options.log(`N=${n} P=${p}: ${m}`),
        });
        points.push(point);
        options.log(
          `N=${n} P=${p}: served ${(point.servedFraction * 100).toFixed(2)} % (1 − P^N ${(point.model.anyUp * 100).toFixed(2)} %, ` +
            `(1 − P)^N ${(point.model.allUp * 100).toFixed(2)} %), realized P ${point.realized.meanDownFraction.toFixed(3)}, ` +
            `failover p50/max ${point.failoverMs.p50 ?? '–'}/${point.failoverMs.max ?? '–'} ms, writes lost ${point.writesLost}`,
        );
      }
    } finally {
      options.log(`N=${n}: stopping the lab`);
      await lab?.down().catch((e: unknown) => options.log(`N=${n}: stopping failed: ${String(e)}`));
      if (options.keep === true) options.log(`N=${n}: kept ${dir}`);
      else rmSync(dir, { recursive: true, force: true });
    }
  }
  const finished = new Date();
  return {
    id: started
      .toISOString()
      .replace(/[:]/g, '-')
      .replace(/\.\d+Z$/, 'Z'),
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    seed: options.seed,
    quick: options.quick ?? false,
    compiled,
    writesPerS,
    readsPerS,
    machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    points,
  };
}
