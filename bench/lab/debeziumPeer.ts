/**
 * The Debezium peer of #3 and #4 (issue 13): PostgreSQL → Debezium PostgreSQL source connector (pgoutput)
 * → Kafka → Debezium JDBC sink connector → PostgreSQL, in one Kafka Connect standalone worker, on the
 * bench lab's own broker.
 *
 * - Source: database `dbz` in the `pub` cluster (wal_level = logical, track_commit_timestamp = on), migrated
 *   with hothot's migrations; publication `dbz_pub FOR TABLE item`, slot `dbz_slot`. pgbench writes the
 *   same SQL there as for the logical-replication peer (item, item_history and outbox rows); Debezium
 *   captures `public.item`.
 * - Sink: database `dbz` in the `sub` cluster (same schema), upserts by primary key. The sink commits in
 *   an ordinary transaction, so when a row landed is its commit timestamp, as in `eu`.
 * - Kafka: the broker's INTERNAL listener (SASL_SSL, SCRAM-SHA-512 as the admin principal, TLS against
 *   the lab's CA): same broker, same security as the regions' listeners. JSON converter with schemas
 *   (there is no schema registry here); topic `dbz.public.item`, one partition, made before the worker starts.
 *
 * The worker runs from the jars of infra/debezium/pom.xml (infra/lab/debeziumJars.ts), its REST API on
 * 127.0.0.1 (used to stop and resume the sink for #4 and to read connector states).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { ensureDebeziumJars, type DebeziumVersions } from '../../infra/lab/debeziumJars.js';
import { KAFKA_ADMIN_PRINCIPAL } from '../../infra/lab/labSecrets.js';
import { closeLogFile, fileSize, openLogFile, tailFile } from '../../infra/lab/logFiles.js';
import { REPO_ROOT } from '../../infra/lab/paths.js';
import { PortAllocator } from '../../infra/lab/ports.js';
import { indent, isPidAlive, terminatePid } from '../../infra/lab/processes.js';
import { waitFor } from '../../infra/lab/waitFor.js';
import { migrate } from '../../shared/db/migrate.js';
import { kafkaSecurityConfig } from '../../shared/kafka/client.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import type { PgbenchTarget } from '../load/pgbench.js';
import type { BenchLab } from './benchLab.js';

export const DEBEZIUM_DB = 'dbz';
const PUBLICATION = 'dbz_pub';
const SLOT = 'dbz_slot';
const TOPIC_PREFIX = 'dbz';
export const DEBEZIUM_TOPIC = `${TOPIC_PREFIX}.public.item`;
const SOURCE = 'dbz-source';
const SINK = 'dbz-sink';
const CONNECT_MAIN = 'org.apache.kafka.connect.cli.ConnectStandalone';
const LOG4J2 = join(REPO_ROOT, 'infra', 'debezium', 'connect-log4j2.properties');
const READY_TIMEOUT_MS = 180_000;

/**
 * Settings that differ from Debezium's defaults, shown in the report. Everything else is left as
 * shipped (e.g. the sink's batch.size 500, the worker's producer and consumer defaults).
 */
export const DEBEZIUM_TUNING: Readonly<Record<string, string>> = {
  // The source task waits this long for changes when its queue is empty (default 500 ms): lowered so that
  // the peer's lag is not a polling interval. It costs a wake-up per 10 ms when idle.
  'source poll.interval.ms': '10',
  // Kafka Connect's producer has one request in flight (max.in.flight.requests.per.connection = 1, set by
  // the worker) and batches of at most 16 KiB (default batch.size), ~5 rows of ~2.8 KB JSON with inline
  // schemas: on this machine that capped the source at ~100–400 rows/s. Raised so that one request
  // carries whatever accumulated, as hothot's relay does (one publish in flight carrying all it has).
  'worker producer.batch.size': '1048576',
  // How often the worker commits source offsets, which is when Debezium confirms the LSN to PostgreSQL
  // (default 60 s): lowered so that the slot does not hold WAL for a minute; not on the lag path.
  'worker offset.flush.interval.ms': '1000',
};

export interface DebeziumPeerOptions {
  log: (message: string) => void;
  /** JVM maximum heap of the Connect worker. @default 768 */
  heapMb?: number;
}

export class DebeziumPeer {
  private child: ChildProcess | undefined;
  private exited = false;
  private readonly pools = new Map<'source' | 'sink', pg.Pool>();
  private stopped = false;

