/**
 * The credentials of a lab (or of the test infrastructure, or of the compose deployment), made once
 * per directory and reused on every later start:
 *
 * - a CA (private key + self-signed certificate) and the Kafka broker's key and certificate signed by
 *   it (IP SAN 127.0.0.1; DNS SANs localhost, kafka, toxiproxy), made with `openssl`;
 * - a SCRAM-SHA-512 password per Kafka principal: `admin` (the broker's own inter-broker login and the
 *   lab's admin tasks) and one per region;
 * - per PostgreSQL cluster, a password for the superuser and one for the application role the region
 *   connects as.
 *
 * Everything lives in one directory of mode 0700, every file 0600. No value is ever logged or printed:
 * callers get file paths, and the values only where a client needs them.
 *
 * (Not to be confused with infra/lab/labClientKeys.ts: the lab's API key and session-token keys.)
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/** Kafka's superuser: the broker's inter-broker login and the lab's admin tasks (topics, ACLs). */
export const KAFKA_ADMIN_PRINCIPAL = 'admin';
/** Subject CN of the broker's certificate; also its principal on the mTLS controller listener. */
export const KAFKA_BROKER_CERT_CN = 'hothot-kafka-broker';
/** DNS names in the broker certificate: the native lab's, and compose's service names. */
export const KAFKA_BROKER_DNS_NAMES: readonly string[] = ['localhost', 'kafka', 'toxiproxy'];
/** The role a region connects to its database as (it owns the database; not a superuser). */
export const POSTGRES_APP_ROLE = 'hothot';

/** Whose PostgreSQL password: the cluster's superuser, or the application role. */
export type PostgresRole = 'superuser' | 'app';

const CA_DAYS = 3650;
const BROKER_CERT_DAYS = 825;
/** A broker certificate this close to its end is issued again at the next start. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const NAME = /^[a-z][a-z0-9-]{0,62}$/;

export interface LabSecretsRequest {
  /** Kafka principals besides {@link KAFKA_ADMIN_PRINCIPAL}: the regions. */
  readonly kafkaPrincipals: readonly string[];
  /** PostgreSQL clusters (one per region in the lab). */
  readonly postgresClusters?: readonly string[];
}

/**
 * Make (once) and read the credentials in `dir`. A later call with more principals or clusters adds
 * theirs and keeps the rest. Requires `openssl` only when a certificate has to be made.
 */
