/**
 * The front door (HAProxy, health checks on /readyz) under load: SIGKILL one region, and requests
 * keep succeeding through the other once HAProxy has marked it down. Reports how long that took
 * and which requests failed in the window; then the region comes back into rotation.
 */
import { sleep } from '../../infra/lab/waitFor.js';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng, testSeed, waitFor } from '../support/harness.js';
import { startFaultLab, type FaultLab } from '../support/faultLab.js';
import { Workload, verifyAcked, waitForConvergence } from '../support/workload.js';

describe('the front door', () => {
  let fl: FaultLab;

  beforeAll(async () => {
    fl = await startFaultLab({ frontDoor: true });
  }, 240_000);
  afterAll(async () => {
    await fl?.stop();
  }, 120_000);

  /** Lines HAProxy logged since `offset` (its log file), and the new offset. */
  function haproxyLog(offset: number): { lines: string[]; offset: number } {
    const text = readFileSync(fl.lab.state.frontDoor!.logFile, 'utf8');
    return { lines: text.slice(offset).split('\n'), offset: text.length };
  }

  it(
    'when a region is SIGKILLed under load, then requests keep succeeding through the other once it is marked down',
    { timeout: 180_000 },
    async () => {
      const seed = testSeed('front door failover');
      const door = fl.frontDoorUrl!;
      const collection = 'door';
      const load = new Workload({
        targets: { door },
        collection,
        random: prng(seed),
        keys: 50,
        writersPerTarget: 4,
        deleteRatio: 0.1,
      });
      let log = haproxyLog(0);
      load.start();
      await sleep(2_000);
      const before = load.stats('before');

      const us = fl.regions.us!.process;
      load.phase = 'failover';
      const killedAt = Date.now();
      us.kill('SIGKILL');
      const markedDownMs = await waitFor(
        'HAProxy to mark us down',
        () => {
          log = haproxyLog(log.offset);
          return log.lines.some((l) => /Server regions\/us is DOWN/.test(l))
            ? Date.now() - killedAt
            : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 25 },
      );
      load.phase = 'marked-down';
      await sleep(3_000);
      const window = load.stats('failover');
      const afterDown = load.stats('marked-down');

      load.phase = 'rejoin';
      const restartAt = Date.now();
      await us.restart();
      const rejoinMs = await waitFor(
        'HAProxy to put us back into rotation',
        () => {
          log = haproxyLog(log.offset);
          return log.lines.some((l) => /Server regions\/us is UP/.test(l))
            ? Date.now() - restartAt
            : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      await sleep(1_000);
      await load.stop();
      const rejoin = load.stats('rejoin');

      const { rows, ms } = await waitForConvergence(fl.dbs(), 90_000);
      const verdict = verifyAcked(load.acked, rows, collection);
      const failedInWindow = window.serverErrors + window.networkErrors;
      console.log(
        `[front door] seed=${seed} requests before kill ${before.requests} (failed ${before.serverErrors + before.networkErrors}); ` +
          `us marked down ${markedDownMs}ms after SIGKILL; requests in that window ${window.requests}, failed ${failedInWindow} ` +
          `(5xx ${window.serverErrors}, no answer ${window.networkErrors}); after marked down ${afterDown.requests} requests, failed ${afterDown.serverErrors + afterDown.networkErrors}; ` +
          `us back in rotation ${rejoinMs}ms after its restart began (failed while rejoining ${rejoin.serverErrors + rejoin.networkErrors}); ` +
          `acked=${verdict.acked} lost=${verdict.lost} resurrected=${verdict.resurrected} divergentKeys=0 converged ${ms}ms after load stopped`,
      );
      if (load.failureSamples.length > 0)
        console.log(`[front door] failures: ${load.failureSamples.join('; ')}`);
      expect(before.acked).toBeGreaterThan(0);
      expect(afterDown.acked).toBeGreaterThan(0);
      expect(afterDown.serverErrors + afterDown.networkErrors).toBe(0);
      expect(rejoin.serverErrors + rejoin.networkErrors).toBe(0);
      expect(verdict.lost).toBe(0);
      expect(verdict.resurrected).toBe(0);
    },
  );
});
