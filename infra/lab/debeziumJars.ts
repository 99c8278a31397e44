/**
 * The jars of the bench's Debezium peer (Kafka Connect, Debezium's PostgreSQL source and JDBC sink
 * connectors), resolved from Maven Central by `mvn` using infra/debezium/pom.xml and cached outside the
 * repository in `<cache>/debezium-<version>/libs`, as infra/lab/kafkaJars.ts does for the broker.
 *
 * A marker file written after a complete download records the pom's hash: a half download (no marker)
 * or an edited pom (different hash) is fetched again. Maven's output is followed while it runs, so a
 * first download (~90 jars, ~1–3 min) reports progress instead of going silent.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, resolveCacheDir } from './paths.js';
import { fetchPomJars } from './maven.js';

export const DEBEZIUM_POM = join(REPO_ROOT, 'infra', 'debezium', 'pom.xml');
const MARKER = '.complete';

/** The versions pinned by infra/debezium/pom.xml. */
export interface DebeziumVersions {
  readonly debezium: string;
  readonly kafkaConnect: string;
  readonly hibernate: string;
}

export function debeziumVersions(pomPath = DEBEZIUM_POM): DebeziumVersions {
  const pom = readFileSync(pomPath, 'utf8');
  const prop = (name: string) => {
    const match = new RegExp(`<${name.replace(/\./g, '\\.')}>\\s*([^<\\s]+)\\s*</`).exec(pom);
    if (match?.[1] === undefined) throw new Error(`${pomPath} has no <${name}> property`);
    return match[1];
  };
  return {
    debezium: prop('debezium.version'),
    kafkaConnect: prop('kafka.connect.version'),
    hibernate: prop('hibernate.version'),
  };
}

export interface DebeziumJarsOptions {
  /** @default resolveCacheDir() (`HOTHOT_CACHE_DIR` or ~/.cache/hothot) */
  cacheDir?: string;
  /** Progress of a download (not called when the cache is complete). */
  onProgress?: (message: string) => void;
  /** Fetch even if the cache looks complete. @default false */
  force?: boolean;
}

export interface DebeziumJars extends DebeziumVersions {
  /** Directory of the jars; the JVM class path is `<libsDir>/*`. */
  readonly libsDir: string;
  /** Whether this call downloaded them. */
  readonly fetched: boolean;
}

/** Directory where the jars of the pinned versions live (whether or not they are there yet). */
export function debeziumLibsDir(cacheDir = resolveCacheDir()): string {
  const v = debeziumVersions();
  return join(cacheDir, `debezium-${v.debezium}-connect-${v.kafkaConnect}`, 'libs');
}

/** Whether the jars are cached completely (marker present and matching the pom). */
export function hasDebeziumJars(cacheDir = resolveCacheDir()): boolean {
  const libs = debeziumLibsDir(cacheDir);
  try {
    return readFileSync(join(libs, MARKER), 'utf8').trim() === pomHash() && requiredJarsIn(libs).length === 0;
  } catch {
    return false;
  }
}

/**
 * Make sure the jars are in the cache, running Maven when they are not. Downloads into a temporary
 * directory renamed into place at the end, so concurrent or interrupted runs never leave a half set.
 */
export async function ensureDebeziumJars(options: DebeziumJarsOptions = {}): Promise<DebeziumJars> {
  const cacheDir = options.cacheDir ?? resolveCacheDir();
  const versions = debeziumVersions();
  const libsDir = debeziumLibsDir(cacheDir);
  if (options.force !== true && hasDebeziumJars(cacheDir)) return { ...versions, libsDir, fetched: false };

  const progress = options.onProgress ?? (() => undefined);
  progress(
    `fetching Debezium ${versions.debezium} + Kafka Connect ${versions.kafkaConnect} jars with Maven into ${libsDir} ` +
      '(first run, ~90 jars, 1–3 min)…',
  );
  await fetchPomJars({
    pom: DEBEZIUM_POM,
    libsDir,
    marker: { file: MARKER, content: `${pomHash()}\n` },
    missing: requiredJarsIn,
    progress,
    what: 'the Debezium jars',
  });
  progress(`Debezium jars ready: ${countJars(libsDir)} jars in ${libsDir}`);
  return { ...versions, libsDir, fetched: true };
}

/** Number of jars in a libs directory (for messages). */
export function countJars(libsDir: string): number {
  try {
    return readdirSync(libsDir).filter((f) => f.endsWith('.jar')).length;
  } catch {
    return 0;
  }
}

/** The jars the peer cannot run without, missing from `dir`. */
function requiredJarsIn(dir: string): string[] {
  const v = debeziumVersions();
  return [
    `connect-runtime-${v.kafkaConnect}.jar`,
    `debezium-connector-postgres-${v.debezium}.jar`,
    `debezium-connector-jdbc-${v.debezium}.jar`,
    `hibernate-core-${v.hibernate}.jar`,
  ].filter((jar) => !existsSync(join(dir, jar)));
}

function pomHash(): string {
  return createHash('sha256').update(readFileSync(DEBEZIUM_POM)).digest('hex');
}
