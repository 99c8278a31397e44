/**
 * PostgreSQL's digest functions (migrations 0008 and 0012: `hothot_bucket`, `hothot_item_hash`)
 * against the same computation in TypeScript (shared/domain/digest.ts), on real PostgreSQL, for
 * random collections, keys and values: backslashes (0012 reads a text's bytes with
 * decode(…, 'escape') after doubling them), characters outside ASCII and outside the BMP, and JSON
 * as PostgreSQL renders it. Also: the functions are inlined into the statements that call them
 * (0012's reason), and a bucket's items are still listed through the bucket index.
 */
import fc from 'fast-check';
import { describe, expect } from 'vitest';
import { bucketOf, itemDigest } from '../../shared/domain/digest.js';
import { randomId, testLogger } from '../support/harness.js';
import { databaseTest } from '../support/fixtures.js';
import { seeded } from '../unit/support/fc.js';

const log = testLogger();
const fcRuns = seeded(import.meta.url);
const test = databaseTest(`t${randomId()}_digest`, log);

/** Text PostgreSQL can hold (no NUL), weighted towards backslashes and multi-byte characters. */
const textArb = fc
  .array(
    fc.oneof(
      fc.constantFrom('\\', '\\\\', '\\x41', '\\000', 'é', '中', '😀', '\u001f', '/', "'"),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
    { maxLength: 8 },
  )
  .map((parts) => parts.join('').replaceAll('\0', ''));

/** The version every generated item carries (what is random is its text). */
const WALL = 1795703728240;
const LOGICAL = 7;

/** A JSON value PostgreSQL's jsonb can hold (no U+0000 in a string), as text. */
const valueArb = fc
  .jsonValue({ maxDepth: 2 })
  .filter((v) => !JSON.stringify(v).includes('\\u0000'))
  .map((v) => JSON.stringify({ v }));

describe('digest functions in PostgreSQL', () => {
  test('when random items are digested in PostgreSQL and in TypeScript, then bucket and digest agree', async ({
    db,
  }) => {
    await fc.assert(
      fc.asyncProperty(
        textArb,
        textArb,
        textArb,
        valueArb,
        fc.boolean(),
        async (collection, key, origin, valueJson, deleted) => {
          const { rows } = await db.pool.query<{ b: number; h: string; vv: string; v: string | null }>(
            `SELECT hothot_bucket($1, $2) AS b,
                    hothot_item_hash($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb, NULL)::text AS h,
                    $6::jsonb::text AS vv, $9::jsonb::text AS v`,
            [
              collection,
              key,
              WALL,
              LOGICAL,
              origin,
              JSON.stringify({ [origin]: 3 }),
              deleted,
              'lww',
              deleted ? null : valueJson,
            ],
          );
          const row = rows[0]!;
          expect(row.b).toBe(bucketOf(collection, key));
          expect(BigInt(row.h)).toBe(
            itemDigest({
              collection,
              key,
              hlcWall: WALL,
              hlcLogical: LOGICAL,
              origin,
              vvText: row.vv,
              deleted,
              policy: 'lww',
              valueText: row.v,
              crdtText: null,
            }),
          );
        },
      ),
      fcRuns.params(300),
    );
  });

  test('when a statement calls them, then PostgreSQL inlines them, and a bucket is listed through its index', async ({
    db,
  }) => {
    const client = await db.pool.connect();
    try {
      const plan = async (sql: string) =>
        (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (VERBOSE, COSTS OFF) ${sql}`)).rows
          .map((r) => r['QUERY PLAN'])
          .join('\n');
      const calls = await plan(
        `SELECT hothot_bucket(collection, key),
                hothot_item_hash(collection, key, hlc_wall, hlc_logical, origin, vv, deleted, policy, value, crdt)
           FROM item`,
      );
      expect(calls).toContain('sha256(');
      expect(calls).not.toContain('hothot_bucket(');
      expect(calls).not.toContain('hothot_item_hash(');
      await client.query('SET enable_seqscan = off');
      expect(await plan('SELECT key FROM item WHERE hothot_bucket(collection, key) = 5')).toContain(
        'item_bucket_idx',
      );
    } finally {
      client.release(true);
    }
  });
});
