/**
 * The jars of Kafka's own end-to-end latency tool (`org.apache.kafka.tools.EndToEndLatency`, the second
 * row of the bench's transport floor, #5), resolved from Maven Central by `mvn` using
 * infra/kafka-tools/pom.xml and cached outside the repository in `<cache>/kafka-tools-<version>/libs`, as
 * infra/lab/debeziumJars.ts does for the Debezium peer. Only the bench fetches them, on first use.
 *
 * A marker file written after a complete download records the pom's hash: a half download (no marker)
 * or an edited pom (different hash) is fetched again. Maven's output is followed while it runs, so a
 * first download reports progress instead of going silent.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countJars, kafkaVersion } from './kafkaJars.js';
import { REPO_ROOT, resolveCacheDir } from './paths.js';
import { fetchPomJars } from './maven.js';

export const KAFKA_TOOLS_POM = join(REPO_ROOT, 'infra', 'kafka-tools', 'pom.xml');
/** reload4j configuration of the tools: warnings on stderr, stdout left to their results. */
export const KAFKA_TOOLS_LOG4J = join(REPO_ROOT, 'infra', 'kafka-tools', 'tools-log4j.properties');
const MARKER = '.complete';

export interface KafkaToolsJarsOptions {
  /** @default resolveCacheDir() (`HOTHOT_CACHE_DIR` or ~/.cache/hothot) */
  cacheDir?: string;
  /** Progress of a download (not called when the cache is complete). */
  onProgress?: (message: string) => void;
  /** Fetch even if the cache looks complete. @default false */
  force?: boolean;
}

export interface KafkaToolsJars {
  /** The Kafka version pinned by infra/kafka-tools/pom.xml (`<kafka.version>`). */
  readonly version: string;
  /** Directory of the jars; the JVM class path is `<libsDir>/*`. */
  readonly libsDir: string;
  /** Whether this call downloaded them. */
  readonly fetched: boolean;
}

/** The Kafka version of the tools (the pom's `<kafka.version>`, read as the broker's is). */
export function kafkaToolsVersion(): string {
  return kafkaVersion(KAFKA_TOOLS_POM);
}

/** Directory where the jars of the pinned version live (whether or not they are there yet). */
export function kafkaToolsLibsDir(cacheDir = resolveCacheDir()): string {
  return join(cacheDir, `kafka-tools-${kafkaToolsVersion()}`, 'libs');
}

/** Whether the jars are cached completely (marker present and matching the pom). */
export function hasKafkaToolsJars(cacheDir = resolveCacheDir()): boolean {
  const libs = kafkaToolsLibsDir(cacheDir);
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
export async function ensureKafkaToolsJars(options: KafkaToolsJarsOptions = {}): Promise<KafkaToolsJars> {
  const cacheDir = options.cacheDir ?? resolveCacheDir();
  const version = kafkaToolsVersion();
  const libsDir = kafkaToolsLibsDir(cacheDir);
  if (options.force !== true && hasKafkaToolsJars(cacheDir)) return { version, libsDir, fetched: false };

  const progress = options.onProgress ?? (() => undefined);
  progress(`fetching Kafka ${version} tools jars with Maven into ${libsDir} (first run, ~8 jars, ~20 MB)…`);
  await fetchPomJars({
    pom: KAFKA_TOOLS_POM,
    libsDir,
    marker: { file: MARKER, content: `${pomHash()}\n` },
    missing: requiredJarsIn,
    progress,
    what: 'the Kafka tools jars',
  });
  progress(`Kafka tools jars ready: ${countJars(libsDir)} jars in ${libsDir}`);
  return { version, libsDir, fetched: true };
}

/** The jars EndToEndLatency cannot run without, missing from `dir`. */
function requiredJarsIn(dir: string): string[] {
  const v = kafkaToolsVersion();
  return [`kafka-tools-${v}.jar`, `kafka-clients-${v}.jar`].filter((jar) => !existsSync(join(dir, jar)));
}

function pomHash(): string {
  return createHash('sha256').update(readFileSync(KAFKA_TOOLS_POM)).digest('hex');
}
