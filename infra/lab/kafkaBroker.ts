/**
 * One Apache Kafka broker (single-node KRaft, broker+controller) run from the cached jars with a local
 * JVM: render server.properties, format the storage once (creating the SCRAM users), start
 * `kafka.Kafka`, wait until it answers an authenticated admin request.
 *
 * Secrets never reach a command line: the JVM reads the format arguments (SCRAM passwords) from an
 * `@argfile` that is deleted right after, and the broker's own login from a JAAS file; both are 0600
 * in the secrets directory.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaSecurityConfig, type KafkaClientSecurity } from '../../shared/kafka/client.js';
import { ensureKafkaJars } from './kafkaJars.js';
import {
  advertisedAddress,
  renderKafkaServerProperties,
  type KafkaListener,
  type KafkaTlsFiles,
} from './kafkaServerProperties.js';
import { KAFKA_ADMIN_PRINCIPAL } from './labSecrets.js';
import { ManagedProcess } from './managedProcess.js';
import { REPO_ROOT } from './paths.js';
import { PortAllocator } from './ports.js';
import { run, terminatePid, waitForPidExit } from './processes.js';
import { waitFor } from './waitFor.js';

export const KAFKA_LOG4J_PROPERTIES = join(REPO_ROOT, 'infra', 'kafka', 'log4j.properties');
/** Main class of the broker; also the marker that tells a broker's pid from a reused one. */
export const KAFKA_MAIN_CLASS = 'kafka.Kafka';
const DEFAULT_READY_TIMEOUT_MS = 120_000;
const DEFAULT_STOP_GRACE_MS = 30_000;
/** Deadline of one readiness probe (a metadata round trip) and the pause between two. */
const PROBE_TIMEOUT_MS = 3_000;
const PROBE_INTERVAL_MS = 250;

/** Names of the SCRAM users the storage holds, one per line (written by this module; no secrets). */
const SCRAM_USERS_FILE = 'scram-users';
const SCRAM_MECHANISM = 'SCRAM-SHA-512';

/** What the broker needs to run secured; see infra/lab/labSecrets.ts for where it comes from. */
export interface KafkaBrokerSecurity {
  readonly tls: KafkaTlsFiles;
  /**
   * SCRAM-SHA-512 users, name → password: {@link KAFKA_ADMIN_PRINCIPAL} (the broker's own login and
   * admin tasks) and the regions. Created when the storage is formatted; users added later (a lab
   * restarted with more regions) are created once the broker runs.
   */
  readonly scramUsers: Readonly<Record<string, string>>;
  /** A directory of mode 0700 for the files holding secrets the broker needs (JAAS login, format arguments). */
  readonly secretsDir: string;
}

/** A client listener to create; a missing port is chosen free. */
export interface KafkaListenerRequest extends Omit<KafkaListener, 'port'> {
  readonly port?: number;
}

export interface KafkaBrokerOptions {
  /**
   * Directory of the broker: `server.properties` and the data (`data/`) go there. Reused when it
   * holds a formatted broker, so topics and offsets survive a restart of the lab.
   */
  dir: string;
  /** Client listeners (one per region in the lab). */
  listeners: readonly KafkaListenerRequest[];
  /** KRaft controller listener port. @default a free port */
  controllerPort?: number;
  /** Inter-broker listener port. @default a free port */
  internalPort?: number;
  /** Broker stdout/stderr (log4j console output). @default `<dir>/broker.log` */
  logFile?: string;
  /** Directory of the Kafka jars. @default fetched/cached by {@link ensureKafkaJars} */
  libsDir?: string;
  /** Called when a first-run jar download starts, then with its progress. */
  onFetchStart?: (message: string) => void;
  /** JVM maximum heap. @default 512 */
  heapMb?: number;
  /** KRaft cluster id used when formatting a fresh directory. @default random */
  clusterId?: string;
  /** @default 120000 */
  readyTimeoutMs?: number;
  /**
   * Run the JVM in its own session, not tied to this process (the lab's `--detach`, or a foreground
   * lab that stops its children in order instead of letting Ctrl-C reach them). @default false
   */
  detached?: boolean;
  /** @default `java` on PATH (or `$JAVA_HOME/bin/java`) */
  javaBin?: string;
  /** Called with the broker's description as soon as the JVM is spawned, before it is ready. */
  onSpawn?: (info: KafkaBrokerInfo) => void;
  /** TLS, SCRAM users and where to keep the broker's secrets (there is no PLAINTEXT broker). */
  security: KafkaBrokerSecurity;
}

