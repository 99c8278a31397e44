/**
 * The Apache Kafka broker jars, resolved once from Maven Central by `mvn` using infra/kafka/pom.xml and
 * cached outside the repository in `<cache>/kafka-<version>/libs`.
 *
 * A marker file written after a complete download records the pom's hash: a half download (no marker)
 * or an edited pom (different hash) is fetched again.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, resolveCacheDir } from './paths.js';
import { fetchPomJars } from './maven.js';

export const KAFKA_POM = join(REPO_ROOT, 'infra', 'kafka', 'pom.xml');
const MARKER = '.complete';

/** The Kafka version pinned by infra/kafka/pom.xml (`<kafka.version>`). */
export function kafkaVersion(pomPath = KAFKA_POM): string {
  const match = /<kafka\.version>\s*([^<\s]+)\s*<\/kafka\.version>/.exec(readFileSync(pomPath, 'utf8'));
  if (match?.[1] === undefined) throw new Error(`${pomPath} has no <kafka.version> property`);
  return match[1];
}

export interface KafkaJarsOptions {
  /** @default resolveCacheDir() (`HOTHOT_CACHE_DIR` or ~/.cache/hothot) */
  cacheDir?: string;
  /**
   * Told when a download starts, then every 10 s of it how far Maven got (not called when the cache
   * is complete).
   */
  onFetchStart?: (message: string) => void;
  /** Fetch even if the cache looks complete. @default false */
  force?: boolean;
}

export interface KafkaJars {
  version: string;
  /** Directory of the jars; the JVM class path is `<libsDir>/*`. */
  libsDir: string;
  /** Whether this call downloaded them. */
  fetched: boolean;
}

/** Directory where the jars of the pinned version live (whether or not they are there yet). */
export function kafkaLibsDir(cacheDir = resolveCacheDir()): string {
  return join(cacheDir, `kafka-${kafkaVersion()}`, 'libs');
}

/** Whether the jars are cached completely (marker present and matching the pom). */
export function hasKafkaJars(cacheDir = resolveCacheDir()): boolean {
  const libs = kafkaLibsDir(cacheDir);
  try {
    return (
      readFileSync(join(libs, MARKER), 'utf8').trim() === pomHash() && existsSync(join(libs, kafkaJarName()))
    );
  } catch {
    return false;
  }
}

/**
 * Make sure the jars are in the cache, running Maven when they are not ({@link fetchPomJars}: into a
 * temporary directory renamed into place at the end, so concurrent or interrupted runs never leave a
 * half set).
 */
export async function ensureKafkaJars(options: KafkaJarsOptions = {}): Promise<KafkaJars> {
  const cacheDir = options.cacheDir ?? resolveCacheDir();
  const version = kafkaVersion();
  const libsDir = kafkaLibsDir(cacheDir);
  if (options.force !== true && hasKafkaJars(cacheDir)) return { version, libsDir, fetched: false };

  const progress = options.onFetchStart ?? (() => undefined);
  progress(`fetching Kafka ${version} jars with Maven into ${libsDir} (first run, ~1 min)…`);
  await fetchPomJars({
    pom: KAFKA_POM,
    libsDir,
    marker: { file: MARKER, content: `${pomHash()}\n` },
    missing: (dir) => (existsSync(join(dir, kafkaJarName())) ? [] : [kafkaJarName()]),
    progress,
    what: 'the Kafka jars',
  });
  return { version, libsDir, fetched: true };
}

/** Number of jars in a libs directory (for messages). */
export function countJars(libsDir: string): number {
  try {
    return readdirSync(libsDir).filter((f) => f.endsWith('.jar')).length;
  } catch {
    return 0;
  }
}

function kafkaJarName(): string {
  return `kafka_2.13-${kafkaVersion()}.jar`;
}

function pomHash(): string {
  return createHash('sha256').update(readFileSync(KAFKA_POM)).digest('hex');
}
