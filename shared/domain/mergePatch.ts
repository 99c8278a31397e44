/** JSON Merge Patch (RFC 7396). Pure. */

export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Set own property `name` of `o`. A JSON member may be named `__proto__`: a plain assignment of that
 * name sets the object's prototype instead, and the member is silently lost.
 */
export function setOwn<T>(o: Record<string, T>, name: string, value: T): void {
  Object.defineProperty(o, name, { value, writable: true, enumerable: true, configurable: true });
}

/** Apply `patch` to `target` as RFC 7396 says: objects merge recursively, `null` removes, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch;
  const result: Record<string, unknown> = isJsonObject(target) ? { ...target } : {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete result[name];
    else setOwn(result, name, applyMergePatch(Object.hasOwn(result, name) ? result[name] : undefined, value));
  }
  return result;
}
