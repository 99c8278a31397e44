/**
 * One Apache Kafka broker (single-node KRaft, broker+controller) run from the cached jars with a local
 * JVM: render server.properties, format the storage once, start `kafka.Kafka`, wait until it answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ensureKafkaJars } from './kafkaJars.js';
import {
  advertisedAddress,
  renderKafkaServerProperties,
  type KafkaListener,
} from './kafkaServerProperties.js';
import { closeLogFile, fileSize, openLogFile, tailFile } from './logFiles.js';
import { REPO_ROOT } from './paths.js';
import { PortAllocator } from './ports.js';
import { indent, isPidAlive, run, signalPid, terminatePid, waitForPidExit } from './processes.js';
import { waitFor } from './waitFor.js';

export const KAFKA_LOG4J_PROPERTIES = join(REPO_ROOT, 'infra', 'kafka', 'log4j.properties');
/** Main class of the broker; also the marker that tells a broker's pid from a reused one. */
export const KAFKA_MAIN_CLASS = 'kafka.Kafka';
const DEFAULT_READY_TIMEOUT_MS = 120_000;
const DEFAULT_STOP_GRACE_MS = 30_000;

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
  /** Called before a first-run jar download. */
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
}

export class KafkaBroker {
  private child: ChildProcess | undefined;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  private constructor(
    readonly info: KafkaBrokerInfo,
    private readonly launch: { command: string; args: string[]; detached: boolean; logStartOffset: number },
  ) {}

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

    const propertiesFile = join(dir, 'server.properties');
    writeFileSync(
      propertiesFile,
      renderKafkaServerProperties({ logDir: dataDir, controllerPort, internalPort, listeners }),
    );

    const libsDir =
      options.libsDir ?? (await ensureKafkaJars({ onFetchStart: options.onFetchStart })).libsDir;
    const java = options.javaBin ?? javaBinary();
    const classPath = join(libsDir, '*');
    const log4j = `-Dlog4j.configuration=file:${KAFKA_LOG4J_PROPERTIES}`;

    if (!existsSync(join(dataDir, 'meta.properties'))) {
      await run(
        java,
        [
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
        ],
        { timeoutMs: 60_000 },
      ).catch((err: unknown) => {
        throw new Error(`could not format the Kafka storage in ${dataDir}: ${errorMessage(err)}`, {
          cause: err,
        });
      });
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
      log4j,
      '-cp',
      classPath,
      KAFKA_MAIN_CLASS,
      propertiesFile,
    ];
    const broker = new KafkaBroker(
      { pid: 0, dir, propertiesFile, logFile, controllerPort, internalPort, listeners },
      { command: java, args, detached: options.detached ?? false, logStartOffset: fileSize(logFile) },
    );
    broker.spawn();
    options.onSpawn?.({ ...broker.info });
    try {
      await broker.waitUntilReady(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    } catch (err) {
      await broker.stop(5_000);
      throw err;
    }
    return broker;
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
    return this.exit === undefined && isPidAlive(this.info.pid);
  }

  /** Send a signal to the broker (SIGKILL to simulate a crash). */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    signalPid(this.info.pid, signal);
  }

  /** Controlled shutdown (SIGTERM), SIGKILL after `graceMs`. Idempotent. */
  async stop(graceMs = DEFAULT_STOP_GRACE_MS): Promise<void> {
    await KafkaBroker.stopPid(this.info.pid, this.info.propertiesFile, graceMs);
  }

  /** Start the broker again with the same configuration and ports (after {@link stop} or a kill). */
  async restart(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<void> {
    await this.stop();
    this.launch.logStartOffset = fileSize(this.info.logFile);
    this.spawn();
    await this.waitUntilReady(readyTimeoutMs);
  }

  /** Stop a broker known only by pid (e.g. from lab.json). `propertiesFile` guards against pid reuse. */
  static async stopPid(pid: number, propertiesFile?: string, graceMs = DEFAULT_STOP_GRACE_MS) {
    return terminatePid(pid, { graceMs, marker: propertiesFile ?? KAFKA_MAIN_CLASS });
  }

  private spawn(): void {
    this.exit = undefined;
    const fd = openLogFile(this.info.logFile);
    let child: ChildProcess;
    try {
      child = spawn(this.launch.command, this.launch.args, {
        cwd: this.info.dir,
        stdio: ['ignore', fd, fd],
        detached: this.launch.detached,
      });
    } finally {
      closeLogFile(fd);
    }
    if (child.pid === undefined)
      throw new Error(`could not start ${this.launch.command}: is Java installed?`);
    child.on('error', () => undefined);
    child.on('exit', (code, signal) => {
      if (this.child === child) this.exit = { code, signal };
    });
    if (this.launch.detached) child.unref();
    this.child = child;
    this.info.pid = child.pid;
  }

  private async waitUntilReady(timeoutMs: number): Promise<void> {
    const bootstrap = advertisedAddress(this.info.listeners[0]!);
    try {
      await waitForKafka([bootstrap], {
        timeoutMs,
        abortIf: () => {
          if (this.exit !== undefined || !isPidAlive(this.info.pid)) {
            const how =
              this.exit?.signal != null
                ? `was killed by ${this.exit.signal}`
                : `exited with code ${String(this.exit?.code)}`;
            throw new Error(`the Kafka broker ${how} before it was ready`);
          }
        },
      });
    } catch (err) {
      const tail = await tailFile(this.info.logFile, 40, this.launch.logStartOffset);
      throw new Error(
        `Kafka did not become ready on ${bootstrap}: ${errorMessage(err)}\n  broker log ${this.info.logFile}:\n${indent(tail || '(empty)')}`,
        { cause: err },
      );
    }
  }

  /** Wait for the process to exit (after a kill); true if it did within `timeoutMs`. */
  waitForExit(timeoutMs = 30_000): Promise<boolean> {
    return waitForPidExit(this.info.pid, timeoutMs);
  }

  /** The child process handle while this object started it (undefined after a reattach). */
  get process(): ChildProcess | undefined {
    return this.child;
  }
}

/**
 * Wait until a Kafka broker answers a metadata request (kafkajs admin `describeCluster`) through
 * `brokers`. Throws {@link WaitTimeoutError} naming the last connection error.
 */
export async function waitForKafka(
  brokers: readonly string[],
  options: { timeoutMs: number; abortIf?: () => void },
): Promise<void> {
  await waitFor(() => probeKafka(brokers), {
    description: `Kafka to answer on ${brokers.join(',')}`,
    timeoutMs: options.timeoutMs,
    intervalMs: 250,
    abortIf: options.abortIf,
  });
}

/** One metadata round trip through `brokers`; resolves true or throws. */
export async function probeKafka(brokers: readonly string[], timeoutMs = 3_000): Promise<true> {
  const kafka = new Kafka({
    clientId: 'hothot-lab-probe',
    brokers: [...brokers],
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

function javaBinary(): string {
  const home = process.env.JAVA_HOME;
  return home !== undefined && home !== '' && existsSync(join(home, 'bin', 'java'))
    ? join(home, 'bin', 'java')
    : 'java';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
