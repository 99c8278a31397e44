/**
 * Large values never cut a region off: with us cut from Kafka, bursts of values from 1 byte to the
 * largest body the API takes (1 MiB by default; the lab's broker takes 2 MiB batches) pile up in us's
 * outbox — 300 of 50 KB among them, 15 MB the relay must split — and after heal every one reaches eu,
 * and later small writes replicate as usual. Real Kafka, Toxiproxy and PostgreSQL (a lab of its own).
 */
import { describe, expect, it } from 'vitest';
import { PartitionMode } from '../../infra/lab/brokerLinkProxies.js';
import type { RegionStatus } from '../../services/api/useCases/readStatus.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { waitFor } from '../support/harness.js';
import type { FaultLab } from '../support/faultLab.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

const MAX_BODY_BYTES = 1_048_576; // the region's default MAX_BODY_BYTES

const test = faultLabTest();

describe('large values across a cut', () => {
  let fl: FaultLab;
  let us: string;
  let eu: string;

  test.beforeAll(({ lab }) => {
    fl = lab;
    us = fl.regions.us!.url;
    eu = fl.regions.eu!.url;
  }, LAB_START_MS);

  const status = async (url: string) => (await (await fetch(`${url}/v1/status`)).json()) as RegionStatus;
  const put = async (url: string, path: string, body: string) => {
    const res = await fetch(`${url}/v1/items/${path}`, {
      method: 'PUT',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status, `PUT ${path} (${body.length} bytes)`).toBeLessThan(300);
    return res.headers.get('etag')!;
  };
  /** A JSON object body of exactly `bytes` bytes. */
  const bodyOf = (bytes: number, fill = 'v') => `{"s":"${fill.repeat(bytes - 8)}"}`;
  const etagIn = async (url: string, path: string) =>
    (await fetch(`${url}/v1/items/${path}`)).headers.get('etag');

  it(
    'when values from 1 byte to the largest body are written in bursts during a cut, then all reach eu after heal and later writes replicate',
    { timeout: 180_000 },
    async () => {
      expect((await status(us)).messageLimit.bytes).toBe(LAB_MESSAGE_MAX_BYTES);
      await fl.links.partition('us', PartitionMode.Reset);
      await waitFor(
        'us to see its link down',
        async () => (await status(us)).brokerLink?.state === 'down' || undefined,
        {
          timeoutMs: 10_000,
        },
      );

      const written = new Map<string, { url: string; etag: string }>();
      // Burst 1: 300 values of 50 KB, ten at a time.
      for (let i = 0; i < 300; i += 10) {
        const batch = Array.from({ length: 10 }, (_, j) => `fifty/k${i + j}`);
        const etags = await Promise.all(batch.map((p) => put(us, p, bodyOf(50_000))));
        batch.forEach((p, j) => written.set(p, { url: us, etag: etags[j]! }));
      }
      // Burst 2: every size class up to the largest body, twice each, and one overwritten.
      const sizes = [8, 100, 1_000, 10_000, 100_000, 500_000, 900_000, MAX_BODY_BYTES];
      for (const [i, size] of sizes.entries()) {
        for (const copy of [0, 1]) {
          const path = `sizes/s${i}-${copy}`;
          written.set(path, { url: us, etag: await put(us, path, bodyOf(size, copy === 0 ? 'a' : 'b')) });
        }
      }
      written.set('sizes/s0-0', { url: us, etag: await put(us, 'sizes/s0-0', '1') }); // 1 byte
      // eu keeps writing too.
      for (let i = 0; i < 5; i++)
        written.set(`eu/k${i}`, { url: eu, etag: await put(eu, `eu/k${i}`, bodyOf(200_000)) });

      const backlog = (await status(us)).outbox;
      expect(backlog.rows).toBeGreaterThanOrEqual(300 + 2 * sizes.length);
      expect(backlog.heldRows).toBe(0);

      await fl.links.heal('us');
      const healed = Date.now();
      await waitFor(
        'every value in both regions',
        async () => {
          for (const [path, w] of written) {
            const other = w.url === us ? eu : us;
            if ((await etagIn(other, path)) !== w.etag) return undefined;
          }
          return true;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const drainMs = Date.now() - healed;
      const usAfter = await status(us);
      console.log(
        `[large values] ${written.size} writes (${(backlog.rows / 1).toFixed(0)} outbox rows during the cut) ` +
          `reached the other region ${drainMs} ms after heal; held rows: ${usAfter.outbox.heldRows}`,
      );
      expect(drainMs).toBeLessThan(60_000);
      expect(usAfter.outbox.heldRows).toBe(0);
      expect(usAfter.relay?.heldByThisProcess).toBe(0);

      // Later small writes replicate as usual, both ways.
      const after = await put(us, 'after/small', '{"n":1}');
      await waitFor(
        'a later small write in eu',
        async () => (await etagIn(eu, 'after/small')) === after || undefined,
        {
          timeoutMs: 10_000,
        },
      );
      const back = await put(eu, 'after/back', '{"n":2}');
      await waitFor(
        'a later small write in us',
        async () => (await etagIn(us, 'after/back')) === back || undefined,
        {
          timeoutMs: 10_000,
        },
      );
      const euAfter = await status(eu);
      expect(euAfter.peers.find((p) => p.region === 'us')?.state).toBe('up');
      expect(usAfter.outbox.rows).toBeLessThanOrEqual(1);
    },
  );
});