/** What a started broker is, as plain data (the lab writes it into lab.json). */
export interface KafkaBrokerInfo {
  pid: number;
  dir: string;
  propertiesFile: string;
  logFile: string;
  controllerPort: number;
  internalPort: number;
  listeners: KafkaListener[];
  /** The CA certificate clients must trust (PEM file; not a secret). */
  caFile: string;
}

export class KafkaBroker {
  private readonly managed: ManagedProcess;

  private constructor(
    readonly info: KafkaBrokerInfo,
    private readonly launch: { command: string; args: string[]; detached: boolean },
    private readonly security: KafkaBrokerSecurity,
  ) {
    this.managed = new ManagedProcess({
      name: 'Kafka broker',
      logFile: info.logFile,
      detached: launch.detached,
    });
  }

  /** Render the configuration, format the storage if new, start the broker and wait until it answers. */
  static async start(options: KafkaBrokerOptions): Promise<KafkaBroker> {
    const dir = options.dir;
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { recursive: true });

    const ports = new PortAllocator();
    const controllerPort =
      options.controllerPort ?? (await ports.allocate(undefined, 'the Kafka controller'));
    const internalPort =
      options.internalPort ?? (await ports.allocate(undefined, 'the Kafka internal listener'));
    const listeners: KafkaListener[] = [];
    for (const l of options.listeners) {
      listeners.push({ ...l, port: l.port ?? (await ports.allocate(undefined, `Kafka listener ${l.name}`)) });
    }

    const { security } = options;
    const adminPassword = security.scramUsers[KAFKA_ADMIN_PRINCIPAL];
    if (adminPassword === undefined)
      throw new Error(`the Kafka broker needs a SCRAM user ${KAFKA_ADMIN_PRINCIPAL} (its own login)`);
    mkdirSync(security.secretsDir, { recursive: true, mode: 0o700 });
    const jaasFile = join(security.secretsDir, 'kafka-broker.jaas');
    writeFileSync(jaasFile, brokerJaas(adminPassword), { mode: 0o600 });

    const propertiesFile = join(dir, 'server.properties');
    writeFileSync(
      propertiesFile,
      renderKafkaServerProperties({
        logDir: dataDir,
        controllerPort,
        internalPort,
        listeners,
        tls: security.tls,
      }),
    );

    const libsDir =
      options.libsDir ?? (await ensureKafkaJars({ onFetchStart: options.onFetchStart })).libsDir;
    const java = options.javaBin ?? javaBinary();
    const classPath = join(libsDir, '*');
    const log4j = `-Dlog4j.configuration=file:${KAFKA_LOG4J_PROPERTIES}`;

    const usersFile = join(dir, SCRAM_USERS_FILE);
    if (!existsSync(join(dataDir, 'meta.properties'))) {
      const users = Object.entries(security.scramUsers);
      await runJavaWithSecretArgs(java, security.secretsDir, [
        log4j,
        '-cp',
        classPath,
        'kafka.tools.StorageTool',
        'format',
        '--cluster-id',
        options.clusterId ?? randomClusterId(),
        '--config',
        propertiesFile,
        '--ignore-formatted',
        ...users.flatMap(([name, password]) => [
          '--add-scram',
          `${SCRAM_MECHANISM}=[name=${scramValue(name)},password=${scramValue(password)}]`,
        ]),
      ]).catch((err: unknown) => {
        throw new Error(`could not format the Kafka storage in ${dataDir}: ${errorMessage(err)}`, {
          cause: err,
        });
      });
      writeFileSync(usersFile, users.map(([name]) => `${name}\n`).join(''));
    } else if (!existsSync(usersFile)) {
      throw new Error(
        `the Kafka storage in ${dataDir} was formatted without SCRAM users (made before the broker was ` +
          'secured): delete it (hothot lab up --fresh) so that it is formatted again',
      );
    }

