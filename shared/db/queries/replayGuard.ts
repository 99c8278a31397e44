/**
 * Data access for `peer_replay_guard`: per peer origin and partition, the greatest offset and the
 * publish sequences accepted (see shared/security/eventAuth.ts, admitSequence).
 */
import type { ReplayGuardState } from '../../security/eventAuth.js';
import type { Queryable } from '../pool.js';

export interface GuardKey {
  readonly origin: string;
  readonly partition: number;
}

export function guardKey(origin: string, partition: number): string {
  return `${origin}/${partition}`;
}

/**
 * The guard rows of `keys`, locked until the transaction ends (`FOR UPDATE`): a consumer of an old
 * group generation still applying the same partition waits instead of overwriting them.
 */
export async function readReplayGuards(
  q: Queryable,
  keys: readonly GuardKey[],
): Promise<Map<string, ReplayGuardState>> {
  if (keys.length === 0) return new Map();
  const { rows } = await q.query<{
    origin: string;
    partition: number;
    last_offset: string;
    /** instance → [greatest counter, offset last seen at] */
    instances: Record<string, [number, string]>;
    floor_ms: string;
  }>({
    name: 'replayGuard.read',
    text: `SELECT g.origin, g.partition, g.last_offset, g.instances, g.floor_ms
             FROM peer_replay_guard g
             JOIN unnest($1::text[], $2::int[]) AS k(origin, partition)
               ON g.origin = k.origin AND g.partition = k.partition
              FOR UPDATE OF g`,
    values: [keys.map((k) => k.origin), keys.map((k) => k.partition)],
  });
  return new Map(
    rows.map((r) => [
      guardKey(r.origin, r.partition),
      {
        lastOffset: BigInt(r.last_offset),
        instances: new Map(
          Object.entries(r.instances).map(([id, [counter, offset]]) => [
            id,
            { counter, offset: BigInt(offset) },
          ]),
        ),
        floorMs: Number(r.floor_ms),
      },
    ]),
  );
}

/** Store the guard states (each already merged with what was read in this transaction). */
export async function writeReplayGuards(
  q: Queryable,
  guards: readonly (GuardKey & { readonly state: ReplayGuardState })[],
): Promise<void> {
  const stored = guards.filter((g) => g.state.lastOffset !== null);
  if (stored.length === 0) return;
  await q.query({
    name: 'replayGuard.write',
    text: `INSERT INTO peer_replay_guard AS g (origin, partition, last_offset, instances, floor_ms)
           SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::jsonb[], $5::bigint[])
           ON CONFLICT (origin, partition) DO UPDATE SET
             last_offset = GREATEST(g.last_offset, EXCLUDED.last_offset),
             instances = EXCLUDED.instances,
             floor_ms = GREATEST(g.floor_ms, EXCLUDED.floor_ms),
             updated_at = clock_timestamp()`,
    values: [
      stored.map((g) => g.origin),
      stored.map((g) => g.partition),
      stored.map((g) => g.state.lastOffset!.toString()),
      stored.map((g) =>
        JSON.stringify(
          Object.fromEntries([...g.state.instances].map(([id, v]) => [id, [v.counter, v.offset.toString()]])),
        ),
      ),
      stored.map((g) => g.state.floorMs),
    ],
  });
}
