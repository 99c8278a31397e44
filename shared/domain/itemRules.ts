/**
 * What a collection name, a key and a value may be. Shared by the API (rejecting requests) and the
 * applier's decoder (dead-lettering events), so nothing that PostgreSQL would refuse — and that
 * would stall a partition — ever reaches a write. Pure.
 */

export const MAX_COLLECTION_LENGTH = 64;
export const MAX_KEY_LENGTH = 512;

const COLLECTION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
// Control characters are refused (PostgreSQL rejects NUL in text); "/" separates collection and
// key in an item's key text (itemKey.ts).
// eslint-disable-next-line no-control-regex
const KEY_FORBIDDEN = /[\u0000-\u001f\u007f/]/;

export const COLLECTION_RULE = `1-${MAX_COLLECTION_LENGTH} letters, digits, "_", "." or "-", starting with a letter or digit`;
export const KEY_RULE = `1-${MAX_KEY_LENGTH} characters without "/" or control characters`;

export function isValidCollection(s: unknown): s is string {
  return (
    typeof s === 'string' && s.length > 0 && s.length <= MAX_COLLECTION_LENGTH && COLLECTION_PATTERN.test(s)
  );
}

export function isValidKey(s: unknown): s is string {
  return (
    typeof s === 'string' &&
    s.length > 0 &&
    s.length <= MAX_KEY_LENGTH &&
    !KEY_FORBIDDEN.test(s) &&
    s.isWellFormed()
  );
}

/**
 * Limits on an item value (and on every request body the API parses: PUT values, PATCH merge
 * patches, increments). They exist so that no walk over a value can exhaust the stack and no body
 * can make a region do work far out of proportion to its size:
 *
 * - Depth 64 bounds every recursive walk done after the check: RFC 7396 merge patch
 *   (jsonMergePatch.ts, recursive in the depth of the patch; policies/fieldsState.ts patches a
 *   field's value with it and keeps it 3 levels deeper in the `fields` state, which it merges entry
 *   by entry, never walking into values), `JSON.stringify` (V8 recurses: it throws "Maximum call
 *   stack size exceeded" at about 4,100 levels on Node 20's default stack, fewer when called from
 *   deep in a stack) and PostgreSQL's jsonb parser (recursive descent, bounded by
 *   `max_stack_depth`: with the default 2 MB it refuses somewhere between 10,000 and 20,000
 *   levels, SQLSTATE 54001). `JSON.parse` itself is iterative in V8 (a 1,000,000-deep body
 *   parses), so the check below is the first walk that could recurse, and it does not. 64 is far
 *   below all of these and far above what real documents use; a merge patch never makes a value
 *   deeper than the deeper of its two inputs, so stored values stay within it.
 * - 10,000 members per object / elements per array, and 100,000 nodes (objects, arrays and
 *   scalars) in all: the merge and conflict code works object by object (`Object.keys`, sorting
 *   field names), and every write copies the value a few times (row, history, outbox event); these
 *   bound that work per request independently of the byte limit on bodies (a 1 MiB body can hold
 *   about 500,000 array elements).
 * - Object keys of at most 1,024 characters (UTF-16 code units): keys become field names of the
 *   `fields` policy, which appear in conflict records, history and logs.
 *
 * Text must be storable as jsonb text: no NUL character and no lone UTF-16 surrogate (PostgreSQL
 * refuses both). Numbers must be finite: `JSON.parse` turns `1e400` into `Infinity`, which
 * `JSON.stringify` would silently store as `null`.
 */
export const MAX_VALUE_DEPTH = 64;
export const MAX_CONTAINER_ENTRIES = 10_000;
export const MAX_VALUE_NODES = 100_000;
export const MAX_OBJECT_KEY_LENGTH = 1_024;

/**
 * How much deeper than its value an item's `crdt` state is: a `fields` state holds a field's value
 * at `crdt.fields[name].value` (a counter state is 4 levels deep in all).
 */
export const CRDT_EXTRA_DEPTH = 3;

export interface ValueLimits {
  /** Levels of nested objects/arrays; a scalar is at level 0, `{}` and `[]` are 1 level deep. */
  readonly maxDepth: number;
  /** Members of one object, elements of one array. */
  readonly maxEntries: number;
  /** Objects, arrays and scalars in the whole value, the value itself included. */
  readonly maxNodes: number;
  /** Characters (UTF-16 code units) of one object key. */
  readonly maxKeyLength: number;
}

