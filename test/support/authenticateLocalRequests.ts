/**
 * vitest setup file of the `integration` project (runs in each test worker before its test file):
 * every `fetch` to 127.0.0.1 or localhost that carries no `Authorization` header of its own gets
 * `Authorization: Bearer <the run's admin key>` (test/support/globalSetup.ts), so tests call the API
 * as they always did whatever SECURITY_MODE is. A test that wants another credential, or none,
 * sets its own header or uses `node:http` (which this does not touch: see `authorizationHeader()` in
 * harness.ts for raw requests that need the key).
 *
 * Also puts the key in this worker's `HOTHOT_LAB_ADMIN_KEY`, which the labs, CLIs and region
 * processes the tests start inherit.
 */
import { inject } from 'vitest';
import { getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';

const INSTALLED = Symbol.for('hothot.test.authenticateLocalRequests');
const LOCAL_ORIGIN = /^https?:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/|$)/;

const adminKey = process.env.HOTHOT_LAB_ADMIN_KEY ?? inject('adminKey');
process.env.HOTHOT_LAB_ADMIN_KEY = adminKey;

/** Whether the request's headers (array of pairs, flat array, object or iterable) name `authorization`. */
function hasAuthorization(headers: Dispatcher.DispatchOptions['headers']): boolean {
  if (headers === undefined || headers === null) return false;
  if (Array.isArray(headers)) {
    const flat = headers.flat() as unknown[];
    for (let i = 0; i < flat.length; i += 2)
      if (String(flat[i]).toLowerCase() === 'authorization') return true;
    return false;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [name] of headers as Iterable<[string, unknown]>)
      if (name.toLowerCase() === 'authorization') return true;
    return false;
  }
  return Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
}

function withAuthorization(
  headers: Dispatcher.DispatchOptions['headers'],
  value: string,
): Dispatcher.DispatchOptions['headers'] {
  if (headers === undefined || headers === null) return { authorization: value };
  if (Array.isArray(headers)) {
    return [...headers.flat<string[]>(), 'authorization', value];
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function')
    return [...(headers as Iterable<[string, string]>)].flat().concat(['authorization', value]);
  return { ...(headers as Record<string, string>), authorization: value };
}

const addAdminKey: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (options, handler) => {
  const origin = String(options.origin ?? '');
  if (!LOCAL_ORIGIN.test(origin) || hasAuthorization(options.headers)) return dispatch(options, handler);
  return dispatch({ ...options, headers: withAuthorization(options.headers, `Bearer ${adminKey}`) }, handler);
};

const marked = globalThis as { [INSTALLED]?: true };
if (marked[INSTALLED] !== true) {
  setGlobalDispatcher(getGlobalDispatcher().compose(addAdminKey));
  marked[INSTALLED] = true;
}
