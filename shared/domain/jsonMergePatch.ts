/**
 * JSON Merge Patch (RFC 7396): what a PATCH request does to a JSON value. Pure. Not to be confused
 * with the merge of two versions of an item (mergeItem.ts, policies/).
 */
import { isJsonObject, setOwn } from './jsonObject.js';

/** Apply `patch` to `target` as RFC 7396 says: objects merge recursively, `null` removes, anything else replaces. */
export function applyJsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch;
  const result: Record<string, unknown> = isJsonObject(target) ? { ...target } : {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete result[name];
    else
      setOwn(
        result,
        name,
        applyJsonMergePatch(Object.hasOwn(result, name) ? result[name] : undefined, value),
      );
  }
  return result;
}
