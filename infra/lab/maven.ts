/** Maven, run to fetch a pom's jars for the lab or the bench (Debezium, Kafka's tools). */
import { spawn } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from './paths.js';
import { lastLines } from './processes.js';

const MVN_TIMEOUT_MS = 15 * 60_000;
const PROGRESS_EVERY_MS = 10_000;

/**
 * Fetch the runtime dependencies of `pom` into `libsDir` with Maven: into a temporary directory
 * renamed into place at the end (with `marker` written in it), so concurrent or interrupted runs
 * never leave a half set. Fails when Maven did, or when it left out one of the `required` jars
 * (named by `missing`, given the directory).
 */
export async function fetchPomJars(o: {
  readonly pom: string;
  readonly libsDir: string;
  readonly marker: { readonly file: string; readonly content: string };
  readonly missing: (dir: string) => readonly string[];
  readonly progress: (message: string) => void;
  /** The jars, for errors: "the Debezium jars". */
  readonly what: string;
}): Promise<void> {
  const parent = join(o.libsDir, '..');
  mkdirSync(parent, { recursive: true });
  const tmpDir = join(parent, `libs.tmp-${process.pid}-${Date.now()}`);
  try {
    await mvn(
      [
        '-B',
        '-f',
        o.pom,
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${tmpDir}`,
      ],
      o.progress,
      o.what,
    );
    const missing = o.missing(tmpDir);
    if (missing.length > 0) {
      throw new Error(
        `Maven finished but ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in ${tmpDir}: check ${relative(REPO_ROOT, o.pom)}`,
      );
    }
    writeFileSync(join(tmpDir, o.marker.file), o.marker.content);
    rmSync(o.libsDir, { recursive: true, force: true });
    renameSync(tmpDir, o.libsDir);
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

/**
 * `mvn args`, reporting every {@link PROGRESS_EVERY_MS} how many artifacts Maven has downloaded so far;
 * rejects with the tail of its output (the `[ERROR]` lines name the artifact that did not resolve). `what` names the jars in the error.
 */
function mvn(
  args: readonly string[],
  progress: (message: string) => void,
  what: string,
  timeoutMs = MVN_TIMEOUT_MS,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mvn', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let downloaded = 0;
    let reported = 0;
    const onData = (d: string) => {
      output += d;
      if (output.length > 1_000_000) output = output.slice(-200_000);
      for (const line of d.split('\n')) if (line.includes('Downloaded from')) downloaded += 1;
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    const started = Date.now();
    const ticker = setInterval(() => {
      if (downloaded === reported) return;
      reported = downloaded;
      progress(`Maven: ${downloaded} files downloaded (${Math.round((Date.now() - started) / 1000)} s)`);
    }, PROGRESS_EVERY_MS);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const fail = (why: string) => {
      const errors = output
        .split('\n')
        .filter((l) => l.includes('[ERROR]'))
        .slice(0, 8)
        .join('\n');
      reject(
        new Error(
          `could not fetch ${what} with Maven (is \`mvn\` installed and Maven Central reachable?): mvn ${why}\n` +
            (errors !== '' ? errors : lastLines(output, 30)),
        ),
      );
    };
    child.on('error', (err) => {
      clearInterval(ticker);
      clearTimeout(timer);
      fail(`could not start: ${err.message}`);
    });
    child.on('close', (code, signal) => {
      clearInterval(ticker);
      clearTimeout(timer);
      if (code === 0) resolve();
      else fail(signal !== null ? `was killed by ${signal}` : `exited with code ${String(code)}`);
    });
  });
}
