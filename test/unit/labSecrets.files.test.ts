/**
 * The lab's credentials (infra/lab/labSecrets.ts): made once in a 0700 directory of 0600 files, reused
 * as they are by every later start, extended when a region is added; the broker certificate is signed
 * by the CA and names every address clients use. Also the SCRAM verifier the lab gives PostgreSQL
 * roles, against RFC 7677's example.
 */
import { X509Certificate, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KAFKA_ADMIN_PRINCIPAL, KAFKA_BROKER_CERT_CN, ensureLabSecrets } from '../../infra/lab/labSecrets.js';
import { scramSha256Verifier } from '../../infra/lab/postgresCluster.js';
import { redactUrl } from '../../shared/config/redactUrl.js';

const root = mkdtempSync(join(tmpdir(), 'hothot-secrets-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('ensureLabSecrets', () => {
  const dir = join(root, 'lab', 'secrets');
  const first = ensureLabSecrets(dir, { kafkaPrincipals: ['us', 'eu'], postgresClusters: ['us', 'eu'] });

  it('when made, then the directory is 0700 and every file in it 0600', () => {
    expect(first.created).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777, f).toBe(0o600);
  });

  it('when made, then there is a password per Kafka principal (admin included) and two per PostgreSQL cluster, all different', () => {
    expect(first.kafkaPrincipals()).toEqual([KAFKA_ADMIN_PRINCIPAL, 'eu', 'us'].sort());
    const passwords = [
      ...first.kafkaPrincipals().map((p) => first.kafkaPassword(p)),
      ...['us', 'eu'].flatMap((c) => [
        first.postgresPassword(c, 'superuser'),
        first.postgresPassword(c, 'app'),
      ]),
    ];
    expect(new Set(passwords).size).toBe(7);
    for (const p of passwords) expect(p).toMatch(/^[0-9a-f]{48}$/);
  });

  it('when the broker certificate is read, then the CA signed it for 127.0.0.1, localhost, kafka and toxiproxy', () => {
    const pem = readFileSync(first.brokerKeystoreFile, 'utf8');
    expect(pem).toContain('-----BEGIN PRIVATE KEY-----'); // PKCS#8, as Kafka's PEM key store wants
    const cert = new X509Certificate(
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(pem)![0],
    );
    const ca = new X509Certificate(first.caCertificate());
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe(`CN=${KAFKA_BROKER_CERT_CN}`);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    for (const host of ['localhost', 'kafka', 'toxiproxy']) expect(cert.checkHost(host), host).toBe(host);
    expect(ca.ca).toBe(true);
  });

  it('when asked again with one more region, then every earlier credential is kept and the new one added', () => {
    const before = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    const again = ensureLabSecrets(dir, {
      kafkaPrincipals: ['us', 'eu', 'ap'],
      postgresClusters: ['us', 'eu', 'ap'],
    });
    expect(again.created).toBe(false);
    for (const [f, text] of Object.entries(before)) expect(readFileSync(join(dir, f), 'utf8'), f).toBe(text);
    expect(again.kafkaPrincipals()).toContain('ap');
    expect(again.postgresPassword('ap', 'app')).toMatch(/^[0-9a-f]{48}$/);
  });

  it('when the secret values are listed, then they hold every password and both private keys', () => {
    const values = first.secretValues();
    expect(values).toContain(first.kafkaPassword('us'));
    expect(values).toContain(first.postgresPassword('eu', 'superuser'));
    const keyBody = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END/.exec(
      readFileSync(first.caKeyFile, 'utf8'),
    )![1]!;
    expect(values).toContain(keyBody.replace(/\s+/g, ''));
    expect(values.length).toBeGreaterThanOrEqual(2 + 3 + 6);
  });

  it('when a name could escape the directory, then it is refused', () => {
    expect(() => first.kafkaPasswordFile('../x')).toThrow(/not a principal/);
  });
});

describe('scramSha256Verifier', () => {
  it("when given RFC 7677's example (user/pencil), then its ServerKey signs the exchange as the RFC's server did", () => {
    const verifier = scramSha256Verifier('pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const m = /^SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)$/.exec(verifier);
    expect(m).not.toBeNull();
    const authMessage =
      'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    const serverSignature = createHmac('sha256', Buffer.from(m![3]!, 'base64'))
      .update(authMessage)
      .digest('base64');
    expect(serverSignature).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  it('when called twice, then the salts differ', () => {
    expect(scramSha256Verifier('x')).not.toBe(scramSha256Verifier('x'));
  });
});

describe('redactUrl', () => {
  it('when a URL has a password, then it is replaced and nothing else changes', () => {
    expect(redactUrl('postgres://hothot:s3cr%2Ft@127.0.0.1:8181/hothot')).toBe(
      'postgres://hothot:***@127.0.0.1:8181/hothot',
    );
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/postgres')).toBe(
      'postgres://postgres@127.0.0.1:5432/postgres',
    );
    expect(redactUrl('postgres://u@h/db?password=x&sslmode=disable')).toBe(
      'postgres://u@h/db?password=***&sslmode=disable',
    );
  });

  it('when given a libpq key=value string or garbage, then no password survives', () => {
    expect(redactUrl("host=h user=u password='a b' dbname=d")).toBe('host=h user=u password=*** dbname=d');
    expect(redactUrl('postgres://u:p@[bad')).toBe('(unparsable URL)');
    expect(redactUrl('just-a-secret')).toBe('(unparsable URL)');
  });
});