/** The limits on a request body. */
export const VALUE_LIMITS: ValueLimits = {
  maxDepth: MAX_VALUE_DEPTH,
  maxEntries: MAX_CONTAINER_ENTRIES,
  maxNodes: MAX_VALUE_NODES,
  maxKeyLength: MAX_OBJECT_KEY_LENGTH,
};

export const VALUE_RULE =
  `JSON nested at most ${MAX_VALUE_DEPTH} levels deep, at most ${MAX_CONTAINER_ENTRIES} members per ` +
  `object or elements per array, ${MAX_VALUE_NODES} values in all, object keys of at most ` +
  `${MAX_OBJECT_KEY_LENGTH} characters, no NUL character or lone UTF-16 surrogate, finite numbers`;

export interface ValueCheckOptions extends Partial<ValueLimits> {
  /** What the value is called in messages, and the root of the paths they give. @default "the value" */
  readonly what?: string;
}

/** One object or array waiting to be walked, and where it is (for messages). */
interface Frame {
  readonly v: object;
  /** Its level: 1 for the value itself. */
  readonly level: number;
  readonly parent: Frame | undefined;
  /** Member name or element index in the parent. */
  readonly at: string | number | undefined;
}

/**
 * The first thing that makes `root` unacceptable as a JSON value under `options` (default: the
 * {@link VALUE_LIMITS}) — too deep, too wide, too many nodes, a key too long, text PostgreSQL
 * cannot store, a non-finite number, something that is not JSON at all — as a message naming it
 * and where it is; `undefined` when there is none.
 *
 * One pass with an explicit stack, never recursion: any depth, width or size of input is walked
 * without growing the call stack, and it stops at the first problem (a value nested 1,000,000
 * levels deep costs 65 steps). A container's own problems (its size, its keys, its scalar members)
 * are found before those of its descendants.
 */
export function findValueProblem(root: unknown, options: ValueCheckOptions = {}): string | undefined {
  const maxDepth = options.maxDepth ?? MAX_VALUE_DEPTH;
  const maxEntries = options.maxEntries ?? MAX_CONTAINER_ENTRIES;
  const maxNodes = options.maxNodes ?? MAX_VALUE_NODES;
  const maxKeyLength = options.maxKeyLength ?? MAX_OBJECT_KEY_LENGTH;
  const what = options.what ?? 'the value';

  const rootProblem = scalarProblem(root);
  if (rootProblem !== undefined) return `${what} ${rootProblem}`;
  if (typeof root !== 'object' || root === null) return undefined;

  let nodes = 1;
  const stack: Frame[] = [{ v: root, level: 1, parent: undefined, at: undefined }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    if (f.level > maxDepth) return `${what} is nested deeper than ${maxDepth} levels (at ${pathOf(what, f)})`;
    const o = f.v;
    if (Array.isArray(o)) {
      if (o.length > maxEntries)
        return `${what} has an array of ${o.length} elements, more than ${maxEntries} (at ${pathOf(what, f)})`;
      nodes += o.length;
      if (nodes > maxNodes) return tooManyNodes(what, maxNodes);
      for (let i = 0; i < o.length; i++) {
        const p = scalarProblem(o[i]);
        if (p !== undefined) return `${what} ${p} (at ${pathOf(what, f, i)})`;
      }
      for (let i = o.length - 1; i >= 0; i--) {
        const x: unknown = o[i];
        if (typeof x === 'object' && x !== null) stack.push({ v: x, level: f.level + 1, parent: f, at: i });
      }
    } else {
      const keys = Object.keys(o);
      if (keys.length > maxEntries)
        return `${what} has an object of ${keys.length} members, more than ${maxEntries} (at ${pathOf(what, f)})`;
      nodes += keys.length;
      if (nodes > maxNodes) return tooManyNodes(what, maxNodes);
      const members = o as Record<string, unknown>;
      for (const k of keys) {
        if (k.length > maxKeyLength)
          return `${what} has an object key of ${k.length} characters, more than ${maxKeyLength} (at ${pathOf(what, f)}, the key starting ${quote(k)})`;
        const kp = textProblem(k);
        if (kp !== undefined) return `${what} has an object key with ${kp} (at ${pathOf(what, f, k)})`;
        const p = scalarProblem(members[k]);
        if (p !== undefined) return `${what} ${p} (at ${pathOf(what, f, k)})`;
      }
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i]!;
        const x = members[k];
        if (typeof x === 'object' && x !== null) stack.push({ v: x, level: f.level + 1, parent: f, at: k });
      }
    }
  }
  return undefined;
}

