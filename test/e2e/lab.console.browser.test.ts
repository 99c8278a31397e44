/**
 * The lab console (`hothot lab console`) in a real headless browser: Debian's Chromium driven by
 * playwright-core. On a lab of its own with the front door and a light write load in both regions,
 * the test opens the console with its token, clicks "Cut link" for us and waits for the page to show
 * the link cut (Toxiproxy) and down (as us itself reports it) and us's outbox growing; clicks "Heal"
 * and sees it linked and up again, and the conflicts of the two regions' writes to the same keys
 * listed; kills eu with its button
 * and restarts it. It also checks what protects the console: no cookie, no page; no header, no
 * action; the admin key never in what the page receives.
 *
 * Without /usr/bin/chromium (or $HOTHOT_CHROMIUM) the test is skipped, and its name says why:
 * infra/prerequisites.sh (which .ci/run runs) installs Debian's `chromium`. With
 * HOTHOT_CONSOLE_SCREENSHOTS=1 it writes the README's screenshots into docs/img/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsoleServer } from '../../infra/lab/console/consoleServer.js';
import { REPO_ROOT } from '../../infra/lab/paths.js';
import type { FaultLab } from '../support/faultLab.js';
import { faultLabTest, LAB_START_MS } from '../support/fixtures.js';

const CHROMIUM = process.env.HOTHOT_CHROMIUM ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const SCREENSHOTS = process.env.HOTHOT_CONSOLE_SCREENSHOTS === '1';
/** The flags Chromium needs here: as root, no GPU, and no background traffic to a closed network. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** The console polls every 500 ms; the page shows a cut the poll after the click. */
const SHOW_CUT_MS = 5_000;
/**
 * The region itself calls its link down after failed broker probes (every 500 ms, 1 s timeout, in
 * the fault lab's tuning): a few seconds, with two busy cores.
 */
const SHOW_REGION_DOWN_MS = 15_000;
/** Healed: the next probe succeeds. */
const SHOW_HEALED_MS = 15_000;
/** Concurrent writes to the same keys on both sides of the cut, applied after heal. */
const SHOW_CONFLICTS_MS = 45_000;
/** A new lab's regions hear each other's heartbeats (consumers joined) within this. */
const PEERS_UP_MS = 60_000;
/** A restarted region process (tsx) answers /readyz within this. */
const RESTART_MS = 60_000;

const skipReason = HAS_CHROMIUM
  ? ''
  : ` (SKIPPED: no Chromium at ${CHROMIUM}; install Debian's: apt-get install chromium, or run infra/prerequisites.sh)`;

const test = faultLabTest({ frontDoor: true });

