/**
 * Where the native lab finds the repository and keeps its files.
 *
 * The repository root is derived from this module's location, not from the working directory, so
 * `hothot` behaves the same whatever directory it is run from.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Root of the hothot repository (the directory holding package.json). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** Entry point of a region process, relative to {@link REPO_ROOT}. */
export const REGION_MAIN = 'services/region/main.ts';

/**
 * Directory of a lab's state file and data: `--dir`, else `HOTHOT_LAB_DIR`, else `<repo>/.hothot`.
 * The state file is `<dir>/lab.json`; data and logs live under `<dir>/lab/`.
 */
export function resolveLabRoot(dir?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = dir ?? env.HOTHOT_LAB_DIR;
  return chosen !== undefined && chosen !== '' ? resolve(chosen) : join(REPO_ROOT, '.hothot');
}

/** Cache of downloaded runtimes (Kafka jars, later Toxiproxy): `HOTHOT_CACHE_DIR`, else `~/.cache/hothot`. */
export function resolveCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const chosen = env.HOTHOT_CACHE_DIR;
  return chosen !== undefined && chosen !== '' ? resolve(chosen) : join(homedir(), '.cache', 'hothot');
}
