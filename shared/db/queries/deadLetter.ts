/** Data access for `dead_letter`: events that could not be decoded or verified, with their raw bytes. */
import type { Queryable } from '../pool.js';

export interface DeadLetter {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly msgKey: Buffer | null;
  readonly payload: Buffer | null;
  readonly headers: Record<string, string>;
  readonly reason: string;
  /** Machine-readable cause: `invalid`, `clock_skew`, `policy_mismatch`, `rejected`, `quarantined`. */
  readonly code: DeadLetterCode;
}

export const DeadLetterCode = {
  Invalid: 'invalid',
  ClockSkew: 'clock_skew',
  PolicyMismatch: 'policy_mismatch',
  Rejected: 'rejected',
  /**
   * Not authenticated: unsigned, signed with an unknown key or badly, or replayed
   * (shared/security/eventAuth.ts). Never applied, never re-applied by the maintenance job.
   */
  Quarantined: 'quarantined',
} as const;
export type DeadLetterCode = (typeof DeadLetterCode)[keyof typeof DeadLetterCode];

/** Codes whose cause can go away: the maintenance job re-applies these. */
export const PARKED_CODES: readonly DeadLetterCode[] = [
  DeadLetterCode.ClockSkew,
  DeadLetterCode.PolicyMismatch,
];

/** Store dead letters; a redelivered message is stored once (unique topic/partition/offset). */
export async function insertDeadLetters(q: Queryable, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  await q.query(
    `INSERT INTO dead_letter (topic, partition, "offset", msg_key, payload, headers, reason, code)
     SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::jsonb[], $7::text[], $8::text[])
     ON CONFLICT (topic, partition, "offset") DO NOTHING`,
    [
      letters.map((l) => l.topic),
      letters.map((l) => l.partition),
      letters.map((l) => l.offset),
      letters.map((l) => l.msgKey),
      letters.map((l) => l.payload),
      letters.map((l) => JSON.stringify(l.headers)),
      letters.map((l) => l.reason),
      letters.map((l) => l.code),
    ],
  );
}

export interface StoredDeadLetter extends DeadLetter {
  readonly id: string;
  readonly receivedAt: Date;
}

export async function listDeadLetters(
  q: Queryable,
  limit = 100,
  codes?: readonly DeadLetterCode[],
): Promise<StoredDeadLetter[]> {
  const { rows } = await q.query<StoredDeadLetter>(
    `SELECT id, topic, partition, "offset", msg_key AS "msgKey", payload, headers, reason, code, received_at AS "receivedAt"
       FROM dead_letter WHERE ($2::text[] IS NULL OR code = ANY($2)) ORDER BY id LIMIT $1`,
    [limit, codes ?? null],
  );
  return rows;
}

export async function countDeadLetters(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*) AS n FROM dead_letter');
  return Number(rows[0]!.n);
}

/** Dead letters with `code` (an index scan of `dead_letter_code_idx`). */
export async function countDeadLettersWithCode(q: Queryable, code: DeadLetterCode): Promise<number> {
  const { rows } = await q.query<{ n: string }>('SELECT count(*) AS n FROM dead_letter WHERE code = $1', [
    code,
  ]);
  return Number(rows[0]!.n);
}

/**
 * The messages quarantined at offsets within the ranges given, with their bytes ({@link offsetKey}
 * → payload): a message the consumer delivers again (same offset, same bytes) stays quarantined
 * (shared/security/eventAuth.ts, admitSequence). One index range scan per partition; normally empty.
 */
export async function quarantinedOffsets(
  q: Queryable,
  ranges: readonly { topic: string; partition: number; from: string; to: string }[],
): Promise<Map<string, Buffer | null>> {
  if (ranges.length === 0) return new Map();
  const { rows } = await q.query<{
    topic: string;
    partition: number;
    offset: string;
    payload: Buffer | null;
  }>({
    name: 'deadLetter.quarantinedOffsets',
    text: `SELECT d.topic, d.partition, d."offset", d.payload
             FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) AS r(topic, partition, lo, hi)
             JOIN dead_letter d
               ON d.topic = r.topic AND d.partition = r.partition AND d."offset" BETWEEN r.lo AND r.hi
            WHERE d.code = 'quarantined'`,
    values: [
      ranges.map((r) => r.topic),
      ranges.map((r) => r.partition),
      ranges.map((r) => r.from),
      ranges.map((r) => r.to),
    ],
  });
  return new Map(rows.map((r) => [offsetKey(r.topic, r.partition, String(r.offset)), r.payload]));
}

/** Key of one message in {@link quarantinedOffsets}' answer. */
export function offsetKey(topic: string, partition: number, offset: string): string {
  return `${topic}\u0000${partition}\u0000${offset}`;
}

export async function deleteDeadLetter(q: Queryable, id: string): Promise<void> {
  await q.query('DELETE FROM dead_letter WHERE id = $1', [id]);
}
