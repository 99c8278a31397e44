/**
 * Several processes of one region (services/region/leadership.ts) on real PostgreSQL and Kafka: two
 * Region instances share us's database, exactly one leads (runs the relay), writes through either
 * reach eu, session tokens hold across them, and when the leader stops the standby takes over within
 * the bound the issue sets (2 s) and replication goes on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Region } from '../../services/region/region.js';
import { LEADER_RETRY_MS } from '../../services/region/leadership.js';
import { testLogger, waitFor } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { getItem, putItem } from '../support/twoRegions.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

/** The bound for a standby to take over from a leader that went away. */
const TAKEOVER_BOUND_MS = 2_000;

let t: TestRegions;
let second: Region;

const test = regionsTest(() => startTestRegions(['us', 'eu']));

describe('one leader per region', () => {
  test.beforeAll(async ({ regions }) => {
    t = regions;
    second = new Region(t.regions.us!.config, testLogger('us-2'));
    await second.start();
  }, REGIONS_START_MS);

  afterAll(async () => {
    await second?.stop();
  }, 60_000);

  it('when two processes serve us, then one leads, writes through either reach eu, and a session token holds across them', async () => {
    const first = t.regions.us!;
    const eu = t.regions.eu!;
    await waitFor(
      'one process of us to lead',
      () => first.leadership.isLeader || second.leadership.isLeader,
      {
        timeoutMs: 10_000,
        intervalMs: 50,
      },
    );
    expect([first.leadership.isLeader, second.leadership.isLeader].filter(Boolean)).toHaveLength(1);
    const [leader, standby] = first.leadership.isLeader ? [first, second] : [second, first];
    expect(leader.relay?.snapshot().running).toBe(true);
    expect(standby.relay?.snapshot().running).toBe(false);

    const a = await putItem(leader.url, 'lead', 'a', { via: 'leader' });
    const b = await putItem(standby.url, 'lead', 'b', { via: 'standby' });
    expect([a.status, b.status]).toEqual([201, 201]);
    // Read-your-writes across the two processes: the token of a write through one, read through the other.
    const token = (await fetch(`${standby.url}/v1/items/lead/c`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ via: 'standby', session: true }),
    }).then((r) => r.headers.get('hothot-session')))!;
    expect(token).toBeTruthy();
    const read = await fetch(`${leader.url}/v1/items/lead/c`, { headers: { 'hothot-session': token } });
    expect(read.status).toBe(200);
    for (const key of ['a', 'b', 'c'])
      await waitFor(
        `eu to hold lead/${key}`,
        async () => (await getItem(eu.url, 'lead', key)).status === 200,
        {
          timeoutMs: 30_000,
          intervalMs: 100,
        },
      );
  });

  it('when the leader stops, then the standby leads within 2 s and replication goes on', async () => {
    const first = t.regions.us!;
    const eu = t.regions.eu!;
    const [leader, standby] = first.leadership.isLeader ? [first, second] : [second, first];
    const stopped = Date.now();
    await leader.stop();
    const took = await waitFor(
      'the standby to lead',
      () => (standby.leadership.isLeader ? Date.now() - stopped : undefined),
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    console.log(
      `[leadership] standby led ${took} ms after the leader stopped (retry period ${LEADER_RETRY_MS} ms)`,
    );
    expect(took).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
    await waitFor('the new leader’s relay to run', () => standby.relay?.snapshot().running === true, {
      timeoutMs: 5_000,
      intervalMs: 20,
    });
    const w = await putItem(standby.url, 'lead', 'after', { via: 'new leader' });
    expect(w.status).toBe(201);
    await waitFor(
      'eu to hold lead/after',
      async () => (await getItem(eu.url, 'lead', 'after')).status === 200,
      {
        timeoutMs: 30_000,
        intervalMs: 100,
      },
    );
  });
});
