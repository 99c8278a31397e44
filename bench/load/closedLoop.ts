/**
 * Closed-loop HTTP load with autocannon (programmatic API): `connections` clients, each sending its
 * next request as soon as the previous answered.
 */
import autocannon from 'autocannon';
import type { HttpRequestSpec } from './openLoop.js';

export interface ClosedLoopOptions {
  readonly baseUrl: string;
  readonly connections: number;
  /** Run this long… */
  readonly durationS?: number;
  /** …or until this many requests were answered (takes precedence)… */
  readonly amount?: number;
  /** …but, with `amount`, no longer than this. */
  readonly maxDurationS?: number;
  readonly request: (i: number) => HttpRequestSpec;
  /** @default 30 */
  readonly timeoutS?: number;
  /** `Authorization` header of every request (the bench lab's admin key). */
  readonly authorization?: string;
}

export interface ClosedLoopResult {
  readonly connections: number;
  readonly ok: number;
  readonly non2xx: number;
  /** Connection errors and timeouts. */
  readonly errors: number;
  readonly durationS: number;
  /** Successful responses per second over the run. */
  readonly okPerS: number;
  /** Share of requests that failed (non-2xx or errors). */
  readonly errorRate: number;
  readonly latencyMs: {
    readonly p50: number;
    readonly p99: number;
    readonly mean: number;
    readonly max: number;
  };
  readonly statusCodes: Record<string, number>;
}

export async function closedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  let i = 0;
  const opts: autocannon.Options = {
    url: options.baseUrl,
    connections: options.connections,
    pipelining: 1,
    timeout: options.timeoutS ?? 30,
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.durationS ?? 10 }),
    requests: [
      {
        method: 'PUT',
        setupRequest: (req) => {
          const spec = options.request(i++);
          req.method = spec.method;
          req.path = spec.path;
          req.body = spec.body ?? '';
          req.headers = {
            'content-type': 'application/json',
            ...(options.authorization !== undefined ? { authorization: options.authorization } : {}),
          };
          return req;
        },
      },
    ],
  };
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const instance = autocannon(opts, (err, res) => {
      clearTimeout(timer);
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(res);
    });
    if (options.amount !== undefined && options.maxDurationS !== undefined) {
      timer = setTimeout(() => instance.stop(), options.maxDurationS * 1000);
    }
  });
  const okCount = result['2xx'];
  const total = okCount + result.non2xx + result.errors;
  const statusCodes: Record<string, number> = {};
  for (const [code, v] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = v.count ?? 0;
  return {
    connections: options.connections,
    ok: okCount,
    non2xx: result.non2xx,
    errors: result.errors,
    durationS: result.duration,
    okPerS: okCount / result.duration,
    errorRate: total === 0 ? 1 : (result.non2xx + result.errors) / total,
    latencyMs: {
      p50: result.latency.p50,
      p99: result.latency.p99,
      mean: result.latency.mean,
      max: result.latency.max,
    },
    statusCodes,
  };
}
