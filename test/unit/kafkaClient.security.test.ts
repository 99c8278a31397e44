/**
 * How a region gets its Kafka and database credentials from its configuration: the three Kafka
 * variables go together (or none: PLAINTEXT, insecure-dev only), files are read once and their
 * content never appears in an error, and the kafkajs settings are TLS + SCRAM-SHA-512.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/loadConfig.js';
import { withPassword } from '../../shared/db/pool.js';
import { kafkaSecurityConfig, loadKafkaClientSecurity } from '../../shared/kafka/client.js';

const dir = mkdtempSync(join(tmpdir(), 'hothot-kafka-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ca = join(dir, 'ca.crt');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const passwordFile = join(dir, 'us.password');
writeFileSync(passwordFile, 'p4ssw0rd-from-file\n');

const BASE = {
  REGION: 'us',
  PEER_REGIONS: 'eu',
  DATABASE_URL: 'postgres://hothot@127.0.0.1:5432/hothot',
  KAFKA_BROKERS: '127.0.0.1:9092',
  SECURITY_MODE: 'insecure-dev',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

describe('Kafka credentials in the configuration', () => {
  it('when none is given in insecure-dev, then Kafka is PLAINTEXT (no kafka security)', () => {
    expect(loadConfig(BASE).security.kafka).toBeUndefined();
  });

  it('when only some are given, then the configuration is refused, naming all three', () => {
    expect(problems({ ...BASE, KAFKA_SSL_CA_FILE: ca }).join('\n')).toMatch(
      /KAFKA_SSL_CA_FILE, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE .* together/,
    );
    expect(
      problems({ ...BASE, KAFKA_SASL_USERNAME: 'us', KAFKA_SASL_PASSWORD_FILE: passwordFile }),
    ).not.toEqual([]);
  });

  it('when both a password and a password file are given, then the configuration is refused', () => {
    const env = { ...BASE, KAFKA_SSL_CA_FILE: ca, KAFKA_SASL_USERNAME: 'us', KAFKA_SASL_PASSWORD: 'x' };
    expect(problems({ ...env, KAFKA_SASL_PASSWORD_FILE: passwordFile }).join('\n')).toMatch(/both set/);
  });

  it('when all three are given, then the region reads the CA and the password file once, without the newline', () => {
    const config = loadConfig({
      ...BASE,
      KAFKA_SSL_CA_FILE: ca,
      KAFKA_SASL_USERNAME: 'us',
      KAFKA_SASL_PASSWORD_FILE: passwordFile,
    });
    const security = loadKafkaClientSecurity(config.security);
    expect(security).toEqual({
      ca: expect.stringContaining('BEGIN CERTIFICATE') as unknown,
      username: 'us',
      password: 'p4ssw0rd-from-file',
    });
    expect(kafkaSecurityConfig(security)).toEqual({
      ssl: { ca: [security!.ca] },
      sasl: { mechanism: 'scram-sha-512', username: 'us', password: 'p4ssw0rd-from-file' },
    });
    expect(kafkaSecurityConfig(undefined)).toEqual({});
  });

  it('when a file cannot be read or is no certificate, then the error names the variable and file, never a content', () => {
    const load = (env: Record<string, string>) => () => loadKafkaClientSecurity(loadConfig(env).security);
    const secure = { ...BASE, KAFKA_SASL_USERNAME: 'us' };
    expect(
      load({ ...secure, KAFKA_SSL_CA_FILE: join(dir, 'none'), KAFKA_SASL_PASSWORD_FILE: passwordFile }),
    ).toThrow(/^KAFKA_SSL_CA_FILE: cannot read .*none \(ENOENT\)$/);
    expect(
      load({ ...secure, KAFKA_SSL_CA_FILE: passwordFile, KAFKA_SASL_PASSWORD_FILE: passwordFile }),
    ).toThrow(/KAFKA_SSL_CA_FILE: .* holds no PEM certificate/);
    expect(load({ ...secure, KAFKA_SSL_CA_FILE: ca, KAFKA_SASL_PASSWORD_FILE: join(dir, 'gone') })).toThrow(
      /^KAFKA_SASL_PASSWORD_FILE: cannot read/,
    );
    try {
      load({ ...secure, KAFKA_SSL_CA_FILE: passwordFile, KAFKA_SASL_PASSWORD_FILE: passwordFile })();
    } catch (err) {
      expect(String(err)).not.toContain('p4ssw0rd');
    }
  });
});

describe('database password', () => {
  it('when DATABASE_PASSWORD_FILE is set, then the configuration names it', () => {
    expect(loadConfig({ ...BASE, DATABASE_PASSWORD_FILE: passwordFile }).databasePasswordFile).toBe(
      passwordFile,
    );
    expect(loadConfig(BASE).databasePasswordFile).toBeUndefined();
  });

  it('when a password is put into a URL, then it is percent-encoded and replaces one already there', () => {
    expect(withPassword('postgres://hothot@h:5432/db', 'a/b@c:d')).toBe(
      'postgres://hothot:a%2Fb%40c%3Ad@h:5432/db',
    );
    expect(withPassword('postgres://hothot:old@h:5432/db', 'new')).toBe('postgres://hothot:new@h:5432/db');
  });
});
