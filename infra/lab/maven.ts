/** Maven, run to fetch a pom's jars for the lab or the bench (Debezium, Kafka's tools). */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from './paths.js';
import { lastLines } from './processes.js';

const MVN_TIMEOUT_MS = 15 * 60_000;
const PROGRESS_EVERY_MS = 10_000;

/**
 * `mvn args`, reporting every {@link PROGRESS_EVERY_MS} how many artifacts Maven has downloaded so far;
 * rejects with the tail of its output (the `[ERROR]` lines name the artifact that did not resolve). `what` names the jars in the error.
 */
export function mvn(
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
