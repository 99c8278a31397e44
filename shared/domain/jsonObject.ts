/** A JSON object as parsed from a request or an event: how to recognise one and set its members. Pure. */

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
