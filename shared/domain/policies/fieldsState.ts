/**
 * Per-field versions for the `fields` policy. Pure.
 *
 * Every write stamps what it touched with its HLC stamp and its *dot* (the writer region and that
 * region's write count for the item after the write, i.e. its version-vector entry):
 * - the existence register (`exists`), set by every write: alive for PUT and PATCH, dead for DELETE;
 * - `clearedAt`, set by PUT and DELETE: every field entry older than it is gone;
 * - one entry per field touched: a value, or a field tombstone (PATCH with `null`).
 *
 * The merge takes, register by register, the entry with the greater stamp, and `clearedAt` is the
 * maximum; entries older than `clearedAt` are dropped. It is a join (commutative, associative,
 * idempotent). Two field entries conflict when neither side's version vector covers the other's
 * dot: those were written concurrently, and the greater stamp wins. A field entry (a value or a
 * removal) also conflicts with a newer PUT or DELETE on the other side that did not see it (its
 * vector does not cover the entry's dot): the merge drops the entry, so the clear wins and the entry
 * is the recorded loser.
 */
import { compareStamps, maxStamp, type HlcStamp } from '../hlc.js';
import { applyJsonMergePatch } from '../jsonMergePatch.js';
import { isJsonObject, setOwn } from '../jsonObject.js';
import type { VersionVector } from '../versionVector.js';

/** The `n`-th write of `region` to this item. */
export interface Dot {
  readonly region: string;
  readonly n: number;
}

export interface FieldEntry {
  readonly stamp: HlcStamp;
  readonly dot: Dot;
  /** Absent for a field tombstone. */
  readonly value?: unknown;
  readonly deleted?: true;
}

export interface ExistenceEntry {
  readonly stamp: HlcStamp;
  readonly dot: Dot;
  readonly alive: boolean;
}

export interface FieldsState {
  readonly exists: ExistenceEntry;
  readonly clearedAt: HlcStamp | null;
  readonly fields: Readonly<Record<string, FieldEntry>>;
}

/** A field-level conflict: both entries, winner first. */
export interface FieldConflict {
  readonly field: string;
  readonly winner: FieldEntry;
  readonly loser: FieldEntry;
}

/** State after a PUT of `value` (an object) at `stamp`: replaces every field. */
export function putFields(value: Record<string, unknown>, stamp: HlcStamp, dot: Dot): FieldsState {
  const fields: Record<string, FieldEntry> = {};
  for (const name of Object.keys(value).sort()) setOwn(fields, name, { stamp, dot, value: value[name] });
  return { exists: { stamp, dot, alive: true }, clearedAt: stamp, fields };
}

/** State after a JSON Merge Patch at `stamp`: each top-level field of the patch gets a new entry. */
export function patchFields(
  current: FieldsState | undefined,
  patch: Record<string, unknown>,
  stamp: HlcStamp,
  dot: Dot,
): FieldsState {
  // A deleted item has no fields left (DELETE clears them); a PATCH brings it back with the
  // patched fields only, and leaves concurrent writes of other fields alone.
  const fields: Record<string, FieldEntry> = { ...(current?.fields ?? {}) };
  for (const [name, change] of Object.entries(patch)) {
    if (change === null) {
      setOwn(fields, name, { stamp, dot, deleted: true });
    } else {
      const before = current === undefined || !current.exists.alive ? undefined : fieldValue(current, name);
      setOwn(fields, name, { stamp, dot, value: applyJsonMergePatch(before, change) });
    }
  }
  return normalize({ exists: { stamp, dot, alive: true }, clearedAt: current?.clearedAt ?? null, fields });
}

/** State after a DELETE at `stamp`. */
export function deleteFields(stamp: HlcStamp, dot: Dot): FieldsState {
  return { exists: { stamp, dot, alive: false }, clearedAt: stamp, fields: {} };
}

export function mergeFieldsStates(a: FieldsState, b: FieldsState): FieldsState {
  const fields: Record<string, FieldEntry> = {};
  for (const name of [...new Set([...Object.keys(a.fields), ...Object.keys(b.fields)])].sort()) {
    const x = own(a.fields, name);
    const y = own(b.fields, name);
    setOwn(
      fields,
      name,
      x === undefined ? y! : y === undefined ? x : compareStamps(x.stamp, y.stamp) >= 0 ? x : y,
    );
  }
  return normalize({
    exists: compareStamps(a.exists.stamp, b.exists.stamp) >= 0 ? a.exists : b.exists,
    clearedAt:
      a.clearedAt === null
        ? b.clearedAt
        : b.clearedAt === null
          ? a.clearedAt
          : maxStamp(a.clearedAt, b.clearedAt),
    fields,
  });
}

/** Field entries written concurrently on the two sides (neither vector covers the other's dot). */
export function fieldConflicts(
  a: FieldsState,
  aVv: VersionVector,
  b: FieldsState,
  bVv: VersionVector,
): FieldConflict[] {
  const out: FieldConflict[] = [];
  for (const name of Object.keys(a.fields).sort()) {
    const x = a.fields[name]!;
    const y = own(b.fields, name);
    if (y === undefined || sameDot(x.dot, y.dot)) continue;
    if (covers(bVv, x.dot) || covers(aVv, y.dot)) continue;
    const xWins = compareStamps(x.stamp, y.stamp) > 0;
    out.push({ field: name, winner: xWins ? x : y, loser: xWins ? y : x });
  }
  return out;
}