export function ensureLabSecrets(dir: string, request: LabSecretsRequest): LabSecrets {
  const created = !existsSync(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const secrets = new LabSecrets(dir, created);
  secrets.ensureCertificates();
  for (const principal of [KAFKA_ADMIN_PRINCIPAL, ...request.kafkaPrincipals]) {
    ensurePassword(secrets.kafkaPasswordFile(principal));
  }
  for (const cluster of request.postgresClusters ?? []) {
    ensurePassword(secrets.postgresPasswordFile(cluster, 'superuser'));
    ensurePassword(secrets.postgresPasswordFile(cluster, 'app'));
  }
  return secrets;
}

export class LabSecrets {
  /** @internal use {@link ensureLabSecrets} (or this, to read a directory made earlier) */
  constructor(
    /** The directory (mode 0700). */
    readonly dir: string,
    /** Whether {@link ensureLabSecrets} made the directory (no earlier credentials existed). */
    readonly created = false,
  ) {}

  /** The CA certificate (PEM): what every Kafka client trusts. Not secret, but kept with the rest. */
  get caCertFile(): string {
    return join(this.dir, 'ca.crt');
  }

  /** The CA's private key: whoever holds it can mint a broker (or a controller) certificate. */
  get caKeyFile(): string {
    return join(this.dir, 'ca.key');
  }

  /** The broker's PEM key store: its private key (PKCS#8), certificate and the CA certificate. */
  get brokerKeystoreFile(): string {
    return join(this.dir, 'kafka-broker.pem');
  }

  kafkaPasswordFile(principal: string): string {
    return join(this.dir, `kafka-${checkName(principal)}.password`);
  }

  kafkaPassword(principal: string): string {
    return readSecret(this.kafkaPasswordFile(principal));
  }

  /** Every Kafka principal with a password here (admin included). */
  kafkaPrincipals(): string[] {
    return readdirSync(this.dir)
      .map((f) => /^kafka-([a-z][a-z0-9-]*)\.password$/.exec(f)?.[1])
      .filter((p): p is string => p !== undefined)
      .sort();
  }

  postgresPasswordFile(cluster: string, role: PostgresRole): string {
    return join(this.dir, `postgres-${checkName(cluster)}-${role}.password`);
  }

  postgresPassword(cluster: string, role: PostgresRole): string {
    return readSecret(this.postgresPasswordFile(cluster, role));
  }

  /** The CA certificate's PEM text. */
  caCertificate(): string {
    return readFileSync(this.caCertFile, 'utf8');
  }

  /**
   * Every secret value here (passwords, the base64 body of each private key), for tests that look
   * for leaks in logs and outputs. Never print what this returns.
   */
  secretValues(): string[] {
    const values: string[] = [];
    for (const file of readdirSync(this.dir)) {
      const path = join(this.dir, file);
      if (file.endsWith('.password')) values.push(readSecret(path));
      else if (file === 'ca.key' || file === 'kafka-broker.pem') {
        const text = readFileSync(path, 'utf8');
        for (const m of text.matchAll(/-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/g))
          values.push(m[1]!.replace(/\s+/g, ''));
      }
    }
    return values;
  }

  /** Make the CA and the broker certificate if missing; issue the broker's again when it nears its end. */
  ensureCertificates(): void {
    if (!existsSync(this.caKeyFile) || !existsSync(this.caCertFile)) {
      rmSync(this.brokerKeystoreFile, { force: true }); // signed by a CA that is gone
      this.makeCa();
    }
    if (!existsSync(this.brokerKeystoreFile) || this.brokerCertificateEndsSoon())
      this.makeBrokerCertificate();
  }

  private makeCa(): void {
    const key = join(this.dir, 'ca.key.tmp');
    const cert = join(this.dir, 'ca.crt.tmp');
    openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(CA_DAYS),
      '-subj',
      '/CN=hothot lab CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    chmodSync(key, 0o600);
    chmodSync(cert, 0o600);
    renameSync(key, this.caKeyFile);
    renameSync(cert, this.caCertFile);
  }

  private makeBrokerCertificate(): void {
    const key = join(this.dir, 'broker.key.tmp');
    const csr = join(this.dir, 'broker.csr.tmp');
    const cert = join(this.dir, 'broker.crt.tmp');
    const ext = join(this.dir, 'broker.ext.tmp');
    try {
      openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
      chmodSync(key, 0o600);
      openssl(['req', '-new', '-key', key, '-subj', `/CN=${KAFKA_BROKER_CERT_CN}`, '-out', csr]);
      const sans = ['IP:127.0.0.1', ...KAFKA_BROKER_DNS_NAMES.map((d) => `DNS:${d}`)].join(',');
      writeFileSync(
        ext,
        [
          `subjectAltName=${sans}`,
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature',
          // serverAuth for its listeners; clientAuth for its own connections to the mTLS controller listener.
          'extendedKeyUsage=serverAuth,clientAuth',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        this.caCertFile,
        '-CAkey',
        this.caKeyFile,
        '-set_serial',
        `0x${randomBytes(16).toString('hex')}`,
        '-days',
        String(BROKER_CERT_DAYS),
        '-extfile',
        ext,
        '-out',
        cert,
      ]);
      const keystore = `${this.brokerKeystoreFile}.tmp`;
      writeFileSync(
        keystore,
        [readFileSync(key, 'utf8'), readFileSync(cert, 'utf8'), this.caCertificate()]
          .map((pem) => pem.trim())
          .join('\n') + '\n',
        { mode: 0o600 },
      );
      renameSync(keystore, this.brokerKeystoreFile);
    } finally {
      for (const f of [key, csr, cert, ext]) rmSync(f, { force: true });
    }
  }

  private brokerCertificateEndsSoon(): boolean {
    try {
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(
        readFileSync(this.brokerKeystoreFile, 'utf8'),
      )?.[0];
      if (pem === undefined) return true;
      const cert = new X509Certificate(pem);
      const ca = new X509Certificate(this.caCertificate());
      return Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS || !cert.verify(ca.publicKey);
    } catch {
      return true;
    }
  }
}

/** A random password: 24 random bytes as hex (no character any config syntax treats specially). */
export function randomPassword(): string {
  return randomBytes(24).toString('hex');
}

function ensurePassword(file: string): void {
  if (existsSync(file)) return;
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${randomPassword()}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/** A secret file's value without its trailing newline. */
export function readSecret(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

function checkName(name: string): string {
  if (!NAME.test(name)) throw new Error(`${JSON.stringify(name)} is not a principal or cluster name`);
  return name;
}

function openssl(args: readonly string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT')
      throw new Error(
        'openssl is not installed: the lab makes its certificates with it (apt-get install openssl)',
        { cause: err },
      );
    const detail = e.stderr?.toString('utf8').trim().split('\n').slice(-3).join(' / ') ?? e.message;
    throw new Error(`openssl ${args[0]} failed: ${detail}`, { cause: err });
  }
}