    const logFile = options.logFile ?? join(dir, 'broker.log');
    const heapMb = options.heapMb ?? 512;
    const args = [
      `-Xms${Math.min(128, heapMb)}m`,
      `-Xmx${heapMb}m`,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Djava.security.auth.login.config=${jaasFile}`,
      log4j,
      '-cp',
      classPath,
      KAFKA_MAIN_CLASS,
      propertiesFile,
    ];
    const broker = new KafkaBroker(
      {
        pid: 0,
        dir,
        propertiesFile,
        logFile,
        controllerPort,
        internalPort,
        listeners,
        caFile: security.tls.truststoreFile,
      },
      { command: java, args, detached: options.detached ?? false },
      security,
    );
    broker.spawn();
    options.onSpawn?.({ ...broker.info });
    try {
      await broker.waitUntilReady(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
      await broker.addMissingScramUsers(usersFile, { java, classPath, log4j });
    } catch (err) {
      await broker.stop(5_000);
      throw err;
    }
    return broker;
  }

  /** `host:port` of the broker's own INTERNAL listener (admin tasks; never behind a proxy). */
  get internalBootstrap(): string {
    return `127.0.0.1:${this.info.internalPort}`;
  }

  /** How the admin principal connects (TLS against the CA, SCRAM as admin). */
  adminSecurity(): KafkaClientSecurity {
    return {
      ca: readFileSync(this.security.tls.truststoreFile, 'utf8'),
      username: KAFKA_ADMIN_PRINCIPAL,
      password: this.security.scramUsers[KAFKA_ADMIN_PRINCIPAL]!,
    };
  }

  /**
   * Create the SCRAM users the storage does not hold yet (kafka-configs' ConfigCommand as admin over
   * INTERNAL, one JVM per user: only when a lab gains a region).
   */
  private async addMissingScramUsers(
    usersFile: string,
    jvm: { java: string; classPath: string; log4j: string },
  ): Promise<void> {
    const security = this.security;
    const known = new Set(
      readFileSync(usersFile, 'utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
    const missing = Object.entries(security.scramUsers).filter(([name]) => !known.has(name));
    if (missing.length === 0) return;
    const clientConfig = join(security.secretsDir, `kafka-admin-client-${process.pid}.properties`);
    writeFileSync(
      clientConfig,
      adminClientProperties(security.scramUsers[KAFKA_ADMIN_PRINCIPAL]!, security.tls.truststoreFile),
      { mode: 0o600 },
    );
    try {
      for (const [name, password] of missing) {
        await runJavaWithSecretArgs(jvm.java, security.secretsDir, [
          jvm.log4j,
          '-cp',
          jvm.classPath,
          'kafka.admin.ConfigCommand',
          '--bootstrap-server',
          this.internalBootstrap,
          '--command-config',
          clientConfig,
          '--alter',
          '--entity-type',
          'users',
          '--entity-name',
          name,
          '--add-config',
          `${SCRAM_MECHANISM}=[password=${scramValue(password)}]`,
        ]).catch((err: unknown) => {
          throw new Error(`could not create the Kafka SCRAM user ${name}: ${errorMessage(err)}`, {
            cause: err,
          });
        });
        known.add(name);
        writeFileSync(usersFile, [...known].map((n) => `${n}\n`).join(''));
      }
    } finally {
      rmSync(clientConfig, { force: true });
    }
  }

  get pid(): number {
    return this.info.pid;
  }

  get listeners(): readonly KafkaListener[] {
    return this.info.listeners;
  }

  /** Bootstrap address (`host:port`, the advertised one) of a client listener. */
  bootstrapFor(listenerName: string): string {
    const listener = this.info.listeners.find((l) => l.name === listenerName);
    if (listener === undefined) {
      throw new Error(
        `Kafka has no listener ${listenerName}; it has ${this.info.listeners.map((l) => l.name).join(', ')}`,
      );
    }
    return advertisedAddress(listener);
  }

  /** Whether the broker process is alive. */
  isRunning(): boolean {
    return this.managed.isRunning();
  }

  /** Send a signal to the broker (SIGKILL to simulate a crash). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.managed.kill(signal);
  }

  /** Controlled shutdown (SIGTERM), SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    await KafkaBroker.stopPid(this.info.pid, this.info.propertiesFile, graceMs);
  }

  /** Start the broker again with the same configuration and ports (after {@link stop} or a kill). */
  async restart(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    await this.stop();
    this.spawn();
    await this.waitUntilReady(readyTimeoutMs);
  }

  /** Stop a broker known only by pid (e.g. from lab.json). `propertiesFile` guards against pid reuse. */
  static async stopPid(pid: number, propertiesFile?: string, graceMs = DEFAULT_STOP_GRACE_MS) {
    return terminatePid(pid, { graceMs, marker: propertiesFile ?? KAFKA_MAIN_CLASS });
  }

  private spawn(): void {
    this.info.pid = this.managed.spawn(this.launch.command, this.launch.args, {
      cwd: this.info.dir,
      what: `${this.launch.command}: is Java installed?`,
    });
  }

  private async waitUntilReady(timeoutMs: number): Promise<void> {
    const bootstrap = advertisedAddress(this.info.listeners[0]!);
    const security = this.adminSecurity();
    await this.managed.waitUntilReady(() => probeKafka([bootstrap], PROBE_TIMEOUT_MS, security), {
      description: `Kafka to answer on ${bootstrap}`,
      timeoutMs,
      intervalMs: PROBE_INTERVAL_MS,
    });
  }

  /** Wait for the process to exit (after a kill); true if it did within `timeoutMs`. */
  waitForExit(timeoutMs = 30_000): Promise<boolean> {
    return waitForPidExit(this.info.pid, timeoutMs);
  }

  /** The child process handle while this object started it (undefined after a reattach). */
  get process(): ChildProcess | undefined {
    return this.managed.child;
  }
}

/**
 * Wait until a Kafka broker answers a metadata request (kafkajs admin `describeCluster`) through
 * `brokers`. Throws {@link WaitTimeoutError} naming the last connection error.
 */
export async function waitForKafka(
  brokers: readonly string[],
  options: { timeoutMs: number; abortIf?: () => void; security?: KafkaClientSecurity },
): Promise<void> {
  await waitFor(() => probeKafka(brokers, PROBE_TIMEOUT_MS, options.security), {
    description: `Kafka to answer on ${brokers.join(',')}`,
    timeoutMs: options.timeoutMs,
    intervalMs: PROBE_INTERVAL_MS,
    abortIf: options.abortIf,
  });
}

/** One metadata round trip through `brokers` (as `security`'s principal); resolves true or throws. */
export async function probeKafka(
  brokers: readonly string[],
  timeoutMs = PROBE_TIMEOUT_MS,
  security?: KafkaClientSecurity,
): Promise<true> {
  const kafka = new Kafka({
    clientId: 'hothot-lab-probe',
    brokers: [...brokers],
    ...kafkaSecurityConfig(security),
    logLevel: logLevel.NOTHING,
    connectionTimeout: Math.min(1_000, timeoutMs),
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  });
  const admin = kafka.admin({ retry: { retries: 0 } });
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error('the broker reports no live brokers yet');
    return true;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** A random KRaft cluster id: 16 random bytes, URL-safe base64 without padding, not starting with "-". */
export function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

/** The broker's JAAS file: its SCRAM login (as admin) for inter-broker connections; every listener's server side. */
export function brokerJaas(adminPassword: string): string {
  return [
    'KafkaServer {',
    '  org.apache.kafka.common.security.scram.ScramLoginModule required',
    `  username="${KAFKA_ADMIN_PRINCIPAL}"`,
    `  password="${jaasValue(adminPassword)}";`,
    '};',
    '',
  ].join('\n');
}

/** Client properties of a Kafka command-line tool run as admin over SASL_SSL. */
function adminClientProperties(adminPassword: string, caFile: string): string {
  return [
    'security.protocol=SASL_SSL',
    `sasl.mechanism=${SCRAM_MECHANISM}`,
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN_PRINCIPAL}" password="${jaasValue(adminPassword)}";`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${caFile.replace(/\\/g, '\\\\')}`,
    '',
  ].join('\n');
}

/** A SCRAM user name or password as `--add-scram` takes it: no quoting needed, so none allowed. */
function scramValue(value: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(value))
    throw new Error('Kafka SCRAM names and passwords here are limited to letters, digits, ".", "_" and "-"');
  return value;
}

function jaasValue(value: string): string {
  if (/["\\\n]/.test(value)) throw new Error('a JAAS value may not hold quotes, backslashes or newlines');
  return value;
}

/**
 * Run `java <args>` with the arguments in an `@argfile` (0600, in `dir`, deleted afterwards), so that
 * secrets among them never appear on a command line (`ps`). The launcher expands the file.
 */
async function runJavaWithSecretArgs(java: string, dir: string, args: readonly string[]): Promise<void> {
  const argFile = join(dir, `java-args-${process.pid}-${randomBytes(4).toString('hex')}`);
  const quote = (a: string) => `"${a.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  writeFileSync(argFile, args.map(quote).join('\n') + '\n', { mode: 0o600 });
  try {
    // Generous: kafka-configs adding one SCRAM user is slow (most of it inside the admin call, not
    // JVM start), and several times slower with a lab under write load (add-region); figures:
    // bench/README.md, "Figures quoted from code comments".
    await run(java, [`@${argFile}`], { timeoutMs: 180_000 });
  } finally {
    rmSync(argFile, { force: true });
  }
}

function javaBinary(): string {
  const home = process.env.JAVA_HOME;
  return home !== undefined && home !== '' && existsSync(join(home, 'bin', 'java'))
    ? join(home, 'bin', 'java')
    : 'java';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