  private constructor(
    private readonly lab: BenchLab,
    readonly dir: string,
    readonly versions: DebeziumVersions,
    private readonly restPort: number,
    private readonly logFile: string,
    private readonly workerFile: string,
  ) {}

  /**
   * Fetch the jars if needed (Maven, with progress), make the source and sink databases, start the
   * Connect worker with both connectors and wait until the source streams and the sink consumes.
   */
  static async start(lab: BenchLab, options: DebeziumPeerOptions): Promise<DebeziumPeer> {
    const { log } = options;
    const jars = await ensureDebeziumJars({ onProgress: log });
    const kafka = lab.kafka;
    if (kafka === undefined) throw new Error('the bench lab has no Kafka broker');
    const dir = join(lab.dir, 'debezium');
    mkdirSync(dir, { recursive: true });
    const secrets = lab.credentials;

    // Databases: hothot's schema on both sides (as `pub`/`sub`), a publication on the source.
    const pub = lab.cluster('pub');
    const sub = lab.cluster('sub');
    await pub.createDatabase(DEBEZIUM_DB);
    await sub.createDatabase(DEBEZIUM_DB);
    const restPort = await new PortAllocator().allocate(undefined, 'the Kafka Connect REST API');
    const logFile = join(lab.logsDir, 'debezium-connect.log');
    const workerFile = join(secrets.dir, 'debezium-worker.properties');
    const peer = new DebeziumPeer(lab, dir, jars, restPort, logFile, workerFile);
    try {
      const migrationLog = createRootLogger({ region: 'bench', level: 'warn' });
      await migrate(peer.db('source'), migrationLog);
      await migrate(peer.db('sink'), migrationLog);
      await peer.db('source').query(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE item`);
      // The topic exists before the worker starts: else the sink's consumer may have the broker auto-create
      // it first (num.partitions = 3) before the source creates it with its own settings.
      await peer.createTopic();

      // Files holding passwords go to the lab's secrets directory (0700), 0600.
      const adminPassword = secrets.kafkaPassword(KAFKA_ADMIN_PRINCIPAL);
      const kafkaClient = kafkaClientProperties(adminPassword, secrets.caCertFile);
      writeFileSync(
        workerFile,
        properties({
          'bootstrap.servers': kafka.internalBootstrap,
          ...kafkaClient,
          ...prefixed('producer.', kafkaClient),
          'producer.batch.size': DEBEZIUM_TUNING['worker producer.batch.size']!,
          ...prefixed('consumer.', kafkaClient),
          ...prefixed('admin.', kafkaClient),
          'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
          'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
          'key.converter.schemas.enable': 'true',
          'value.converter.schemas.enable': 'true',
          'offset.storage.file.filename': join(dir, 'connect.offsets'),
          'offset.flush.interval.ms': DEBEZIUM_TUNING['worker offset.flush.interval.ms']!,
          listeners: `http://127.0.0.1:${restPort}`,
          'plugin.discovery': 'only_scan',
        }),
        { mode: 0o600 },
      );
      const sourceFile = join(secrets.dir, 'debezium-source.properties');
      writeFileSync(
        sourceFile,
        properties({
          name: SOURCE,
          'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
          'tasks.max': '1',
          'plugin.name': 'pgoutput',
          'database.hostname': '127.0.0.1',
          'database.port': String(pub.port),
          'database.user': 'postgres',
          'database.password': secrets.postgresPassword('pub', 'superuser'),
          'database.dbname': DEBEZIUM_DB,
          'topic.prefix': TOPIC_PREFIX,
          'table.include.list': 'public.item',
          'publication.name': PUBLICATION,
          'publication.autocreate.mode': 'disabled',
          'slot.name': SLOT,
          'snapshot.mode': 'no_data',
          'poll.interval.ms': DEBEZIUM_TUNING['source poll.interval.ms']!,
          // The sink learns the columns' PostgreSQL types (jsonb, timestamptz) from the records.
          'column.propagate.source.type': '.*',
        }),
        { mode: 0o600 },
      );
      const sinkFile = join(secrets.dir, 'debezium-sink.properties');
      writeFileSync(
        sinkFile,
        properties({
          name: SINK,
          'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
          'tasks.max': '1',
          topics: DEBEZIUM_TOPIC,
          'connection.url': `jdbc:postgresql://127.0.0.1:${sub.port}/${DEBEZIUM_DB}`,
          'connection.username': 'postgres',
          'connection.password': secrets.postgresPassword('sub', 'superuser'),
          'insert.mode': 'upsert',
          'primary.key.mode': 'record_key',
          'delete.enabled': 'false',
          'schema.evolution': 'none',
          'collection.name.format': 'item',
          'use.time.zone': 'UTC',
        }),
        { mode: 0o600 },
      );

