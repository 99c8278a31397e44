/**
 * The broker-link probe against a broker that speaks TLS (what every secured listener is): the probe
 * completes the handshake, checks the certificate against the CA and the host name, and still tells
 * an answer from a cut (reset) or a blackhole. Certificates come from the lab's own credentials module.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BrokerLinkMonitor, LinkState, probeBroker } from '../../shared/kafka/brokerLink.js';
import { ensureLabSecrets, type LabSecrets } from '../../infra/lab/labSecrets.js';
import { findFreePort } from '../../infra/lab/ports.js';

let dir: string;
let secrets: LabSecrets;
let other: LabSecrets;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hothot-probe-tls-'));
  secrets = ensureLabSecrets(join(dir, 'a'), { kafkaPrincipals: [] });
  other = ensureLabSecrets(join(dir, 'b'), { kafkaPrincipals: [] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servers: (Server | TlsServer)[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function apiVersionsResponse(correlationId: number): Buffer {
  const b = Buffer.alloc(4 + 4 + 2 + 4);
  b.writeInt32BE(10, 0);
  b.writeInt32BE(correlationId, 4);
  b.writeInt16BE(0, 8);
  b.writeInt32BE(0, 10);
  return b;
}

/** A TLS server with the broker's key store that answers ApiVersions, or never when `answering()` is false. */
async function tlsBroker(answering: () => boolean = () => true): Promise<string> {
  const pem = readFileSync(secrets.brokerKeystoreFile, 'utf8');
  const server = createTlsServer({ key: pem, cert: pem }, (socket) => {
    sockets.push(socket);
    socket.on('data', (data: Buffer) => {
      if (data.length >= 12 && answering()) socket.write(apiVersionsResponse(data.readInt32BE(8)));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  return `127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

describe('probeBroker over TLS', () => {
  it('when the broker presents a certificate from the CA for 127.0.0.1, then the probe answers', async () => {
    const address = await tlsBroker();
    await expect(probeBroker(address, 2_000, 'p', { ca: secrets.caCertificate() })).resolves.toBeGreaterThan(
      0,
    );
  });

  it('when the host name is in the certificate (localhost), then the probe answers too', async () => {
    const address = (await tlsBroker()).replace('127.0.0.1', 'localhost');
    await expect(probeBroker(address, 2_000, 'p', { ca: secrets.caCertificate() })).resolves.toBeGreaterThan(
      0,
    );
  });

  it('when the certificate is from another CA, then the probe fails on the handshake', async () => {
    const address = await tlsBroker();
    await expect(probeBroker(address, 2_000, 'p', { ca: other.caCertificate() })).rejects.toThrow(
      /certificate/i,
    );
  });

  it('when the listener speaks TLS and the probe does not, then it fails (no false "up")', async () => {
    const address = await tlsBroker();
    await expect(probeBroker(address, 500)).rejects.toThrow(/Kafka at/);
  });

  it('when the port is closed (a reset cut), then the probe fails at once', async () => {
    const port = await findFreePort();
    const started = Date.now();
    await expect(
      probeBroker(`127.0.0.1:${port}`, 5_000, 'p', { ca: secrets.caCertificate() }),
    ).rejects.toThrow(/ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('when connections are accepted but nothing comes back (a blackhole), then the probe fails at its deadline', async () => {
    const server = createServer((socket) => sockets.push(socket)); // no TLS handshake ever
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await expect(probeBroker(`127.0.0.1:${port}`, 300, 'p', { ca: secrets.caCertificate() })).rejects.toThrow(
      /within 300 ms/,
    );
  });

  it('when the TLS broker stops answering and answers again, then the monitor goes down and up', async () => {
    let answering = true;
    const address = await tlsBroker(() => answering);
    const monitor = new BrokerLinkMonitor({
      brokers: [address],
      timeoutMs: 300,
      tls: { ca: secrets.caCertificate() },
      log: pino({ level: 'silent' }),
    });
    expect(await monitor.probeOnce()).toBe(true);
    expect(monitor.linkState).toBe(LinkState.Up);
    answering = false;
    await monitor.probeOnce();
    await monitor.probeOnce();
    expect(monitor.linkState).toBe(LinkState.Down);
    answering = true;
    expect(await monitor.probeOnce()).toBe(true);
    expect(monitor.linkState).toBe(LinkState.Up);
  });
});
