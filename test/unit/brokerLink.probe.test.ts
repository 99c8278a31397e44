/**
 * The broker-link monitor against small local TCP servers standing in for Kafka: one that answers
 * ApiVersions, one that accepts connections and never answers (a blackhole), and a closed port.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerLinkMonitor, LinkState, probeBroker } from '../../shared/kafka/brokerLink.js';
import { findFreePort } from '../../infra/lab/ports.js';
import { waitFor } from '../../infra/lab/waitFor.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A server that answers each request with `answer(correlationId)`, or never when it returns undefined. */
async function fakeBroker(answer: (correlationId: number) => Buffer | undefined): Promise<string> {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (data) => {
      if (data.length < 12) return;
      const reply = answer(data.readInt32BE(8));
      if (reply) socket.write(reply);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return `127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

/** size, correlation id, error code, empty api array. */
function apiVersionsResponse(correlationId: number, errorCode = 0): Buffer {
  const b = Buffer.alloc(4 + 4 + 2 + 4);
  b.writeInt32BE(10, 0);
  b.writeInt32BE(correlationId, 4);
  b.writeInt16BE(errorCode, 8);
  b.writeInt32BE(0, 10);
  return b;
}

const log = pino({ level: 'silent' });

describe('probeBroker', () => {
  it('when the broker answers ApiVersions, then the probe resolves with the round trip', async () => {
    const address = await fakeBroker((id) => apiVersionsResponse(id));
    await expect(probeBroker(address, 1_000)).resolves.toBeGreaterThanOrEqual(0);
  });

  it('when nothing answers (blackhole), then the probe fails at its deadline', async () => {
    const address = await fakeBroker(() => undefined);
    const started = Date.now();
    await expect(probeBroker(address, 300)).rejects.toThrow(/within 300 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('when the port is closed (reset), then the probe fails at once', async () => {
    const port = await findFreePort();
    await expect(probeBroker(`127.0.0.1:${port}`, 5_000)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('when the answer has another correlation id or an error code, then the probe fails', async () => {
    await expect(probeBroker(await fakeBroker((id) => apiVersionsResponse(id + 1)), 1_000)).rejects.toThrow(
      /unexpected/,
    );
    await expect(probeBroker(await fakeBroker((id) => apiVersionsResponse(id, 35)), 1_000)).rejects.toThrow(
      /error 35/,
    );
  });
});

describe('BrokerLinkMonitor', () => {
  it('when probes fail twice in a row, then the link is down; one answer or an acked publish brings it up', async () => {
    let answering = true;
    const address = await fakeBroker((id) => (answering ? apiVersionsResponse(id) : undefined));
    const monitor = new BrokerLinkMonitor({ brokers: [address], timeoutMs: 200, log });
    const changes: string[] = [];
    monitor.on('stateChanged', (s) => changes.push(s));
    expect(monitor.linkState).toBe(LinkState.Unknown);

    expect(await monitor.probeOnce()).toBe(true);
    expect(monitor.linkState).toBe(LinkState.Up);

    answering = false;
    expect(await monitor.probeOnce()).toBe(false);
    expect(monitor.linkState).toBe(LinkState.Up); // one failure is not a cut
    await monitor.probeOnce();
    expect(monitor.linkState).toBe(LinkState.Down);
    const snapshot = monitor.snapshot();
    expect(snapshot).toMatchObject({ state: 'down', consecutiveProbeFailures: 2 });
    expect(snapshot.lastProbeError).toMatch(/within 200 ms/);

    monitor.recordPublishOk();
    expect(monitor.linkState).toBe(LinkState.Up);
    await monitor.probeOnce();
    await monitor.probeOnce();
    answering = true;
    await monitor.probeOnce();
    expect(changes).toEqual(['up', 'down', 'up', 'down', 'up']);
  });

  it('when the link is down, then it probes at the short down interval and sees the heal within it, not a whole interval later', async () => {
    let answering = false;
    const address = await fakeBroker((id) => (answering ? apiVersionsResponse(id) : undefined));
    const monitor = new BrokerLinkMonitor({
      brokers: [address],
      intervalMs: 10_000,
      downIntervalMs: 50,
      timeoutMs: 100,
      log,
    });
    const states: string[] = [];
    let probes = 0;
    monitor.on('stateChanged', (s) => states.push(s));
    monitor.on('probed', () => (probes += 1));
    monitor.start();
    try {
      // Two failed probes (the second at once, confirming): down after about two deadlines.
      await waitFor(() => monitor.linkState === LinkState.Down, {
        description: 'the link down',
        timeoutMs: 2_000,
        intervalMs: 10,
      });
      // Each probe is a 100 ms deadline and a 50 ms pause: three more within 1 s (the 10 s interval
      // would allow none).
      const before = probes;
      await waitFor(() => probes - before >= 3, {
        description: 'three more probes',
        timeoutMs: 1_000,
        intervalMs: 10,
      });
      answering = true;
      const healed = Date.now();
      await waitFor(() => monitor.linkState === LinkState.Up, {
        description: 'the link up',
        timeoutMs: 1_000,
        intervalMs: 10,
      });
      expect(Date.now() - healed).toBeLessThan(1_000);
      expect(states).toEqual(['down', 'up']);
    } finally {
      await monitor.stop();
    }
  });
});
