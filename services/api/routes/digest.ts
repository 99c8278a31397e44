/**
 * `GET /v1/digest` — this region's item digest per bucket (docs/anti-entropy.md), and
 * `GET /v1/digest?bucket=N` — the items of one bucket with their versions and digests, what
 * `hothot repair --check` compares between two regions. Admin scope: the bucket listing names keys
 * of every collection.
 */
import { Router } from 'express';
import type pg from 'pg';
import { readBucketItems, readOwnDigest, readPeerDigests } from '../../../shared/db/queries/digest.js';
import { DIGEST_BUCKETS, combineDigests, digestHex } from '../../../shared/domain/digest.js';
import { formatStamp } from '../../../shared/domain/hlc.js';
import { BadRequestError } from '../../../shared/errors/appError.js';
import { Scope } from '../../../shared/security/apiKey.js';
import { requireScope } from '../http/auth.js';

export interface DigestRouteDeps {
  readonly pool: pg.Pool;
  readonly region: string;
}

/** One bucket of `GET /v1/digest`. */
export interface BucketDigestView {
  readonly bucket: number;
  readonly digest: string;
  readonly items: number;
  readonly maxWall: number;
}

/** One item of `GET /v1/digest?bucket=N`. */
export interface BucketItemView {
  readonly collection: string;
  readonly key: string;
  /** The version's stamp, as in ETags: `<wall>.<logical>.<region>`. */
  readonly version: string;
  readonly deleted: boolean;
  readonly digest: string;
}

export function digestRouter(deps: DigestRouteDeps): Router {
  const router = Router();

  router.get('/v1/digest', requireScope(Scope.Admin), async (req, res) => {
    const bucket = parseBucket((req.query as Record<string, unknown>).bucket);
    if (bucket !== undefined) {
      const items = await readBucketItems(deps.pool, bucket);
      res.json({
        region: deps.region,
        bucket,
        digest: digestHex(combineDigests(items.map((i) => i.digest))),
        items: items.map((i): BucketItemView => ({
          collection: i.collection,
          key: i.key,
          version: formatStamp({ wall: i.wall, logical: i.hlcLogical, region: i.origin }),
          deleted: i.deleted,
          digest: digestHex(i.digest),
        })),
      });
      return;
    }
    const [own, peers] = await Promise.all([readOwnDigest(deps.pool), readPeerDigests(deps.pool)]);
    res.json({
      region: deps.region,
      buckets: DIGEST_BUCKETS,
      items: own.items.reduce((a, b) => a + b, 0),
      digest: digestHex(combineDigests(own.digests)),
      bucketDigests: own.digests.map((d, b): BucketDigestView => ({
        bucket: b,
        digest: digestHex(d),
        items: own.items[b]!,
        maxWall: own.maxWalls[b]!,
      })),
      peers: peers.map((p) => ({
        region: p.reporter,
        sentAt: p.sentAt.toISOString(),
        settledBefore: p.settledBefore,
        digest: digestHex(combineDigests(p.digests)),
        differingBuckets: p.digests.flatMap((d, b) => (d === own.digests[b] ? [] : [b])).length,
      })),
    });
  });

  return router;
}

function parseBucket(raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const n = typeof raw === 'string' && /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 0 || n >= DIGEST_BUCKETS)
    throw new BadRequestError('invalid_query', `bucket must be an integer from 0 to ${DIGEST_BUCKETS - 1}`);
  return n;
}
