/** Data access for the `conflict` log. */
import type { ConflictRecord, ItemVersion } from '../../domain/resolve.js';
import type { Queryable } from '../pool.js';
import type { ItemKey } from './item.js';

export interface NewConflict extends ItemKey, ConflictRecord {
  readonly eventId: string;
  readonly policy: string;
  /** The field of a field-level conflict (`fields` policy). */
  readonly field?: string | undefined;
}

export interface StoredConflict extends ItemKey {
  readonly id: string;
  readonly winner: ItemVersion;
  readonly loser: ItemVersion;
  readonly rule: string;
  readonly policy: string;
  readonly field: string | null;
  readonly eventId: string;
  readonly detectedAt: Date;
}

/** Record conflicts in one statement; a redelivered event does not record its conflict twice. */
export async function insertConflicts(q: Queryable, conflicts: readonly NewConflict[]): Promise<void> {
  if (conflicts.length === 0) return;
  await q.query(
    `INSERT INTO conflict (collection, key, winner, loser, winner_origin, loser_origin, rule, event_id, policy, field)
     SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], $5::text[], $6::text[], $7::text[], $8::text[],
                          $9::text[], $10::text[])
     ON CONFLICT DO NOTHING`,
    [
      conflicts.map((c) => c.collection),
      conflicts.map((c) => c.key),
      conflicts.map((c) => JSON.stringify(c.winner)),
      conflicts.map((c) => JSON.stringify(c.loser)),
      conflicts.map((c) => c.winner.hlc.region),
      conflicts.map((c) => c.loser.hlc.region),
      conflicts.map((c) => c.rule),
      conflicts.map((c) => c.eventId),
      conflicts.map((c) => c.policy),
      conflicts.map((c) => c.field ?? null),
    ],
  );
}

export interface ConflictFilter {
  readonly collection?: string | undefined;
  /** Only conflicts of these collections (a client limited to them). */
  readonly collections?: readonly string[] | undefined;
  readonly key?: string | undefined;
  readonly since?: Date | undefined;
  /** Return conflicts with id greater than this (pagination cursor). */
  readonly afterId?: string | undefined;
  readonly limit: number;
}

export async function listConflicts(q: Queryable, f: ConflictFilter): Promise<StoredConflict[]> {
  const { rows } = await q.query<StoredConflict>(
    `SELECT id, collection, key, winner, loser, rule, policy, field, event_id AS "eventId", detected_at AS "detectedAt"
       FROM conflict
      WHERE ($1::text IS NULL OR collection = $1) AND ($2::text IS NULL OR key = $2)
        AND ($3::timestamptz IS NULL OR detected_at >= $3) AND ($4::bigint IS NULL OR id > $4)
        AND ($6::text[] IS NULL OR collection = ANY($6::text[]))
      ORDER BY id LIMIT $5`,
    [f.collection ?? null, f.key ?? null, f.since ?? null, f.afterId ?? null, f.limit, f.collections ?? null],
  );
  return rows;
}

export async function countConflicts(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*) AS n FROM conflict');
  return Number(rows[0]!.n);
}

/** Apply retention: drop conflicts older than `maxAgeMs`, then the oldest beyond `maxRows`. */
export async function pruneConflicts(q: Queryable, maxAgeMs: number, maxRows: number): Promise<number> {
  const byAge = await q.query(
    'DELETE FROM conflict WHERE detected_at < clock_timestamp() - make_interval(secs => $1::float8 / 1000)',
    [maxAgeMs],
  );
  const byCount = await q.query(
    `DELETE FROM conflict WHERE id <= (SELECT id FROM conflict ORDER BY id DESC OFFSET $1 LIMIT 1)`,
    [maxRows],
  );
  return (byAge.rowCount ?? 0) + (byCount.rowCount ?? 0);
}
