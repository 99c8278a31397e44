/** `/v1/items`: PUT, GET, DELETE one item; list a collection. */
import { Router, type Response } from 'express';
import { formatStamp } from '../../../shared/domain/hlc.js';
import type { ItemVersion } from '../../../shared/domain/resolve.js';
import { NotFoundError } from '../../../shared/errors/appError.js';
import { findItem, listItems } from '../../../shared/db/queries/item.js';
import {
  etagOf,
  parseCollection,
  parseEtagCondition,
  parseItemValue,
  parseKey,
  parseListQuery,
} from '../http/parsing.js';
import { writeItem, type WriteDeps } from '../useCases/writeItem.js';

export interface ItemsRouteDeps extends WriteDeps {
  /** Called after every committed write (wakes an in-process relay). */
  readonly onCommitted?: () => void;
}

export function itemsRouter(deps: ItemsRouteDeps): Router {
  const router = Router();

  router.put('/v1/items/:collection/:key', async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const ifMatch = parseEtagCondition(req.get('if-match'), 'If-Match');
    const ifNoneMatch = parseEtagCondition(req.get('if-none-match'), 'If-None-Match');
    const value = parseItemValue(req.body, req.get('content-type'));
    const { version, created } = await writeItem(deps, { collection, key, value, ifMatch, ifNoneMatch });
    deps.onCommitted?.();
    sendItem(res.status(created ? 201 : 200), deps.region, collection, key, version);
  });

  router.delete('/v1/items/:collection/:key', async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const ifMatch = parseEtagCondition(req.get('if-match'), 'If-Match');
    const { version } = await writeItem(deps, { collection, key, value: undefined, ifMatch });
    deps.onCommitted?.();
    res.setHeader('ETag', etagOf(version.hlc));
    res.status(204).end();
  });

  router.get('/v1/items/:collection/:key', async (req, res) => {
    const collection = parseCollection(req.params.collection);
    const key = parseKey(req.params.key);
    const item = await findItem(deps.pool, { collection, key });
    if (item === undefined || item.deleted)
      throw new NotFoundError(`item ${collection}/${key} does not exist`);
    const inm = parseEtagCondition(req.get('if-none-match'), 'If-None-Match');
    if (inm && (inm.any || inm.stamps.includes(formatStamp(item.hlc)))) {
      res.setHeader('ETag', etagOf(item.hlc));
      res.status(304).end();
      return;
    }
    sendItem(res, deps.region, collection, key, item);
  });

  router.get('/v1/items/:collection', async (req, res) => {
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

function itemBody(collection: string, key: string, v: ItemVersion) {
  return { collection, key, value: v.value, version: formatStamp(v.hlc), origin: v.hlc.region, vv: v.vv };
}

function sendItem(res: Response, region: string, collection: string, key: string, v: ItemVersion): void {
  res.setHeader('ETag', etagOf(v.hlc));
  res.setHeader('X-Hothot-Origin', v.hlc.region);
  res.setHeader('X-Hothot-Region', region);
  res.json(itemBody(collection, key, v));
}
