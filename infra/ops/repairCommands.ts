/**
 * `hothot repair --check <url-a> <url-b>`: compare two regions' item digests (GET /v1/digest, admin
 * scope) and print what differs — each differing bucket's keys with the version each side holds.
 * It reads only; the regions repair divergence themselves (docs/anti-entropy.md).
 *
 * Writes in flight differ for a moment too: buckets are compared twice, `--settle-ms` apart, and
 * only those that differ both times (with the same keys) are reported.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { sleep } from '../lab/waitFor.js';
import { resolveLabRoot } from '../lab/paths.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

interface DigestView {
  readonly region: string;
  readonly items: number;
  readonly digest: string;
  readonly bucketDigests: readonly { bucket: number; digest: string; items: number }[];
}

interface BucketItem {
  readonly collection: string;
  readonly key: string;
  readonly version: string;
  readonly deleted: boolean;
  readonly digest: string;
}

/** One key that differs: the version each side holds (undefined: absent there). */
export interface KeyDifference {
  readonly bucket: number;
  readonly collection: string;
  readonly key: string;
  readonly a?: { readonly version: string; readonly deleted: boolean; readonly digest: string };
  readonly b?: { readonly version: string; readonly deleted: boolean; readonly digest: string };
}

/** The keys of one bucket whose digests differ between two regions' lists. */
export function diffBucket(
  bucket: number,
  a: readonly BucketItem[],
  b: readonly BucketItem[],
): KeyDifference[] {
  const id = (i: BucketItem) => `${i.collection}/${i.key}`;
  const side = (i: BucketItem) => ({ version: i.version, deleted: i.deleted, digest: i.digest });
  const bs = new Map(b.map((i) => [id(i), i]));
  const out: KeyDifference[] = [];
  for (const i of a) {
    const j = bs.get(id(i));
    bs.delete(id(i));
    if (j !== undefined && j.digest === i.digest) continue;
    out.push({
      bucket,
      collection: i.collection,
      key: i.key,
      a: side(i),
      ...(j === undefined ? {} : { b: side(j) }),
    });
  }
  for (const j of bs.values()) out.push({ bucket, collection: j.collection, key: j.key, b: side(j) });
  return out.sort((x, y) => (x.collection + '/' + x.key < y.collection + '/' + y.key ? -1 : 1));
}

class RegionClient {
  constructor(
    readonly url: string,
    private readonly apiKey: string | undefined,
  ) {}

  async get<T>(pathAndQuery: string): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${pathAndQuery}`, {
        headers: this.apiKey === undefined ? {} : { authorization: `Bearer ${this.apiKey}` },
        signal: AbortSignal.timeout(30_000),
      });
    } catch (e) {
      throw new Error(`${this.url} does not answer: ${(e as Error).message}`, { cause: e });
    }
    if (res.status === 401 || res.status === 403)
      throw new Error(
        `${this.url} answered ${res.status}: pass an admin API key (--key-file, $HOTHOT_API_KEY, or a lab's admin-key)`,
      );
    if (!res.ok) throw new Error(`${this.url}${pathAndQuery} answered ${res.status}`);
    return (await res.json()) as T;
  }
}

/** The API key: --key-file, else $HOTHOT_API_KEY, else the lab's admin-key file if there is one. */
function resolveApiKey(options: { keyFile?: string; dir?: string }, env = process.env): string | undefined {
  if (options.keyFile !== undefined) return readFileSync(options.keyFile, 'utf8').trim();
  if (env.HOTHOT_API_KEY !== undefined && env.HOTHOT_API_KEY !== '') return env.HOTHOT_API_KEY;
  const labKey = path.join(resolveLabRoot(options.dir, env), 'admin-key');
  return existsSync(labKey) ? readFileSync(labKey, 'utf8').trim() : undefined;
}

function differingBuckets(a: DigestView, b: DigestView): number[] {
  return a.bucketDigests.flatMap((x, i) => (x.digest === b.bucketDigests[i]?.digest ? [] : [x.bucket]));
}

async function keyDifferences(a: RegionClient, b: RegionClient, buckets: readonly number[]) {
  const diffs: KeyDifference[] = [];
  for (const bucket of buckets) {
    const [x, y] = await Promise.all([
      a.get<{ items: BucketItem[] }>(`/v1/digest?bucket=${bucket}`),
      b.get<{ items: BucketItem[] }>(`/v1/digest?bucket=${bucket}`),
    ]);
    diffs.push(...diffBucket(bucket, x.items, y.items));
  }
  return diffs;
}

const nonNegative = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number of ms (≥ 0)');
  return n;
};

const urlArg = (v: string): string => {
  try {
    const u = new URL(v);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    return v.replace(/\/+$/, '');
  } catch {
    throw new InvalidArgumentError(`${JSON.stringify(v)} is not an http(s) URL of a region`);
  }
};

