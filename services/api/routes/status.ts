/** Health, readiness, status, conflicts and metrics. */
import { Router } from 'express';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { listConflicts } from '../../../shared/db/queries/conflict.js';
import { Scope } from '../../../shared/security/apiKey.js';
import { assertCollection, principalOf, requireScope } from '../http/auth.js';
import { parseConflictsQuery } from '../http/parsing.js';
import { readConsistency, type ConsistencyDeps } from '../useCases/readConsistency.js';
import { readStatus, type StatusDeps } from '../useCases/readStatus.js';
import { withTimeout } from '../../../shared/lifecycle/withTimeout.js';

export interface StatusRouteDeps extends StatusDeps, ConsistencyDeps {
  readonly pool: pg.Pool;
  /** True once migrations ran; readiness also needs PostgreSQL to answer. */
  readonly isReady: () => boolean;
  readonly metrics: Registry;
  /**
   * The region's metrics text when it runs several processes (summed over them by the primary);
   * undefined: this process's registry is the region's.
   */
  readonly regionMetrics?: () => Promise<string>;
}

const READINESS_TIMEOUT_MS = 2000;

export function statusRouter(deps: StatusRouteDeps): Router {
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    if (!deps.isReady()) {
      res.status(503).json({
        error: { code: 'starting', message: 'the region is starting (migrations not applied yet)' },
      });
      return;
    }
    try {
      await withTimeout(deps.pool.query('SELECT 1'), READINESS_TIMEOUT_MS);
      res.json({ status: 'ready', region: deps.region });
    } catch {
      res.status(503).json({
        error: { code: 'database_unavailable', message: "this region's PostgreSQL does not answer" },
      });
    }
  });

  // /healthz and /readyz are open (auth.ts OPEN_PATHS); the rest needs a scope.
  router.get('/v1/status', requireScope(Scope.Admin), async (_req, res) => {
    const [status, consistency] = await Promise.all([readStatus(deps), readConsistency(deps)]);
    res.json({ ...status, ...consistency });
  });

  // Conflicts hold item values: read scope; a client limited to collections sees only theirs.
  router.get('/v1/conflicts', requireScope(Scope.Read), async (req, res) => {
    const { collection, key, since, after, limit } = parseConflictsQuery(req.query);
    if (collection !== undefined) assertCollection(res, collection, Scope.Read);
    const limitedTo = principalOf(res).collections;
    const rows = await listConflicts(deps.pool, {
      collection,
      collections: limitedTo === null ? undefined : [...limitedTo],
      key,
      since,
      afterId: after,
      limit,
    });
    res.json({
      conflicts: rows.map((c) => ({ ...c, detectedAt: c.detectedAt.toISOString() })),
      next: rows.length === limit ? rows[rows.length - 1]!.id : null,
    });
  });

  router.get('/metrics', requireScope(Scope.Admin), async (_req, res) => {
    res.setHeader('Content-Type', deps.metrics.contentType);
    res.send(await (deps.regionMetrics?.() ?? deps.metrics.metrics()));
  });

  return router;
}
