/**
 * The write path: one PostgreSQL transaction locks the item, checks the preconditions, stamps the
 * HLC, bumps the version vector, writes the row and one outbox row. It never waits on Kafka.
 */
import type pg from 'pg';
import type { HybridLogicalClock } from '../../../shared/domain/hlc.js';
import { formatStamp } from '../../../shared/domain/hlc.js';
import type { ItemVersion } from '../../../shared/domain/resolve.js';
import { incrementVector } from '../../../shared/domain/versionVector.js';
import { NotFoundError, PreconditionFailedError } from '../../../shared/errors/appError.js';
import {
  findItem,
  lockItems,
  upsertItems,
  type ItemKey,
  type StoredItem,
} from '../../../shared/db/queries/item.js';
import { insertOutbox } from '../../../shared/db/queries/outbox.js';
import { withTransaction } from '../../../shared/db/withTransaction.js';
import type { ChangeEvent } from '../../../shared/kafka/envelope.js';
import { itemMessageKey } from '../../../shared/kafka/topics.js';
import { etagOf, type EtagCondition } from '../http/parsing.js';

export interface WriteDeps {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly region: string;
}

export interface WriteRequest extends ItemKey {
  /** The new value; `undefined` for a delete. */
  readonly value: unknown;
  readonly ifMatch?: EtagCondition | undefined;
  readonly ifNoneMatch?: EtagCondition | undefined;
}

export interface WriteResult {
  readonly version: ItemVersion;
  /** True when the item did not exist (or was a tombstone) before. */
  readonly created: boolean;
}

export async function writeItem(deps: WriteDeps, req: WriteRequest): Promise<WriteResult> {
  const isDelete = req.value === undefined;
  return withTransaction(deps.pool, async (client) => {
    await lockItems(client, [req]);
    const current = await findItem(client, req);
    const live = current !== undefined && !current.deleted ? current : undefined;
    checkPreconditions(live, req);
    if (isDelete && live === undefined)
      throw new NotFoundError(`item ${req.collection}/${req.key} does not exist`);

    // Observe the stored stamp first: the new version's stamp is greater, so a causally later
    // write always wins the total order too (another process of this region may have written it).
    if (current) deps.clock.observe(current.hlc);
    const hlc = deps.clock.now();
    const version: ItemVersion = {
      value: isDelete ? null : req.value,
      deleted: isDelete,
      hlc,
      vv: incrementVector(current?.vv ?? {}, deps.region),
    };
    const event: ChangeEvent = {
      v: 1,
      type: 'change',
      origin: deps.region,
      collection: req.collection,
      key: req.key,
      value: version.value,
      deleted: version.deleted,
      hlc,
      vv: version.vv,
      writtenAt: Date.now(),
    };
    await upsertItems(client, [{ collection: req.collection, key: req.key, ...version }]);
    await insertOutbox(client, itemMessageKey(req.collection, req.key), event);
    return { version, created: live === undefined };
  });
}

function checkPreconditions(live: StoredItem | undefined, req: WriteRequest): void {
  const etag = live === undefined ? undefined : formatStamp(live.hlc);
  const details = { currentEtag: live === undefined ? null : etagOf(live.hlc) };
  if (req.ifMatch) {
    const ok = req.ifMatch.any ? live !== undefined : etag !== undefined && req.ifMatch.stamps.includes(etag);
    if (!ok) {
      throw new PreconditionFailedError(
        live === undefined
          ? `If-Match failed: item ${req.collection}/${req.key} does not exist`
          : `If-Match failed: the current version of ${req.collection}/${req.key} is ${etagOf(live.hlc)}`,
        { details },
      );
    }
  }
  if (req.ifNoneMatch) {
    const matches = req.ifNoneMatch.any
      ? live !== undefined
      : etag !== undefined && req.ifNoneMatch.stamps.includes(etag);
    if (matches) {
      throw new PreconditionFailedError(
        req.ifNoneMatch.any
          ? `If-None-Match: * failed: item ${req.collection}/${req.key} already exists`
          : `If-None-Match failed: the current version of ${req.collection}/${req.key} is ${etagOf(live!.hlc)}`,
        { details },
      );
    }
  }
}
