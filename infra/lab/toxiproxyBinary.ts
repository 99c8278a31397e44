/**
 * The Toxiproxy server binary: built once from its Go module with `go install` at a pinned version
 * and cached outside the repository, like the Kafka jars (kafkaJars.ts). toxiproxyServer.ts runs it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, resolveCacheDir } from './paths.js';
import { run } from './processes.js';

/** Pinned Toxiproxy version (v2.13 needs a newer Go than our machines have). */
export const TOXIPROXY_VERSION = '2.12.0';
export const TOXIPROXY_MODULE = 'github.com/Shopify/toxiproxy/v2';
const MARKER = '.complete';

/** Directory of the cached build: `<cache>/toxiproxy-<version>`. */
export function toxiproxyDir(cacheDir = resolveCacheDir()): string {
  return join(cacheDir, `toxiproxy-${TOXIPROXY_VERSION}`);
}

/** Path of the server binary (whether or not it is built yet). `go install` names it `server`. */
export function toxiproxyBinary(cacheDir = resolveCacheDir()): string {
  return join(toxiproxyDir(cacheDir), 'server');
}

/** Whether the binary is cached completely (marker present and naming the pinned version). */
export function hasToxiproxy(cacheDir = resolveCacheDir()): boolean {
  try {
    return (
      readFileSync(join(toxiproxyDir(cacheDir), MARKER), 'utf8').trim() === TOXIPROXY_VERSION &&
      existsSync(toxiproxyBinary(cacheDir))
    );
  } catch {
    return false;
  }
}

export interface EnsureToxiproxyOptions {
  /** @default resolveCacheDir() */
  cacheDir?: string;
  /** Told once, before a build starts (not called when the cache is complete). */
  onBuildStart?: (message: string) => void;
  /** Build even if the cache looks complete. @default false */
  force?: boolean;
}

/**
 * Make sure the Toxiproxy server is built and cached. Builds with `go install` into a temporary
 * GOBIN and renames the binary into place, then writes the marker: an interrupted or concurrent build
 * never leaves a half binary behind a marker. A binary from an earlier build without a marker is
 * adopted once it runs (`-version`).
 */
export async function ensureToxiproxy(options: EnsureToxiproxyOptions = {}): Promise<string> {
  const cacheDir = options.cacheDir ?? resolveCacheDir();
  const dir = toxiproxyDir(cacheDir);
  const binary = toxiproxyBinary(cacheDir);
  if (options.force !== true && hasToxiproxy(cacheDir)) return binary;
  mkdirSync(dir, { recursive: true });

  if (options.force !== true && existsSync(binary)) {
    const adopted = await run(binary, ['-version'], { timeoutMs: 10_000 }).then(
      (r) => /toxiproxy-server version/.test(r.stdout + r.stderr),
      () => false,
    );
    if (adopted) {
      writeFileSync(join(dir, MARKER), `${TOXIPROXY_VERSION}\n`);
      return binary;
    }
  }

  options.onBuildStart?.(
    `building Toxiproxy ${TOXIPROXY_VERSION} with \`go install\` into ${dir} (first run, ~1 min)…`,
  );
  const tmpBin = join(dir, `bin.tmp-${process.pid}-${Date.now()}`);
  mkdirSync(tmpBin, { recursive: true });
  try {
    await run(
      goBinary(),
      [
        'install',
        `-ldflags=-s -w -X ${TOXIPROXY_MODULE}.Version=${TOXIPROXY_VERSION}`,
        `${TOXIPROXY_MODULE}/cmd/server@v${TOXIPROXY_VERSION}`,
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, GOBIN: tmpBin, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
        timeoutMs: 15 * 60_000,
      },
    ).catch((err: unknown) => {
      throw new Error(
        `could not build Toxiproxy with \`go install\` (is Go >= 1.21 installed and the Go module proxy reachable?): ${
          err instanceof Error ? err.message : String(err)
        }`,
        { cause: err },
      );
    });
    const built = join(tmpBin, 'server');
    if (!existsSync(built)) throw new Error(`go install finished but ${built} is missing`);
    rmSync(join(dir, MARKER), { force: true });
    renameSync(built, binary);
    writeFileSync(join(dir, MARKER), `${TOXIPROXY_VERSION}\n`);
  } finally {
    rmSync(tmpBin, { recursive: true, force: true });
  }
  return binary;
}

function goBinary(): string {
  const fromRoot = process.env.GOROOT !== undefined ? join(process.env.GOROOT, 'bin', 'go') : undefined;
  if (fromRoot !== undefined && existsSync(fromRoot)) return fromRoot;
  // Not always on a non-login PATH: the official tarball's default place.
  const onPath = (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'go')));
  return onPath || !existsSync('/usr/local/go/bin/go') ? 'go' : '/usr/local/go/bin/go';
}
