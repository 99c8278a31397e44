/**
 * Every accepted write is publishable: a region learns the broker's real limit, refuses (413, nothing
 * stored) a write whose event would not fit, replicates every size up to the limit, and makes an
 * event that no longer fits (the limit lowered later) loud — status, metrics, `hothot outbox` — without
 * blocking the writes behind it. Two in-process regions on real PostgreSQL and Kafka (broker limit
 * 2 MiB, as in the lab).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import type { RegionStatus } from '../../services/api/useCases/readStatus.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { waitFor } from '../support/harness.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const run = promisify(execFile);
const CONFIGURED = 8 * 1024 * 1024;

let t: TestRegions;
let us: string;
let eu: string;
let db: pg.Pool;

const test = regionsTest(() =>
  startTestRegions(['us', 'eu'], {
    MAX_BODY_BYTES: String(CONFIGURED),
    KAFKA_MESSAGE_MAX_BYTES: String(CONFIGURED),
    COLLECTION_POLICIES: 'carts=fields',
    // No anti-entropy digests in the outbox: the tests count its rows and sequence.
    ANTI_ENTROPY_INTERVAL_MS: '0',
  }),
);

describe('item size and Kafka message limits', () => {
  test.beforeAll(({ regions }) => {
    // us believes the broker takes 8 MiB; the broker takes 2 MiB.
    t = regions;
    us = t.regions.us!.url;
    eu = t.regions.eu!.url;
    db = new pg.Pool({ connectionString: t.databaseUrls.us });
  }, REGIONS_START_MS);
  afterAll(async () => {
    await db?.end();
  });

  const status = async (url: string) => (await (await fetch(`${url}/v1/status`)).json()) as RegionStatus;
  const put = (url: string, path: string, value: unknown) =>
    fetch(`${url}/v1/items/${path}`, {
      method: 'PUT',
      body: JSON.stringify(value),
      headers: { 'content-type': 'application/json' },
    });
  const etagIn = async (url: string, path: string) =>
    (await fetch(`${url}/v1/items/${path}`)).headers.get('etag');
  const metric = async (url: string, name: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const outboxSeq = async () =>
    (await db.query<{ s: string }>('SELECT last_value::text || is_called::text AS s FROM outbox_id_seq'))
      .rows[0]!.s;

  it('when the broker takes less than configured, then the region uses and shows the broker limit', async () => {
    const s = await waitFor('us to check the broker limit', async () => {
      const st = await status(us);
      return st.messageLimit.brokerBytes !== null ? st : undefined;
    });
    expect(s.messageLimit).toMatchObject({
      configuredBytes: CONFIGURED,
      brokerBytes: LAB_MESSAGE_MAX_BYTES,
      bytes: LAB_MESSAGE_MAX_BYTES,
    });
    expect(await metric(us, 'hothot_kafka_message_max_bytes')).toBe(LAB_MESSAGE_MAX_BYTES);
  });

  it('when a value makes the event one byte too large, then 413 names the limit and nothing is stored; the largest that fits replicates', async () => {
    const seq = await outboxSeq();
    const tooBig = await put(us, 'blobs/edge', { s: 'x'.repeat(LAB_MESSAGE_MAX_BYTES) });
    expect(tooBig.status).toBe(413);
    const body = (await tooBig.json()) as {
      error: { code: string; message: string; eventBytes: number; maxEventBytes: number };
    };
    expect(body.error.code).toBe('item_too_large');
    expect(body.error.message).toContain(`KAFKA_MESSAGE_MAX_BYTES ${LAB_MESSAGE_MAX_BYTES}`);
    expect((await fetch(`${us}/v1/items/blobs/edge`)).status).toBe(404);
    expect(await outboxSeq()).toBe(seq);

    const over = body.error.eventBytes - body.error.maxEventBytes;
    const one = await put(us, 'blobs/edge', { s: 'x'.repeat(LAB_MESSAGE_MAX_BYTES - over + 1) });
    expect(one.status).toBe(413);
    expect(((await one.json()) as { error: { eventBytes: number } }).error.eventBytes).toBe(
      body.error.maxEventBytes + 1,
    );
    const fits = await put(us, 'blobs/edge', { s: 'x'.repeat(LAB_MESSAGE_MAX_BYTES - over) });
    expect(fits.status).toBe(201);
    const etag = fits.headers.get('etag');
    await waitFor(
      'the largest item in eu',
      async () => (await etagIn(eu, 'blobs/edge')) === etag || undefined,
    );
    const inEu = (await (await fetch(`${eu}/v1/items/blobs/edge`)).json()) as { value: { s: string } };
    expect(inEu.value.s.length).toBe(LAB_MESSAGE_MAX_BYTES - over);
  });

  it('when a fields item carries its value twice (value and per-field state), then a 1.1 MB value is refused with 413', async () => {
    const res = await put(us, 'carts/big', { a: 'y'.repeat(1_100_000) });
    expect(res.status).toBe(413);
    expect((await fetch(`${us}/v1/items/carts/big`)).status).toBe(404);
    expect((await put(us, 'carts/ok', { a: 'y'.repeat(900_000) })).status).toBe(201);
  });

  it('when values from 1 byte to 1.5 MB are written in a burst, then every one reaches eu with the same version', async () => {
    const sizes = [1, 10, 1_000, 50_000, 200_000, 1_000_000, 1_500_000];
    const etags = new Map<string, string>();
    for (const [i, size] of sizes.entries()) {
      const value = size === 1 ? 7 : { s: 'z'.repeat(size) };
      const res = await put(us, `sizes/s${i}`, value);
      expect(res.status, `size ${size}`).toBe(201);
      etags.set(`sizes/s${i}`, res.headers.get('etag')!);
    }
    await waitFor('every size in eu', async () => {
      for (const [path, etag] of etags) if ((await etagIn(eu, path)) !== etag) return undefined;
      return true;
    });
  });

  it('when an event no longer fits (limit lowered after the write), then it is held loudly, the writes behind it replicate, and `hothot outbox retry` publishes it once the limit is back', async () => {
    const region = t.regions.us!;
    await region.relay!.stop();
    const big = await put(us, 'held/big', { s: 'h'.repeat(500_000) });
    expect(big.status).toBe(201);
    const small = await put(us, 'held/small', { n: 1 });
    expect(small.status).toBe(201);

    // The oldest-row age in the metrics is the one in the status (read in the same scrape, not the previous).
    await waitFor('the outbox to be a second old', async () =>
      (await status(us)).outbox.oldestAgeMs >= 1000 ? true : undefined,
    );
    const age = await metric(us, 'hothot_outbox_oldest_age_seconds');
    expect(age).toBeGreaterThanOrEqual(1);

    region.messageLimit.observeBroker(100_000);
    region.relay!.start();
    await waitFor(
      'the small write in eu',
      async () => (await etagIn(eu, 'held/small')) === small.headers.get('etag') || undefined,
    );
    expect((await fetch(`${eu}/v1/items/held/big`)).status).toBe(404);
    const s = await status(us);
    expect(s.outbox.heldRows).toBe(1);
    expect(s.outbox.rows).toBe(0);
    expect(s.relay?.heldByThisProcess).toBe(1);
    expect(await metric(us, 'hothot_outbox_held_rows')).toBe(1);
    expect(await metric(us, 'hothot_outbox_held_total')).toBe(1);

    const cli = ['bin/hothot.js', 'outbox'];
    const env = { ...process.env, DATABASE_URL: t.databaseUrls.us };
    const listed = await run('node', [...cli, 'held', '--json'], { env });
    const rows = JSON.parse(listed.stdout) as { id: string; msgKey: string; bytes: number; reason: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ msgKey: 'held/big' });
    expect(rows[0]!.reason).toMatch(/more than Kafka's limit of 100000 bytes/);
    await expect(run('node', [...cli, 'drop', rows[0]!.id], { env })).rejects.toMatchObject({ code: 2 });

    region.messageLimit.observeBroker(LAB_MESSAGE_MAX_BYTES);
    const retried = await run('node', [...cli, 'retry', rows[0]!.id], { env });
    expect(retried.stdout).toContain('1 row(s) put back in the outbox');
    region.relay!.wake();
    await waitFor(
      'the held write in eu',
      async () => (await etagIn(eu, 'held/big')) === big.headers.get('etag') || undefined,
    );
    expect((await status(us)).outbox.heldRows).toBe(0);
  });
});
