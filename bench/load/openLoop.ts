/**
 * Open-loop HTTP load: requests start on a Poisson schedule at a fixed rate, whether or not earlier
 * ones have finished, and each latency is measured from the request's *scheduled* start — the same
 * semantics as `pgbench -R` (whose latency also counts from the scheduled start). A slow server
 * therefore shows up as latency instead of silently lowering the rate (no coordinated omission).
 *
 * Why not autocannon's `overallRate`: autocannon gives each connection a per-second quota that it
 * fires back to back and then idles until the next one-second tick — bursts, not a steady rate —
 * and measures latency from the actual send.
 */
import http from 'node:http';
import { seededRandom } from '../../infra/lab/seededRandom.js';

export interface HttpRequestSpec {
  readonly method: 'PUT' | 'GET' | 'DELETE';
  readonly path: string;
  readonly body?: string;
}

export interface OpenLoopOptions {
  /** e.g. http://127.0.0.1:8081 */
  readonly baseUrl: string;
  /** Requests per second (mean of the Poisson process). */
  readonly rate: number;
  readonly durationMs: number;
  /** Sockets kept open (keep-alive); a request waits for a free one. */
  readonly connections: number;
  readonly request: (i: number) => HttpRequestSpec;
  /** Requests in flight or waiting beyond which new ones are dropped (counted). @default max(2000, 5 × rate) */
  readonly maxOutstanding?: number;
  /** @default 30000 */
  readonly timeoutMs?: number;
  /** After the last scheduled request, wait this long for stragglers, then count them as failed. @default 15000 */
  readonly drainTimeoutMs?: number;
  /** Seed of the arrival process. @default 1 */
  readonly seed?: number;
  /** `Authorization` header of every request (the bench lab's admin key). */
  readonly authorization?: string;
}

export interface OpenLoopResult {
  readonly scheduled: number;
  readonly ok: number;
  readonly failed: number;
  readonly dropped: number;
  /** Scheduled start → response end, ms, of the successful requests. */
  readonly latenciesMs: number[];
  /** Scheduled start → actual send, ms (time waiting for a free socket or the timer). */
  readonly scheduleLagMs: number[];
  /** Successful responses per second since the start (index = second). */
  readonly okPerSecond: number[];
  readonly failedPerSecond: number[];
  /** Wall-clock start (ms since the epoch). */
  readonly startedAt: number;
  readonly elapsedMs: number;
  /** Status codes of failed responses, and error messages, with counts. */
  readonly failures: Record<string, number>;
}

export async function openLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const url = new URL(options.baseUrl);
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: options.connections,
    maxFreeSockets: options.connections,
  });
  const random = seededRandom(options.seed ?? 1);
  const maxOutstanding = options.maxOutstanding ?? Math.max(2000, Math.ceil(options.rate * 5));
  const timeoutMs = options.timeoutMs ?? 30_000;
  const meanGapMs = 1000 / options.rate;

  const latenciesMs: number[] = [];
  const scheduleLagMs: number[] = [];
  const okPerSecond: number[] = [];
  const failedPerSecond: number[] = [];
  const failures: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let dropped = 0;
  let scheduled = 0;
  let outstanding = 0;
  let allDone: (() => void) | undefined;

  const startedAt = Date.now();
  const t0 = performance.now();
  const bump = (arr: number[], at: number) => {
    const s = Math.floor((at - t0) / 1000);
    while (arr.length <= s) arr.push(0);
    arr[s]! += 1;
  };
  let closed = false;
  const finish = (scheduledAt: number, error: string | undefined) => {
    if (closed) return; // aborted at the end of the run: already counted
    const now = performance.now();
    outstanding -= 1;
    if (error === undefined) {
      ok += 1;
      latenciesMs.push(now - scheduledAt);
      bump(okPerSecond, now);
    } else {
      failed += 1;
      failures[error] = (failures[error] ?? 0) + 1;
      bump(failedPerSecond, now);
    }
    if (outstanding === 0) allDone?.();
  };

  const send = (i: number, scheduledAt: number) => {
    const spec = options.request(i);
    const body = spec.body ?? '';
    outstanding += 1;
    let settled = false;
    const settle = (error: string | undefined) => {
      if (settled) return;
      settled = true;
      finish(scheduledAt, error);
    };
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: spec.method,
        path: spec.path,
        headers: {
          ...(body === ''
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
          ...(options.authorization !== undefined ? { authorization: options.authorization } : {}),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          settle(res.statusCode !== undefined && res.statusCode < 300 ? undefined : `HTTP ${res.statusCode}`),
        );
        res.on('error', (e) => settle(e.message));
      },
    );
    req.on('socket', () => scheduleLagMs.push(performance.now() - scheduledAt));
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout ${timeoutMs} ms`)));
    req.on('error', (e) => settle(e.message));
    req.end(body);
  };

  let next = t0;
  for (;;) {
    const now = performance.now();
    while (next <= now && next - t0 < options.durationMs) {
      if (outstanding >= maxOutstanding) dropped += 1;
      else send(scheduled, next);
      scheduled += 1;
      next += -Math.log(1 - random()) * meanGapMs;
    }
    if (next - t0 >= options.durationMs) break;
    const wait = next - performance.now();
    // setTimeout cannot wait less than ~1 ms: spin on setImmediate for the last stretch.
    await new Promise<void>((resolve) =>
      wait > 1.5 ? setTimeout(resolve, Math.floor(wait - 0.5)) : setImmediate(resolve),
    );
  }
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      allDone = resolve;
      setTimeout(resolve, options.drainTimeoutMs ?? 15_000);
    });
  }
  const stragglers = outstanding;
  closed = true;
  agent.destroy(); // aborts stragglers: each settles once as failed
  if (stragglers > 0) {
    failures['not answered before the end of the run'] = stragglers;
    failed += stragglers;
  }
  return {
    scheduled,
    ok,
    failed,
    dropped,
    latenciesMs,
    scheduleLagMs,
    okPerSecond,
    failedPerSecond,
    startedAt,
    elapsedMs: performance.now() - t0,
    failures,
  };
}
