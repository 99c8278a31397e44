/**
 * `/v1/items`: PUT, PATCH, DELETE, increment and GET one item, its history, and listings.
 * Every write answers with a session token; a read that presents one waits for this region to
 * catch up with it (bounded), never answering with older data.
 */
import { Router, type Request, type Response } from 'express';
import { formatStamp } from '../../../shared/domain/hlc.js';
import type { PolicyVersion } from '../../../shared/domain/mergeItem.js';
import type { WriteOperation } from '../../../shared/domain/policies/policyRules.js';
import { NotFoundError } from '../../../shared/errors/appError.js';
import { findItem, listItems } from '../../../shared/db/queries/item.js';
import { readHistory } from '../../../shared/db/queries/itemHistory.js';
import { Scope } from '../../../shared/security/apiKey.js';
import { requireScope } from '../http/auth.js';
import {
  etagOf,
  parseCollection,
  parseEtagCondition,
  parseIncrement,
  parseItemValue,
  parseKey,
  parseLimit,
  parseListQuery,
} from '../http/parsing.js';
import {
  SESSION_HEADER,
  extendSessionToken,
  formatSessionToken,
  parseSessionToken,
} from '../http/sessionToken.js';
import { awaitSession, type SessionDeps } from '../useCases/awaitSession.js';
import { writeItem, type WriteDeps } from '../useCases/writeItem.js';

export interface ItemsRouteDeps extends WriteDeps, SessionDeps {
  /** Called after every committed write (wakes an in-process relay). */
  readonly onCommitted?: () => void;
  /** Versions returned by the history endpoint at most. */
  readonly historyMaxVersions: number;
  /** MAC keys of session tokens: the first seals, every one opens (see http/sessionToken.ts). */
  readonly sessionKeys: readonly Buffer[];
}

export function itemsRouter(deps: ItemsRouteDeps): Router {
  const router = Router();
  const { sessionKeys } = deps;
  // Every route names its scope; a key limited to collections may use only those (403 otherwise).
  const canRead = requireScope(Scope.Read, { collectionParam: 'collection' });
  const canWrite = requireScope(Scope.Write, { collectionParam: 'collection' });

  async function write(
    req: Request,
    res: Response,
    op: (req: Request) => WriteOperation,
    conditional: 'full' | 'match' | 'none',
  ) {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const ifMatch = conditional === 'none' ? undefined : parseEtagCondition(req.get('if-match'), 'If-Match');
    const ifNoneMatch =
      conditional === 'full' ? parseEtagCondition(req.get('if-none-match'), 'If-None-Match') : undefined;
    const token = parseSessionToken(req.get(SESSION_HEADER), sessionKeys);
    const operation = op(req);
    const { version, created } = await writeItem(deps, {
      collection,
      key,
      op: operation,
      ifMatch,
      ifNoneMatch,
    });
    deps.onCommitted?.();
    res.setHeader(
      'Hothot-Session',
      formatSessionToken(extendSessionToken(token, deps.region, version.hlc.wall), sessionKeys),
    );
    if (operation.kind === 'delete') {
      res.setHeader('ETag', etagOf(version.hlc));
      res.status(204).end();
      return;
    }
    sendItem(res.status(created ? 201 : 200), collection, key, version);
  }

  router.put('/v1/items/:collection/:key', canWrite, (req, res) =>
    write(req, res, (r) => ({ kind: 'put', value: parseItemValue(r.body, r.get('content-type')) }), 'full'),
  );
  router.patch('/v1/items/:collection/:key', canWrite, (req, res) =>
    write(
      req,
      res,
      (r) => ({ kind: 'patch', patch: parseItemValue(r.body, r.get('content-type')) }),
      'match',
    ),
  );
  router.delete('/v1/items/:collection/:key', canWrite, (req, res) =>
    write(req, res, () => ({ kind: 'delete' }), 'match'),
  );
  router.post('/v1/items/:collection/:key/increment', canWrite, (req, res) =>
    write(
      req,
      res,
      (r) => ({ kind: 'increment', ...parseIncrement(parseItemValue(r.body, r.get('content-type'))) }),
      'none',
    ),
  );

  router.get('/v1/items/:collection/:key/history', canRead, async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const limit = parseLimit(req.query.limit, deps.historyMaxVersions, deps.historyMaxVersions);
    const versions = await readHistory(deps.pool, { collection, key }, limit);
    if (versions.length === 0)
      throw new NotFoundError(`item ${collection}/${key} has no history in region ${deps.region}`);
    res.json({
      collection,
      key,
      region: deps.region,
      versions: versions.map((v) => ({ ...v, recordedAt: v.recordedAt.toISOString() })),
    });
  });

  router.get('/v1/items/:collection/:key', canRead, async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const inm = parseEtagCondition(req.get('if-none-match'), 'If-None-Match');
    const token = parseSessionToken(req.get(SESSION_HEADER), sessionKeys);
    await awaitSession(deps, token);
    const item = await findItem(deps.pool, { collection, key });
    if (item === undefined || item.deleted)
      throw new NotFoundError(`item ${collection}/${key} does not exist`);
    res.setHeader(
      'Hothot-Session',
      formatSessionToken(extendSessionToken(token, item.hlc.region, item.hlc.wall), sessionKeys),
    );
    if (inm && (inm.any || inm.stamps.includes(formatStamp(item.hlc)))) {
      res.setHeader('ETag', etagOf(item.hlc));
      res.status(304).end();
      return;
    }
    sendItem(res, collection, key, item);
  });

  router.get('/v1/items/:collection', canRead, async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const { after, limit } = parseListQuery(req.query);
    const rows = await listItems(deps.pool, collection, after, limit);
    res.json({
      items: rows.map((r) => itemBody(r.collection, r.key, r)),
      next: rows.length === limit ? rows[rows.length - 1]!.key : null,
    });
  });

  return router;
}

function itemBody(collection: string, key: string, v: PolicyVersion) {
  return {
    collection,
    key,
    value: v.value,
    version: formatStamp(v.hlc),
    origin: v.hlc.region,
    vv: v.vv,
    policy: v.policy,
  };
}

function sendItem(res: Response, collection: string, key: string, v: PolicyVersion): void {
  res.setHeader('ETag', etagOf(v.hlc));
  res.setHeader('X-Hothot-Origin', v.hlc.region); // X-Hothot-Region: app.ts, on every response
  // What res.json sends, without Express's send() machinery (content-type parsing, freshness and
  // ETag checks), which a perf profile showed costing CPU on every write (figures: bench/README.md,
  // "Figures quoted from code comments"). The body is always JSON.
  const body = JSON.stringify(itemBody(collection, key, v));
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
