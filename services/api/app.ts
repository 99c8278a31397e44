/** The region's HTTP API as an Express app (no listen: the composition root owns the server). */
import { isUtf8 } from 'node:buffer';
import express, { type Express, type RequestHandler, type Response } from 'express';
import { AppError, BadRequestError } from '../../shared/errors/appError.js';
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';
import type { Logger } from '../../shared/logging/logger.js';
import { withTimeout } from '../../shared/lifecycle/withTimeout.js';
import { authenticate, type Authenticator, type Principal } from './http/auth.js';
import { errorHandler, notFoundHandler } from './http/errorHandler.js';
import { docsRouter } from './openapi/docsRouter.js';
import { digestRouter } from './routes/digest.js';
import { itemsRouter, type ItemsRouteDeps } from './routes/items.js';
import { statusRouter, type StatusRouteDeps } from './routes/status.js';

export interface AppDeps extends ItemsRouteDeps, StatusRouteDeps {
  readonly log: Logger;
  readonly maxBodyBytes: number;
  readonly metrics: Registry;
  /** Who is calling (API key, JWT, or anyone in insecure-dev); routes require scopes of it. */
  readonly auth: Authenticator;
  /** The region whose snapshot this one awaits before it serves data (a region being added), if any. */
  readonly awaitingSnapshot: () => string | undefined;
  /** Whether the region is still starting (migrations not applied, the clock not set from the data). */
  readonly starting: () => boolean;
  /** Resolves once it no longer is. */
  readonly untilStarted: () => Promise<void>;
}

/**
 * How long a request that arrives while the region is starting waits for it (a restart's migrations
 * take a fraction of a second once PostgreSQL answers), before it is answered 503 `starting`.
 */
export const STARTING_WAIT_MS = 2_000;

/** Paths polled by launchers, load balancers and Prometheus; their request logs stay at debug. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** What a region awaiting its initial snapshot still answers: liveness, metrics and its status. */
const PATHS_WHILE_LOADING = new Set(['/healthz', '/metrics', '/v1/status']);

function refuse(res: Response, error: { code: string; message: string }): void {
  res.setHeader('Retry-After', '1');
  res.status(503).json({ error });
}

/**
 * While the region is starting (until migrations ran and the clock observed the greatest stored
 * stamp: before that a write could be stamped below a stored version, and a read or an API key's
 * check could meet a schema not yet migrated), a request waits up to {@link STARTING_WAIT_MS} for it,
 * then gets 503 `starting`; the probes' paths answer at once (`/readyz` itself says `starting`). Goes
 * before authentication, which itself reads the database.
 */
function waitWhileStarting(deps: Pick<AppDeps, 'starting' | 'untilStarted'>): RequestHandler {
  return (req, res, next) => {
    if (!deps.starting() || PROBE_PATHS.has(req.path)) {
      next();
      return;
    }
    withTimeout(deps.untilStarted(), STARTING_WAIT_MS).then(
      () => next(),
      () =>
        refuse(res, {
          code: 'starting',
          message: 'the region is starting (migrations not applied yet); retry shortly',
        }),
    );
  };
}

/**
 * 503 `loading_snapshot` for `/readyz` and every data route while the region awaits its initial
 * snapshot (its tables are empty or half loaded: an answer from them would be wrong, a write would be
 * lost in the copy's merge or stop it from loading the empty table in bulk).
 */
function refuseWhileLoadingSnapshot(awaiting: () => string | undefined): RequestHandler {
  return (req, res, next) => {
    const source = awaiting();
    if (source === undefined || PATHS_WHILE_LOADING.has(req.path)) {
      next();
      return;
    }
    refuse(res, {
      code: 'loading_snapshot',
      message: `this region is being added: it serves data once the snapshot of ${source} is loaded; retry shortly`,
    });
  };
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // ETags are item versions, set by the routes
  app.set('query parser', 'simple');

  const requests = new Counter({
    name: 'hothot_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [deps.metrics],
  });
  const latency = new Histogram({
    name: 'hothot_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [deps.metrics],
  });
  // Metrics and the access log, from one 'finish' listener. A log line per request only where it
  // says something: failures at error, client errors at info, the rest (and every probe) at
  // debug — built only when that level is on. (pino-http did this before; it built a child logger
  // per request whatever the level, which showed in the V8 profile under write load: figures in
  // bench/README.md, "Figures quoted from code comments".)
  const accessLog = deps.log.child({ component: 'api' });
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    // Which region answered, on every response (a client behind the front door can tell).
    res.setHeader('X-Hothot-Region', deps.region);
    res.on('finish', () => {
      const elapsedNs = process.hrtime.bigint() - started;
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      requests.inc({ method: req.method, route, status: String(res.statusCode) });
      latency.observe({ method: req.method, route }, Number(elapsedNs) / 1e9);
      const level = PROBE_PATHS.has(req.path)
        ? 'debug'
        : res.statusCode >= 500
          ? 'error'
          : res.statusCode >= 400
            ? 'info'
            : 'debug';
      if (!accessLog.isLevelEnabled(level)) return;
      // Who it was (a key id or a JWT subject: never a credential), when authenticated.
      const principal = (res.locals as { principal?: Principal }).principal;
      accessLog[level](
        {
          req: { method: req.method, url: req.originalUrl },
          ...(principal !== undefined ? { principal: `${principal.kind}:${principal.id}` } : {}),
          res: { statusCode: res.statusCode },
          responseTime: Math.round(Number(elapsedNs) / 1e5) / 10,
        },
        'request completed',
      );
    });
    next();
  });
  // The OpenAPI document and its reference page are open: they describe the API, hold no data.
  app.use(docsRouter({ historyMaxVersions: deps.historyMaxVersions }));
  // Before the body is parsed and before routing: without valid credentials nothing else runs
  // (401 for every path but /healthz and /readyz); each route then requires its scope (403).
  app.use(waitWhileStarting(deps));
  app.use(authenticate(deps.auth));
  app.use(refuseWhileLoadingSnapshot(deps.awaitingSnapshot));
  app.use(refuseDeclaredOversizeBody(deps.maxBodyBytes));
  app.use(
    express.json({
      limit: deps.maxBodyBytes,
      strict: false,
      type: ['application/json', 'application/*+json'],
      verify: verifyJsonBytes,
    }),
  );
  app.use(itemsRouter(deps));
  app.use(statusRouter(deps));
  app.use(digestRouter(deps));
  app.use(notFoundHandler);
  app.use(errorHandler(deps.log.child({ component: 'api' })));
  return app;
}

/**
 * A body whose declared Content-Length is over the limit is refused at once, and the connection
 * closed: body-parser would wait for bytes the client may never send before answering.
 */
function refuseDeclaredOversizeBody(maxBodyBytes: number): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.headers['content-length']);
    if (!Number.isFinite(declared) || declared <= maxBodyBytes) {
      next();
      return;
    }
    res.setHeader('Connection', 'close');
    next(new AppError('body_too_large', 413, `the body is larger than the limit of ${maxBodyBytes} bytes`));
  };
}

/**
 * Bytes body-parser would quietly change: an empty JSON body (which it parses as `{}`) and invalid
 * UTF-8 (which it decodes to U+FFFD). Both are refused with 400.
 */
function verifyJsonBytes(_req: unknown, _res: unknown, buf: Buffer): void {
  if (buf.length === 0)
    throw new BadRequestError(
      'invalid_value',
      'the body is empty: send a JSON value (use DELETE to remove an item)',
    );
  if (!isUtf8(buf)) throw new BadRequestError('malformed_json', 'the body is not valid UTF-8');
}