describe.skipIf(!HAS_CHROMIUM)(`the lab console in Chromium${skipReason}`, () => {
  let fl: FaultLab;
  let server: ConsoleServer;
  let browser: Browser;
  let page: Page;
  let writing = true;
  let writers: Promise<void>[] = [];

  test.beforeAll(async ({ lab }) => {
    fl = lab;
    server = await ConsoleServer.start({ root: fl.dir, port: 0, pollIntervalMs: 500 });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    // A light load in both regions on the same keys: a backlog during the cut, conflicts after it.
    writers = Object.values(fl.regions).map(async (r) => {
      for (let i = 0; writing; i++) {
        await fetch(`${r.url}/v1/items/console/k${i % 8}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ by: r.name, i }),
          signal: AbortSignal.timeout(5_000),
        }).then(
          (res) => res.body?.cancel(),
          () => undefined,
        );
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    });
  }, LAB_START_MS + 60_000); // and a browser

  afterAll(async () => {
    writing = false;
    await Promise.all(writers);
    await browser?.close();
    await server?.stop();
  }, 120_000);

  const shot = async (name: string) => {
    if (SCREENSHOTS) await page.screenshot({ path: join(REPO_ROOT, 'docs', 'img', name), fullPage: true });
  };

  it('when opened without its token, then nothing is served and actions are refused', async () => {
    const bare = await fetch(server.url);
    expect(bare.status).toBe(401);
    const wrong = await fetch(`${server.url}?token=not-the-token`, { redirect: 'manual' });
    expect(wrong.status).toBe(401);
    const login = await fetch(server.loginUrl, { redirect: 'manual' });
    expect(login.status).toBe(303);
    const cookie = login.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const session = { cookie: cookie.split(';')[0]! };
    // An action without the console's header (what a cross-site form would send) is refused.
    const noHeader = await fetch(`${server.url}api/regions/us/cut`, { method: 'POST', headers: session });
    expect(noHeader.status).toBe(403);
    const action = { ...session, 'x-hothot-console': '1', 'content-type': 'application/json' };
    const unknown = await fetch(`${server.url}api/regions/xx/cut`, { method: 'POST', headers: action });
    expect(unknown.status).toBe(404);
    const badLatency = await fetch(`${server.url}api/regions/us/latency`, {
      method: 'POST',
      headers: action,
      body: JSON.stringify({ ms: -5 }),
    });
    expect(badLatency.status).toBe(400);
    expect(((await badLatency.json()) as { error: { code: string } }).error.code).toBe('bad_latency');
    // The lab's admin key stays in the console process.
    const adminKey = readFileSync(fl.lab.adminKey.file, 'utf8').trim();
    const snapshot = await fetch(`${server.url}api/snapshot`, { headers: session });
    expect(snapshot.status).toBe(200);
    const page = await fetch(server.url, { headers: session });
    for (const text of [await snapshot.text(), await page.text()]) expect(text).not.toContain(adminKey);
  });

  it(
    'when "Cut link" is clicked for us, then the page shows its link cut and down, and "Heal" brings it back up',
    { timeout: 180_000 },
    async () => {
      await page.goto(server.loginUrl);
      expect(new URL(page.url()).search).toBe(''); // the token left the address bar
      const usLink = '[data-testid="link-us"]';
      await page.waitForSelector(`${usLink}[data-state="up"][data-region-link="up"]`, { timeout: 30_000 });
      await page.waitForSelector('[data-testid="link-eu"][data-state="up"][data-region-link="up"]');
      // Replicating both ways before the cut: each region has heard the other's heartbeats.
      for (const [region, peer] of [
        ['eu', 'us'],
        ['us', 'eu'],
      ] as const)
        await expect
          .poll(() => page.textContent(`[data-testid="region-${region}"]`), { timeout: PEERS_UP_MS })
          .toMatch(new RegExp(`${peer} up`));
      if (SCREENSHOTS) {
        await fl.links.latency('eu', 120); // something to see on the charts
        await new Promise((resolve) => setTimeout(resolve, 20_000));
      }
      await shot('console-linked.png');

      const clicked = Date.now();
      await page.click('button[data-action="cut"][data-region="us"][data-mode="reset"]');
      await page.waitForSelector(`${usLink}[data-state="cut"][data-proxy="reset"]`, { timeout: SHOW_CUT_MS });
      const cutShownMs = Date.now() - clicked;
      await page.waitForSelector(`${usLink}[data-state="cut"][data-region-link="down"]`, {
        timeout: SHOW_REGION_DOWN_MS,
      });
      const downShownMs = Date.now() - clicked;
      expect((await fl.links.states()).find((l) => l.region === 'us')?.state).toBe('reset');
      await expect
        .poll(() => page.textContent('[data-testid="linkbadge-us"]'), { timeout: SHOW_CUT_MS })
        .toContain('CUT');
      // us keeps taking writes it cannot publish: the backlog the page shows grows.
      await expect
        .poll(
          async () =>
            Number(/(\d+) rows/.exec((await page.textContent('[data-testid="region-us"]')) ?? '')?.[1]),
          {
            timeout: SHOW_REGION_DOWN_MS,
          },
        )
        .toBeGreaterThan(10);
      // eu stops hearing from us: suspect, then down.
      await expect
        .poll(() => page.textContent('[data-testid="region-eu"]'), { timeout: SHOW_REGION_DOWN_MS })
        .toMatch(/us (suspect|down)/);
      await shot('console-cut.png');

      const healClicked = Date.now();
      await page.click('button[data-action="heal"][data-region="us"]');
      await page.waitForSelector(`${usLink}[data-state="up"][data-region-link="up"]`, {
        timeout: SHOW_HEALED_MS,
      });
      const upShownMs = Date.now() - healClicked;
      await expect
        .poll(async () => (await page.$$('#conflicts tr')).length, { timeout: SHOW_CONFLICTS_MS })
        .toBeGreaterThan(1);
      await expect
        .poll(() => page.textContent('#actions'), { timeout: SHOW_CUT_MS })
        .toMatch(/broker link of us restored/);
      console.log(
        `[console] cut shown ${cutShownMs} ms after the click (bound ${SHOW_CUT_MS}), us's own "down" after ${downShownMs} ms (bound ${SHOW_REGION_DOWN_MS}), "up" ${upShownMs} ms after heal (bound ${SHOW_HEALED_MS})`,
      );
      expect(cutShownMs).toBeLessThan(SHOW_CUT_MS);
      expect(downShownMs).toBeLessThan(SHOW_REGION_DOWN_MS);
      expect(upShownMs).toBeLessThan(SHOW_HEALED_MS);
      await shot('console-healed.png');
    },
  );

  it(
    'when "Kill" and then "Restart" are clicked for eu, then the page shows it dead, then ready again under a new pid',
    { timeout: 180_000 },
    async () => {
      const before = fl.lab.region('eu').pid;
      await page.click('button[data-action="kill"][data-region="eu"]');
      await page.waitForSelector('[data-testid="node-eu"][data-state="dead"]', { timeout: SHOW_CUT_MS });
      await page.waitForSelector('[data-testid="region-eu"][data-alive="false"]');
      const clicked = Date.now();
      await page.click('button[data-action="restart"][data-region="eu"]');
      await page.waitForSelector('[data-testid="node-eu"][data-state="ready"]', { timeout: RESTART_MS });
      const readyMs = Date.now() - clicked;
      const pid = Number(/pid (\d+)/.exec((await page.textContent('[data-testid="region-eu"]')) ?? '')?.[1]);
      expect(pid).toBeGreaterThan(0);
      expect(pid).not.toBe(before);
      await expect
        .poll(() => page.textContent('#actions'), { timeout: SHOW_CUT_MS })
        .toMatch(/region eu ready again/);
      console.log(`[console] eu ready ${readyMs} ms after "Restart" (bound ${RESTART_MS})`);
      expect(readyMs).toBeLessThan(RESTART_MS);
    },
  );
});
