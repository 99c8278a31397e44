/**
 * What the apply path's batch writers store (`upsertItems`, `insertHistory`: one statement for many
 * rows, each column an array parameter): a deleted item has no value (SQL NULL), a live item whose
 * value is JSON null keeps it, a policy's state is stored or absent (SQL NULL, not JSON null), any
 * storable text and the largest stamps come back unchanged, an upsert overwrites, and a version
 * already in the history is not recorded twice.
 */
import { describe, expect, it } from 'vitest';
import { formatItemKey } from '../../shared/domain/itemKey.js';
import { findItems, upsertItems, type ItemKey } from '../../shared/db/queries/item.js';
import { HistoryOutcome, insertHistory } from '../../shared/db/queries/itemHistory.js';
import type { PolicyVersion } from '../../shared/domain/mergeItem.js';
import { Policy } from '../../shared/domain/mergePolicy.js';
import { randomId, type TestDatabase, testLogger } from '../support/harness.js';
import { databaseTest, DATABASE_START_MS } from '../support/fixtures.js';

const itemRowsTest = databaseTest(`t${randomId()}`, testLogger(), {
  max: 2,
  applicationName: 'item-rows-test',
});

type Item = ItemKey & PolicyVersion;
const version = (key: string, wall: number, over: Partial<Item> = {}): Item => ({
  collection: 'item-rows',
  key,
  value: { n: wall },
  deleted: false,
  hlc: { wall, logical: 7, region: 'us' },
  vv: { us: wall },
  policy: Policy.Lww,
  ...over,
});

describe('item and history rows written in batches', () => {
  let db: TestDatabase;

  itemRowsTest.beforeAll(({ db: started }) => {
    db = started;
  }, DATABASE_START_MS);

  const stored = async (key: string) => {
    const { rows } = await db.pool.query<{
      value: unknown;
      kind: string | null;
      deleted: boolean;
      wall: string;
      logical: number;
      origin: string;
      vv: unknown;
      policy: string;
      crdt: unknown;
      crdtKind: string | null;
    }>(
      `SELECT value, jsonb_typeof(value) AS kind, deleted, hlc_wall::text AS wall, hlc_logical AS logical, origin, vv,
              policy, crdt, jsonb_typeof(crdt) AS "crdtKind"
         FROM item WHERE collection = 'item-rows' AND key = $1`,
      [key],
    );
    return rows[0];
  };

  it('when items are upserted, then each is stored as given: no value when deleted, a JSON null kept, a state or none', async () => {
    const tricky = 'q"uo\\te \u00e9\u{1F600} ,{}[]';
    const counters = { counters: { n: { us: { p: 3, n: 1 } } } };
    await upsertItems(db.pool, [
      version('live', 1_764_500_000_001, {
        value: { text: tricky, list: [1, 'two', null], nested: { a: true } },
      }),
      version('gone', 1_764_500_000_002, { deleted: true, value: null }),
      version('null-valued', 1_764_500_000_003, { value: null }),
      version(tricky, Number.MAX_SAFE_INTEGER, {
        policy: Policy.Counter,
        crdt: counters,
        vv: { us: 3, eu: 9_007_199_254_740_991 },
      }),
    ]);

    expect(await stored('live')).toMatchObject({
      value: { text: tricky, list: [1, 'two', null], nested: { a: true } },
      deleted: false,
      wall: '1764500000001',
      logical: 7,
      origin: 'us',
      vv: { us: 1_764_500_000_001 },
      policy: 'lww',
      crdt: null,
      crdtKind: null, // SQL NULL, not a JSON null
    });
    expect(await stored('gone')).toMatchObject({ value: null, kind: null, deleted: true });
    expect(await stored('null-valued')).toMatchObject({ value: null, kind: 'null', deleted: false });
    expect(await stored(tricky)).toMatchObject({
      wall: String(Number.MAX_SAFE_INTEGER),
      vv: { us: 3, eu: 9_007_199_254_740_991 },
      policy: 'counter',
      crdt: counters,
    });
    // Read back through the item queries, it is the same version.
    const found = await findItems(db.pool, [{ collection: 'item-rows', key: tricky }]);
    expect(found.get(formatItemKey({ collection: 'item-rows', key: tricky }))).toMatchObject({
      key: tricky,
      hlc: { wall: Number.MAX_SAFE_INTEGER, logical: 7, region: 'us' },
      crdt: counters,
    });
  });

  it('when an item is upserted again, then its row is overwritten, the state cleared when the new version has none', async () => {
    await upsertItems(db.pool, [version('again', 1_000, { policy: Policy.Counter, crdt: { counters: {} } })]);
    await upsertItems(db.pool, [version('again', 2_000, { deleted: true, value: null })]);
    expect(await stored('again')).toMatchObject({
      value: null,
      kind: null,
      deleted: true,
      wall: '2000',
      crdtKind: null,
    });
  });

  it('when versions are recorded in the history, then each is stored once, with its value or none', async () => {
    const entries = [
      { ...version('h', 10, { value: { s: 'x"y' } }), outcome: HistoryOutcome.Applied },
      { ...version('h', 11, { deleted: true, value: null }), outcome: HistoryOutcome.Lost },
      { ...version('h', 12, { value: null }), outcome: HistoryOutcome.Merged },
    ].map(({ outcome, ...v }) => ({ collection: v.collection, key: v.key, version: v, outcome }));
    await insertHistory(db.pool, entries);
    await insertHistory(db.pool, entries); // the same versions again: not recorded twice
    const { rows } = await db.pool.query<{
      wall: string;
      value: unknown;
      kind: string | null;
      deleted: boolean;
      outcome: string;
      vv: unknown;
    }>(
      `SELECT hlc_wall::text AS wall, value, jsonb_typeof(value) AS kind, deleted, outcome, vv
         FROM item_history WHERE collection = 'item-rows' AND key = 'h' ORDER BY hlc_wall`,
    );
    expect(rows).toEqual([
      { wall: '10', value: { s: 'x"y' }, kind: 'object', deleted: false, outcome: 'applied', vv: { us: 10 } },
      { wall: '11', value: null, kind: null, deleted: true, outcome: 'lost', vv: { us: 11 } },
      { wall: '12', value: null, kind: 'null', deleted: false, outcome: 'merged', vv: { us: 12 } },
    ]);
  });
});
