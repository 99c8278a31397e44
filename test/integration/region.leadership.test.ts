/**
 * Several processes of one region (services/region/leadership.ts) on real PostgreSQL and Kafka: two
 * Region instances share us's database, exactly one leads (runs the relay), writes through either
 * reach eu, session tokens hold across them, and when the leader stops the standby takes over within
 * the bound the issue sets (2 s) and replication goes on; a preferred process (a relay worker) takes
 * the lead when it starts, with never two relays at once, and gives it back by stopping.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Region } from '../../services/region/region.js';
import { Role } from '../../shared/config/loadConfig.js';
import { LEADER_RETRY_MS } from '../../services/region/leadership.js';
import { testLogger, waitFor } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { getItem, putItem } from '../support/twoRegions.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

/** The bound for a standby to take over from a leader that went away. */
const TAKEOVER_BOUND_MS = 2_000;

let t: TestRegions;
let second: Region;
let preferred: Region | undefined;

const test = regionsTest(() => startTestRegions(['us', 'eu']));

describe('one leader per region', () => {
  test.beforeAll(async ({ regions }) => {
    t = regions;
    second = new Region(t.regions.us!.config, testLogger('us-2'));
    await second.start();
  }, REGIONS_START_MS);

  afterAll(async () => {
    await preferred?.stop();
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
  it('when a preferred process (a relay worker) starts, then it takes the lead with never two relays at once, and when it stops a standby leads within 2 s', async () => {
    const eu = t.regions.eu!;
    const standby = [t.regions.us!, second].find((r) => r.leadership.isLeader)!;
    expect(standby).toBeDefined();
    preferred = new Region({ ...standby.config, roles: new Set([Role.Relay]) }, testLogger('us-relay'), {
      preferredLeader: true,
    });
    let published = 0;
    const started = Date.now();
    await preferred.start();
    preferred.relay!.on('published', ({ count }) => (published += count));
    // Sampled through the hand-over: at most one leader and one running relay at any moment.
    let most = { leaders: 0, relays: 0 };
    const took = await waitFor(
      'the preferred process to lead',
      () => {
        const both = [standby, preferred!];
        most = {
          leaders: Math.max(most.leaders, both.filter((r) => r.leadership.isLeader).length),
          relays: Math.max(most.relays, both.filter((r) => r.relay?.snapshot().running === true).length),
        };
        return preferred!.leadership.isLeader ? Date.now() - started : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    );
    console.log(
      `[leadership] the preferred process led ${took} ms after it started (the standby checks every ${LEADER_RETRY_MS} ms)`,
    );
    expect(most).toEqual({ leaders: 1, relays: 1 });
    expect(standby.leadership.isLeader).toBe(false);
    expect(standby.relay?.snapshot().running).toBe(false);
    // Its start (connections, topics) and the standby's next check, with margin for a slow machine.
    expect(took).toBeLessThanOrEqual(10_000);
    const w = await putItem(standby.url, 'lead', 'preferred', { via: 'standby, relayed by the preferred' });
    expect(w.status).toBe(201);
    await waitFor(
      'eu to hold lead/preferred',
      async () => (await getItem(eu.url, 'lead', 'preferred')).status === 200,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(published).toBeGreaterThanOrEqual(1);

    const stopped = Date.now();
    await preferred.stop();
    const back = await waitFor(
      'the standby to lead again',
      () => (standby.leadership.isLeader ? Date.now() - stopped : undefined),
      { timeoutMs: 10_000, intervalMs: 20 },
    );
    console.log(`[leadership] the standby led again ${back} ms after the preferred process stopped`);
    expect(back).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
  });
});