/**
 * The first problem of the `value` and `crdt` state a peer's change event carries: the
 * depth (plus {@link CRDT_EXTRA_DEPTH} for the state), text and numbers, as for a request body.
 * Not the counts or key lengths: those bound the work of one request, while a stored value may grow
 * past them by merge patches (each within the limits) and must still replicate; and nothing on the
 * apply path recurses over width.
 */
export function findReplicatedValueProblem(event: unknown): string | undefined {
  const { value, crdt } = (typeof event === 'object' && event !== null ? event : {}) as {
    value?: unknown;
    crdt?: unknown;
  };
  const unbounded = { maxEntries: Infinity, maxNodes: Infinity, maxKeyLength: Infinity };
  // An absent value or state is another refinement's business (deleted/value, crdt/policy).
  return (
    (value === undefined ? undefined : findValueProblem(value, { ...unbounded, what: 'value' })) ??
    (crdt === undefined
      ? undefined
      : findValueProblem(crdt, { ...unbounded, maxDepth: MAX_VALUE_DEPTH + CRDT_EXTRA_DEPTH, what: 'crdt' }))
  );
}

/** True for text jsonb can store: no NUL character, no lone UTF-16 surrogate. */
export function isStorableText(s: string): boolean {
  return !s.includes('\u0000') && s.isWellFormed();
}

/** What is wrong with a scalar (as "contains …"); undefined for a good scalar or any object. */
function scalarProblem(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string': {
      const p = textProblem(v);
      return p === undefined ? undefined : `contains a string with ${p}`;
    }
    case 'number':
      if (Number.isFinite(v)) return undefined;
      return Number.isNaN(v)
        ? 'contains NaN, which is not JSON'
        : 'contains a number beyond the range of a 64-bit float (about ±1.8e308), which cannot be stored';
    case 'boolean':
      return undefined;
    case 'object':
      if (v === null || Array.isArray(v)) return undefined;
      return isPlainObject(v) ? undefined : 'contains an object that is not JSON';
    default:
      return `contains ${v === undefined ? 'undefined' : `a ${typeof v}`}, which is not JSON`;
  }
}

function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'a NUL character (\\u0000), which cannot be stored';
  if (!s.isWellFormed()) return 'a lone UTF-16 surrogate, which cannot be stored';
  return undefined;
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function tooManyNodes(what: string, maxNodes: number): string {
  return `${what} has more than ${maxNodes} nodes (objects, arrays, strings, numbers, booleans and nulls in all)`;
}

const MAX_PATH_LENGTH = 200;
const MAX_QUOTED_KEY = 40;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Where `f` (or its member `at`) is, as `value.a[3]["b c"]`, shortened to its first 200 characters. */
function pathOf(what: string, f: Frame, at?: string | number): string {
  const parts: (string | number)[] = at === undefined ? [] : [at];
  for (let x: Frame | undefined = f; x !== undefined && x.at !== undefined; x = x.parent) parts.push(x.at);
  let out = what.replace(/^the /, '');
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i]!;
    out +=
      typeof p === 'number'
        ? `[${p}]`
        : IDENTIFIER.test(p) && p.length <= MAX_QUOTED_KEY
          ? `.${p}`
          : `[${quote(p)}]`;
    if (out.length > MAX_PATH_LENGTH) return `${out.slice(0, MAX_PATH_LENGTH)}…`;
  }
  return out;
}

/** A key in a message: JSON-quoted (NUL and lone surrogates escaped), at most 40 characters of it. */
function quote(k: string): string {
  return k.length > MAX_QUOTED_KEY ? `${JSON.stringify(k.slice(0, MAX_QUOTED_KEY))}…` : JSON.stringify(k);
}

/** `text` made safe for a PostgreSQL text column: no NUL, no lone surrogates, bounded length. */
export function safeText(text: string, maxLength = 2000): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\u0000/g, '\\u0000').toWellFormed();
  return clean.length > maxLength ? `${clean.slice(0, maxLength)}…` : clean;
}
