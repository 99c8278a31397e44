/**
 * The region process as deployed: TypeScript compiled to `dist/` (`npm run build`, as the
 * Dockerfile does), run by plain Node. The lab and the tests run the sources through tsx, which is
 * quicker to start from a checkout; the benchmarks measure the compiled build, because tsx keeps
 * every module's source map and its loader in memory, which inflates the peak RSS under load
 * (docs/operations.md, "Running a region process").
 */
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';
import { run } from './processes.js';

/** Entry point of the compiled region process, relative to the repository root. */
export const COMPILED_REGION_MAIN = 'dist/services/region/main.js';

/**
 * Compile the services into `<repo>/dist` (tsconfig.build.json) and put the SQL migrations where
 * the compiled migration runner looks for them. A whole `tsc` run (how long: bench/README.md,
 * "Figures quoted from code comments").
 */
export async function buildCompiledRegion(): Promise<void> {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  rmSync(join(REPO_ROOT, 'dist'), { recursive: true, force: true });
  await run(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.build.json')], { cwd: REPO_ROOT });
  cpSync(join(REPO_ROOT, 'infra/postgres/migrations'), join(REPO_ROOT, 'dist/infra/postgres/migrations'), {
    recursive: true,
  });
}
