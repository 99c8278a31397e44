/**
 * Live membership (services/region/peerMembership.ts) on real PostgreSQL and Kafka: running regions
 * told of a new peer through their peers file consume its topic from the start, verify its events
 * and report it, without a restart; a reload that names a region without a public key is refused
 * and changes nothing; a peer taken out of the file is no longer reported.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/harness.js';
import { startTestRegions, type TestRegions } from '../support/regionHarness.js';
import { getItem, putItem } from '../support/twoRegions.js';
import { regionStatus } from '../support/workload.js';
import { regionsTest, REGIONS_START_MS } from '../support/fixtures.js';

const peersOf = async (url: string) => (await regionStatus(url)).peers.map((p) => p.region).sort();

let t: TestRegions;
let dir: string;
const file = (region: string) => join(dir, `peers-${region}`);

const test = regionsTest(() => {
  dir = mkdtempSync(join(tmpdir(), 'hothot-membership-'));
  // us and eu start as a pair; ap already counts them as its peers.
  writeFileSync(file('us'), 'eu\n');
  writeFileSync(file('eu'), 'us\n');
  return startTestRegions(
    ['us', 'eu', 'ap'],
    { MEMBERSHIP_RELOAD_MS: '200' },
    (region): Record<string, string> =>
      region === 'ap' ? {} : { PEER_REGIONS: '', PEER_REGIONS_FILE: file(region) },
  );
});

describe('live peer membership', () => {
  test.beforeAll(({ regions }) => {
    t = regions;
  }, REGIONS_START_MS);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('when ap is added to the peers files of us and eu, then they apply what ap wrote before and after, and report it up', async () => {
    const { us, eu, ap } = t.regions;
    expect(await peersOf(us!.url)).toEqual(['eu']);
    const before = await putItem(ap!.url, 'm', 'early', { from: 'ap', when: 'before' });
    expect(before.status).toBeLessThan(300);

    writeFileSync(file('us'), 'eu\nap\n');
    writeFileSync(file('eu'), 'us, ap');
    const after = await putItem(ap!.url, 'm', 'late', { from: 'ap', when: 'after' });
    expect(after.status).toBeLessThan(300);
    for (const r of [us!, eu!]) {
      await waitFor(
        `${r.config.region} to hold ap's writes`,
        async () => {
          const [a, b] = await Promise.all([getItem(r.url, 'm', 'early'), getItem(r.url, 'm', 'late')]);
          return a.status === 200 && b.status === 200;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      expect((await getItem(r.url, 'm', 'early')).body).toMatchObject({ value: { when: 'before' } });
    }
    // Every region reports every other up; us and eu run the same processes as before.
    await waitFor(
      'every region to report the two others up',
      async () => {
        const statuses = await Promise.all([us!, eu!, ap!].map((r) => regionStatus(r.url)));
        return statuses.every((s) => s.peers.length === 2 && s.peers.every((p) => p.state === 'up'));
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(us!.membership.peers()).toEqual(['eu', 'ap']);
  });

  it('when a peers file names a region without a public key, then the reload is refused and the peers stay', async () => {
    const us = t.regions.us!;
    writeFileSync(file('us'), 'eu,ap,zz');
    const outcome = await us.reloadMembership('test');
    expect(outcome.ok).toBe(false);
    expect(outcome.ok ? '' : outcome.problem).toMatch(/no public key of zz/);
    expect(us.membership.peers()).toEqual(['eu', 'ap']);
    expect(await peersOf(us.url)).toEqual(['ap', 'eu']);

    writeFileSync(file('us'), 'eu,Not A Region');
    const bad = await us.reloadMembership('test');
    expect(bad.ok ? '' : bad.problem).toMatch(/is not a region id/);
    expect(us.membership.peers()).toEqual(['eu', 'ap']);
  });

  it('when ap is taken out of the peers file of us, then us stops reporting it and keeps replicating with eu', async () => {
    const { us, eu } = t.regions;
    writeFileSync(file('us'), 'eu');
    const outcome = await us!.reloadMembership('test');
    expect(outcome).toMatchObject({ ok: true, change: { removed: ['ap'], added: [] } });
    expect(await peersOf(us!.url)).toEqual(['eu']);
    const w = await putItem(eu!.url, 'm', 'after-removal', { ok: true });
    expect(w.status).toBeLessThan(300);
    await waitFor(
      'us to hold eu’s write',
      async () => (await getItem(us!.url, 'm', 'after-removal')).status === 200,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  });
});