      const heapMb = options.heapMb ?? 768;
      peer.spawn([
        `-Xms${Math.min(256, heapMb)}m`,
        `-Xmx${heapMb}m`,
        '-XX:+UseG1GC',
        '-XX:MaxGCPauseMillis=20',
        '-XX:+ExitOnOutOfMemoryError',
        '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${LOG4J2}`,
        '-cp',
        join(jars.libsDir, '*'),
        CONNECT_MAIN,
        workerFile,
        sourceFile,
        sinkFile,
      ]);
      log(
        `Kafka Connect ${jars.kafkaConnect} with Debezium ${jars.debezium} (PostgreSQL source → JDBC sink) starting (pid ${peer.child?.pid ?? '?'})`,
      );
      await peer.waitUntilStreaming(READY_TIMEOUT_MS);
    } catch (err) {
      await peer.stop();
      throw err;
    }
    return peer;
  }

  /** A small pool on the source (`pub`/dbz) or sink (`sub`/dbz) database (measurements, not load). */
  db(side: 'source' | 'sink'): pg.Pool {
    let pool = this.pools.get(side);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: this.lab.cluster(side === 'source' ? 'pub' : 'sub').url(DEBEZIUM_DB),
        max: 4,
        application_name: 'hothot-bench',
      });
      pool.on('error', () => undefined);
      this.pools.set(side, pool);
    }
    return pool;
  }

  /** pgbench's target: the source database. */
  pgbenchTarget(): PgbenchTarget {
    return { ...this.lab.pgbenchTarget('pub'), database: DEBEZIUM_DB };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stop the sink connector (its task shuts down, its consumer leaves; offsets committed). */
  async stopSink(): Promise<void> {
    await this.rest('PUT', `/connectors/${SINK}/stop`);
    await waitFor(async () => (await this.connectorState(SINK)).connector === 'STOPPED', {
      description: 'the Debezium sink to stop',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
  }

  /** Resume a stopped sink: its task starts again and consumes from its committed offsets. */
  async resumeSink(): Promise<void> {
    await this.rest('PUT', `/connectors/${SINK}/resume`);
  }

  private async createTopic(): Promise<void> {
    const admin = this.kafkaAdmin();
    await admin.connect();
    try {
      await admin.createTopics({
        topics: [{ topic: DEBEZIUM_TOPIC, numPartitions: 1, replicationFactor: 1 }],
        waitForLeaders: true,
      });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private kafkaAdmin() {
    return new Kafka({
      clientId: 'hothot-bench-debezium',
      brokers: [this.lab.kafka!.internalBootstrap],
      logLevel: logLevel.NOTHING,
      ...kafkaSecurityConfig(this.lab.kafkaClientSecurity()),
    }).admin();
  }

  /** Messages in the Debezium topic (its end offset: one partition, never compacted or deleted here). */
  async topicMessages(): Promise<number> {
    const admin = this.kafkaAdmin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(DEBEZIUM_TOPIC);
      return offsets.reduce((n, o) => n + Number(o.high), 0);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /** Connector and task states from the worker's REST API. */
  async connectorState(name: string): Promise<{ connector: string; tasks: string[]; trace?: string }> {
    const body = (await this.rest('GET', `/connectors/${name}/status`)) as {
      connector: { state: string; trace?: string };
      tasks: { state: string; trace?: string }[];
    };
    const trace = body.connector.trace ?? body.tasks.find((t) => t.trace !== undefined)?.trace;
    return {
      connector: body.connector.state,
      tasks: body.tasks.map((t) => t.state),
      ...(trace !== undefined ? { trace } : {}),
    };
  }

  /** Stop the worker (SIGTERM, SIGKILL after 20 s) and close the pools. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.allSettled([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
    const pid = this.child?.pid;
    if (pid !== undefined) await terminatePid(pid, { graceMs: 20_000, marker: CONNECT_MAIN });
  }

  private spawn(args: string[]): void {
    const fd = openLogFile(this.logFile);
    let child: ChildProcess;
    try {
      child = spawn(javaBinary(), args, {
        cwd: this.dir,
        stdio: ['ignore', fd, fd],
        // Its own process group: Ctrl-C reaches the bench, which stops the worker in order.
        detached: true,
      });
    } finally {
      closeLogFile(fd);
    }
    if (child.pid === undefined) throw new Error('could not start Kafka Connect: is Java installed?');
    child.on('error', () => undefined);
    child.on('exit', () => {
      this.exited = true;
    });
    child.unref();
    this.child = child;
  }

  /** Both connectors and their tasks RUNNING, and the source's replication slot active. */
  private async waitUntilStreaming(timeoutMs: number): Promise<void> {
    const logStart = fileSize(this.logFile);
    let last = 'the worker to answer';
    try {
      await waitFor(
        async () => {
          if (this.exited || (this.child?.pid !== undefined && !isPidAlive(this.child.pid)))
            throw new Error('Kafka Connect exited before it was ready');
          for (const name of [SOURCE, SINK]) {
            let s: Awaited<ReturnType<DebeziumPeer['connectorState']>>;
            try {
              s = await this.connectorState(name);
            } catch (err) {
              last = `${name}: ${err instanceof Error ? err.message : String(err)}`;
              return false;
            }
            if (s.connector === 'FAILED' || s.tasks.includes('FAILED'))
              throw new Error(`Debezium connector ${name} failed:\n${indent(s.trace ?? '(no trace)')}`);
            last = `${name}: connector ${s.connector}, tasks ${s.tasks.join(',') || 'none yet'}`;
            if (s.connector !== 'RUNNING' || s.tasks.length === 0 || s.tasks.some((t) => t !== 'RUNNING'))
              return false;
          }
          const { rows } = await this.db('source').query<{ active: boolean }>(
            'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
            [SLOT],
          );
          last = `slot ${SLOT}: ${rows[0] === undefined ? 'not created yet' : rows[0].active ? 'active' : 'inactive'}`;
          return rows[0]?.active === true;
        },
        { description: 'Debezium to stream', timeoutMs, intervalMs: 500 },
      );
    } catch (err) {
      const tail = await tailFile(this.logFile, 40, logStart);
      throw new Error(
        `Debezium did not become ready (${last}): ${err instanceof Error ? err.message : String(err)}\n  worker log ${this.logFile}:\n${indent(tail || '(empty)')}`,
        { cause: err },
      );
    }
  }

  private async rest(method: 'GET' | 'PUT', path: string): Promise<unknown> {
    const res = await fetch(`http://127.0.0.1:${this.restPort}${path}`, {
      method,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Kafka Connect ${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return text === '' ? undefined : (JSON.parse(text) as unknown);
  }
}

/**
 * A Kafka client's security settings as admin over SASL_SSL (as the broker's command-line tools use);
 * also the transport floor's Java tool (#5).
 */
export function kafkaClientProperties(adminPassword: string, caFile: string): Record<string, string> {
  if (/["\\\n]/.test(adminPassword))
    throw new Error('a JAAS value may not hold quotes, backslashes or newlines');
  return {
    'security.protocol': 'SASL_SSL',
    'sasl.mechanism': 'SCRAM-SHA-512',
    'sasl.jaas.config': `org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN_PRINCIPAL}" password="${adminPassword}";`,
    'ssl.truststore.type': 'PEM',
    'ssl.truststore.location': caFile,
  };
}

function prefixed(prefix: string, values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}${k}`, v]));
}

/** A Java properties file (values escaped: backslashes, line breaks, leading blanks). */
export function properties(values: Record<string, string>): string {
  const escape = (v: string) =>
    v
      .replace(/\\/g, '\\\\')
      .replace(/\n/g, '\\n')
      .replace(/^\s/, (c) => `\\${c}`);
  return Object.entries(values)
    .map(([k, v]) => `${k}=${escape(v)}\n`)
    .join('');
}

/** `$JAVA_HOME/bin/java`, else `java` from the PATH. */
export function javaBinary(): string {
  const home = process.env.JAVA_HOME;
  return home !== undefined && home !== '' ? join(home, 'bin', 'java') : 'java';
}