export function addRepairCommands(program: Command): void {
  program
    .command('repair')
    .description('compare two regions digest by digest and print the keys that differ (--check)')
    .argument('<url-a>', 'the first region’s API base URL, e.g. http://127.0.0.1:8081', urlArg)
    .argument('<url-b>', 'the second region’s API base URL', urlArg)
    .requiredOption('--check', 'compare and print (the only mode: the regions repair by themselves)')
    .addOption(
      new Option(
        '--key-file <path>',
        'a file holding an admin API key (default: $HOTHOT_API_KEY, or the lab’s)',
      ),
    )
    .addOption(
      new Option(
        '--dir <path>',
        'lab directory for its admin-key (default: $HOTHOT_LAB_DIR or <repo>/.hothot)',
      ),
    )
    .option(
      '--settle-ms <ms>',
      'second look after this long; only buckets differing both times count',
      nonNegative,
      2000,
    )
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      `
Exit status: 0 digest-equal, 1 something differs, 2 a region could not be read.

Each region keeps a digest of its items per bucket (1,024 buckets by a hash of the key; each item's
digest covers its key, version and content, tombstones included). This command reads both regions'
GET /v1/digest, then for every bucket that differs GET /v1/digest?bucket=N, and prints each differing
key with the version each side holds ("absent" where a side has no row). "same version" with
different digests means a row changed without a new version (by hand). A write still replicating
shows up for a moment: the comparison is repeated after --settle-ms and only what differs both times
is printed. /v1/status (antiEntropy) shows what the regions found and repaired themselves.

Example:
  hothot repair --check http://127.0.0.1:8081 http://127.0.0.1:8082`,
    )
    .action(
      async (
        urlA: string,
        urlB: string,
        options: { keyFile?: string; dir?: string; settleMs: number; json?: boolean },
      ) => {
        let apiKey: string | undefined;
        try {
          apiKey = resolveApiKey(options);
        } catch (e) {
          err(`hothot repair: cannot read the API key: ${(e as Error).message}`);
          process.exitCode = 2;
          return;
        }
        const a = new RegionClient(urlA, apiKey);
        const b = new RegionClient(urlB, apiKey);
        try {
          if (!options.json) out(`reading the digests of ${urlA} and ${urlB} …`);
          const [da, db] = await Promise.all([
            a.get<DigestView>('/v1/digest'),
            b.get<DigestView>('/v1/digest'),
          ]);
          let buckets = differingBuckets(da, db);
          let diffs = await keyDifferences(a, b, buckets);
          if (diffs.length > 0 && options.settleMs > 0) {
            if (!options.json)
              out(
                `${buckets.length} bucket(s) differ; looking again in ${options.settleMs} ms (writes in flight) …`,
              );
            await sleep(options.settleMs);
            const [ea, eb] = await Promise.all([
              a.get<DigestView>('/v1/digest'),
              b.get<DigestView>('/v1/digest'),
            ]);
            const again = new Set(differingBuckets(ea, eb));
            buckets = buckets.filter((x) => again.has(x));
            const before = new Set(diffs.map((d) => `${d.bucket}/${d.collection}/${d.key}`));
            diffs = (await keyDifferences(a, b, buckets)).filter((d) =>
              before.has(`${d.bucket}/${d.collection}/${d.key}`),
            );
          }
          if (options.json) {
            out(
              JSON.stringify(
                {
                  a: { url: urlA, region: da.region, items: da.items, digest: da.digest },
                  b: { url: urlB, region: db.region, items: db.items, digest: db.digest },
                  differingBuckets: [...new Set(diffs.map((d) => d.bucket))],
                  keys: diffs,
                },
                null,
                2,
              ),
            );
          } else {
            out(`${da.region.padEnd(8)} ${String(da.items).padStart(9)} items  digest ${da.digest}  ${urlA}`);
            out(`${db.region.padEnd(8)} ${String(db.items).padStart(9)} items  digest ${db.digest}  ${urlB}`);
            if (diffs.length === 0) out('digest-equal: nothing differs');
            else {
              const shown = (s: KeyDifference['a']) =>
                s === undefined ? 'absent' : `${s.version}${s.deleted ? ' (deleted)' : ''}`;
              out(`${'bucket'.padStart(6)}  ${'key'.padEnd(30)}  ${da.region.padEnd(28)}  ${db.region}`);
              for (const d of diffs) {
                const note =
                  d.a !== undefined && d.b !== undefined && d.a.version === d.b.version
                    ? '  same version, different content'
                    : '';
                out(
                  `${String(d.bucket).padStart(6)}  ${`${d.collection}/${d.key}`.padEnd(30)}  ${shown(d.a).padEnd(28)}  ${shown(d.b)}${note}`,
                );
              }
              out(`${diffs.length} key(s) differ in ${new Set(diffs.map((d) => d.bucket)).size} bucket(s)`);
            }
          }
          process.exitCode = diffs.length === 0 ? 0 : 1;
        } catch (e) {
          err(`hothot repair: ${(e as Error).message}`);
          process.exitCode = 2;
        }
      },
    );
}