/** A field entry one side holds that the other side's newer PUT or DELETE clears without having seen it. */
export interface ClearedFieldConflict {
  readonly field: string;
  /** The entry the merge drops. */
  readonly loser: FieldEntry;
  /** The side (first or second argument) that holds `loser`. */
  readonly loserSide: 'a' | 'b';
  /** The other side's `clearedAt`: the stamp of the PUT or DELETE that wins. */
  readonly clearedAt: HlcStamp;
}

/**
 * Field entries dropped by a concurrent clear: one side holds an entry of a field the other side has
 * no entry for, older than the other side's `clearedAt`, written by a write the other side has not
 * seen. The merge drops such an entry although no write that saw it replaced it; without a record it
 * would vanish without a trace (a PATCH racing a newer PUT that leaves the field out, or a newer
 * DELETE). A removal (PATCH with `null`) counts too, as two concurrent removals of one field do in
 * {@link fieldConflicts}: once dropped, nothing remembers it, and a later concurrent write of the
 * field would otherwise beat it unrecorded.
 */
export function clearedFieldConflicts(
  a: FieldsState,
  aVv: VersionVector,
  b: FieldsState,
  bVv: VersionVector,
): ClearedFieldConflict[] {
  const out: ClearedFieldConflict[] = [];
  const collect = (side: 'a' | 'b', mine: FieldsState, other: FieldsState, otherVv: VersionVector) => {
    const cleared = other.clearedAt;
    if (cleared === null) return;
    for (const name of Object.keys(mine.fields).sort()) {
      const e = mine.fields[name]!;
      if (own(other.fields, name) !== undefined) continue;
      if (compareStamps(e.stamp, cleared) < 0 && !covers(otherVv, e.dot))
        out.push({ field: name, loser: e, loserSide: side, clearedAt: cleared });
    }
  };
  collect('a', a, b, bVv);
  collect('b', b, a, aVv);
  return out.sort((x, y) => (x.field < y.field ? -1 : x.field > y.field ? 1 : 0));
}

/** True when PUT/PATCH and DELETE raced: the existence entries are concurrent and disagree. */
export function existenceConflict(
  a: FieldsState,
  aVv: VersionVector,
  b: FieldsState,
  bVv: VersionVector,
): boolean {
  return a.exists.alive !== b.exists.alive && !covers(bVv, a.exists.dot) && !covers(aVv, b.exists.dot);
}

/** The item's value: live fields, or undefined when the item is deleted. */
export function fieldsValue(state: FieldsState): Record<string, unknown> | undefined {
  if (!state.exists.alive) return undefined;
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(state.fields).sort()) {
    const e = state.fields[name]!;
    if (e.deleted !== true) setOwn(out, name, e.value);
  }
  return out;
}

/** The greatest stamp in the state: every write sets `exists`, so it is the existence stamp. */
export function fieldsStamp(state: FieldsState): HlcStamp {
  return state.exists.stamp;
}

export function covers(vv: VersionVector, dot: Dot): boolean {
  return (Object.hasOwn(vv, dot.region) ? vv[dot.region]! : 0) >= dot.n;
}

export function isFieldsState(v: unknown): v is FieldsState {
  if (!isJsonObject(v) || !isJsonObject(v.exists) || !isJsonObject(v.fields)) return false;
  if (!isStamp(v.exists.stamp) || !isDot(v.exists.dot) || typeof v.exists.alive !== 'boolean') return false;
  if (v.clearedAt !== null && !isStamp(v.clearedAt)) return false;
  return Object.values(v.fields).every(
    (e) =>
      isJsonObject(e) &&
      isStamp(e.stamp) &&
      isDot(e.dot) &&
      (e.deleted === true
        ? e.value === undefined
        : e.deleted === undefined && e.value !== undefined && e.value !== null),
  );
}

function fieldValue(state: FieldsState, name: string): unknown {
  const e = own(state.fields, name);
  return e === undefined || e.deleted === true ? undefined : e.value;
}

function normalize(s: FieldsState): FieldsState {
  const cleared = s.clearedAt;
  if (cleared === null) return s;
  const fields: Record<string, FieldEntry> = {};
  for (const [name, e] of Object.entries(s.fields))
    if (compareStamps(e.stamp, cleared) >= 0) setOwn(fields, name, e);
  return { ...s, fields };
}

function sameDot(a: Dot, b: Dot): boolean {
  return a.region === b.region && a.n === b.n;
}

function own<T>(o: Readonly<Record<string, T>>, k: string): T | undefined {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

function isStamp(v: unknown): v is HlcStamp {
  return (
    isJsonObject(v) &&
    Number.isSafeInteger(v.wall) &&
    Number.isSafeInteger(v.logical) &&
    typeof v.region === 'string'
  );
}

function isDot(v: unknown): v is Dot {
  return isJsonObject(v) && typeof v.region === 'string' && Number.isSafeInteger(v.n) && (v.n as number) > 0;
}
