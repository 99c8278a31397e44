/**
 * The write path: one PostgreSQL transaction locks the item, checks the preconditions, stamps the
 * HLC, bumps the version vector, builds the new version under the collection's merge policy,
 * writes the row, its history entry and one outbox row (one statement). Two round trips: BEGIN +
 * lock + read, then write + COMMIT (pipelined, see withTransaction). It never waits on Kafka.
 */
import type pg from 'pg';
import type { HybridLogicalClock } from '../../../shared/domain/hlc.js';
import { formatStamp } from '../../../shared/domain/hlc.js';
import { isJsonObject } from '../../../shared/domain/jsonObject.js';
import { policyOf, type Policy, type PolicyMap } from '../../../shared/domain/mergePolicy.js';
import {
  WriteRefusedError,
  type PolicyRules,
  type PolicyVersion,
  type WriteOperation,
  type WriteStamp,
} from '../../../shared/domain/policies/policyRules.js';
import { POLICY_REGISTRY } from '../../../shared/domain/policies/registry.js';
import { incrementVector } from '../../../shared/domain/versionVector.js';
import { findValueProblem } from '../../../shared/domain/itemRules.js';
import {
  AppError,
  BadRequestError,
  NotFoundError,
  PreconditionFailedError,
} from '../../../shared/errors/appError.js';
import { findItem, lockItems, type ItemKey, type StoredItem } from '../../../shared/db/queries/item.js';
import { storeLocalWrite } from '../../../shared/db/queries/localWrite.js';
import { allInOrder, withTransaction } from '../../../shared/db/withTransaction.js';
import { encodeChangeEvent } from '../../../shared/kafka/envelope.js';
import { fitsInOneBatch, maxValueBytes } from '../../../shared/kafka/messageSize.js';
import { itemMessageKey } from '../../../shared/kafka/topics.js';
import { etagOf, type EtagCondition } from '../http/parsing.js';

export interface WriteDeps {
  readonly pool: pg.Pool;
  readonly clock: HybridLogicalClock;
  readonly region: string;
  readonly policies: PolicyMap;
  /** The largest record batch Kafka takes from this region: a write whose event would not fit is refused. */
  readonly messageLimit: { readonly bytes: number };
}

export interface WriteRequest extends ItemKey {
  readonly op: WriteOperation;
  readonly ifMatch?: EtagCondition | undefined;
  readonly ifNoneMatch?: EtagCondition | undefined;
}

export interface WriteResult {
  readonly version: PolicyVersion;
  /** True when the item did not exist (or was a tombstone) before. */
  readonly created: boolean;
}

export async function writeItem(deps: WriteDeps, req: WriteRequest): Promise<WriteResult> {
  const policy = policyOf(deps.policies, req.collection);
  const rules = POLICY_REGISTRY[policy];
  checkOperationAllowed(policy, rules, req);
  return withTransaction(deps.pool, async (client, tx) => {
    // One round trip: BEGIN, the lock and the read leave together; the read is its own statement
    // behind the lock, so it sees the row as the lock holder left it.
    const [, current] = await allInOrder([lockItems(client, [req]), findItem(client, req)]);
    const live = current !== undefined && !current.deleted ? current : undefined;
    checkPreconditions(live, req);
    if (req.op.kind === 'delete' && live === undefined)
      throw new NotFoundError(`item ${req.collection}/${req.key} does not exist`);
    if (current !== undefined && current.policy !== policy) {
      throw new AppError(
        'policy_conflict',
        409,
        `item ${req.collection}/${req.key} was written under policy ${current.policy}, but the collection is now ${policy}`,
      );
    }

    // Observe the stored stamp first: the new version's stamp is greater, so a causally later
    // write always wins the total order too (another process of this region may have written it).
    if (current) deps.clock.observe(current.hlc);
    const hlc = deps.clock.now();
    const vv = incrementVector(current?.vv ?? {}, deps.region);
    const version = buildVersion(rules, current, req.op, { hlc, vv, region: deps.region });
    // A patch is checked on its own when parsed; what it makes of the stored value is checked here,
    // against the same limits a PUT of that value would meet.
    if (req.op.kind === 'patch' && !version.deleted) {
      const problem = findValueProblem(version.value, { what: 'the patched value' });
      if (problem !== undefined)
        throw new BadRequestError('invalid_value', `${problem}: the patch is refused, nothing was changed`);
    }
    const msgKey = itemMessageKey(req.collection, req.key);
    const payload = encodeChangeEvent({
      origin: deps.region,
      collection: req.collection,
      key: req.key,
      version,
      writtenAt: Date.now(),
    });
    checkPublishable(deps.messageLimit.bytes, req, msgKey, payload);
    // The second round trip: row + history + outbox (one statement) and COMMIT.
    await tx.commitWith(() => storeLocalWrite(client, req, version, { msgKey, payload }));
    return { version, created: live === undefined };
  });
}

/** The policy's new version; a write the policy refuses is answered with the refusal's code. */
function buildVersion(
  rules: PolicyRules,
  current: StoredItem | undefined,
  op: WriteOperation,
  stamp: WriteStamp,
): PolicyVersion {
  try {
    return rules.build(current, op, stamp);
  } catch (e) {
    if (!(e instanceof WriteRefusedError)) throw e;
    switch (e.code) {
      case 'invalid_value':
        throw new BadRequestError(e.code, e.message);
      case 'counter_overflow':
        throw new AppError(e.code, 422, e.message);
    }
  }
}

/** Reject operations the collection's policy does not support, before touching the database. */
function checkOperationAllowed(policy: Policy, rules: PolicyRules, req: WriteRequest): void {
  const op = req.op;
  if (!rules.operations.includes(op.kind)) {
    // Only the counter policy takes increments, and it takes nothing else.
    throw new AppError(
      'policy_conflict',
      409,
      op.kind === 'increment'
        ? `collection ${req.collection} uses the ${policy} policy: increment needs a collection declared counter in COLLECTION_POLICIES`
        : `collection ${req.collection} uses the ${policy} policy: use POST /v1/items/${req.collection}/<key>/increment`,
    );
  }
  const problem = rules.findOperationProblem(op);
  if (problem !== undefined)
    throw new BadRequestError(
      'invalid_value',
      `collection ${req.collection} uses the ${policy} policy: ${problem}`,
    );
  if (op.kind === 'patch' && !isJsonObject(op.patch)) {
    throw new BadRequestError('invalid_value', 'a JSON Merge Patch must be a JSON object');
  }
}

/**
 * Refuse (413, before anything is written) a write whose change event could never be published:
 * Kafka refuses a record batch over its limit whole, and such a row would wait in the outbox for ever.
 */
function checkPublishable(maxMessageBytes: number, req: WriteRequest, msgKey: string, payload: string): void {
  const keyBytes = Buffer.byteLength(msgKey);
  const eventBytes = Buffer.byteLength(payload);
  if (fitsInOneBatch(keyBytes, eventBytes, maxMessageBytes)) return;
  throw new AppError(
    'item_too_large',
    413,
    `the change event of ${req.collection}/${req.key} would be ${eventBytes} bytes (the value with its ` +
      `version and merge state); Kafka takes at most ${maxValueBytes(keyBytes, maxMessageBytes)} bytes ` +
      `for this key (KAFKA_MESSAGE_MAX_BYTES ${maxMessageBytes}): store a smaller value`,
    { details: { eventBytes, maxEventBytes: maxValueBytes(keyBytes, maxMessageBytes) } },
  );
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
