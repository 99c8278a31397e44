/** The region's HTTP API as an Express app (no listen: the composition root owns the server). */
import express, { type Express } from 'express';
import type { Registry } from 'prom-client';
import { Counter, Histogram } from 'prom-client';
import type { Logger } from '../../shared/logging/logger.js';
import { errorHandler, notFoundHandler } from './http/errorHandler.js';
import { itemsRouter, type ItemsRouteDeps } from './routes/items.js';
import { statusRouter, type StatusRouteDeps } from './routes/status.js';

export interface AppDeps extends ItemsRouteDeps, StatusRouteDeps {
  readonly log: Logger;
  readonly maxBodyBytes: number;
  readonly metrics: Registry;
}

/** Paths polled by launchers, load balancers and Prometheus; their request logs stay at debug. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

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
  // per request whatever the level: ~3 % of the samples under write load as self time, ~9 % with
  // what it called, in the V8 profile.)
  const accessLog = deps.log.child({ component: 'api' });
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
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
      accessLog[level](
        {
          req: { method: req.method, url: req.originalUrl },
          res: { statusCode: res.statusCode },
          responseTime: Math.round(Number(elapsedNs) / 1e5) / 10,
        },
        'request completed',
      );
    });
    next();
  });
  app.use(
    express.json({
      limit: deps.maxBodyBytes,
      strict: false,
      type: ['application/json', 'application/*+json'],
    }),
  );
  app.use(itemsRouter(deps));
  app.use(statusRouter(deps));
  app.use(notFoundHandler);
  app.use(errorHandler(deps.log.child({ component: 'api' })));
  return app;
}
