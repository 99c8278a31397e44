/**
 * The bench's own native lab, made from the lab's building blocks (PostgresCluster, KafkaBroker,
 * RegionProcess) in a directory of its own:
 *
 * - hothot: PostgreSQL `us` and `eu` (one database each, migrated by its region process), one Kafka
 *   broker and one region process per region. The broker has two listeners per region: one
 *   advertised at the region's Toxiproxy broker link (as in the lab: cutting `eu`'s link cuts `eu`
 *   alone), and a direct one. Regions run `direct` (no proxy hop: what a deployment has) unless a
 *   scenario needs to cut a link, when they are restarted `linked` (see {@link useLinks});
 * - the peers: a database `peer` in the `us` cluster (pgbench runs the write path's SQL there, on the
 *   same server hothot's `us` writes to), and two more clusters `pub` → `sub` joined by native logical
 *   replication (publication/subscription of the `item` table).
 *
 * Every cluster records commit timestamps (`track_commit_timestamp`), so replication lag is measured
 * the same way for both systems: commit time of a row in the target − commit time in the origin.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { provisionAdminKey } from '../../infra/lab/labClientKeys.js';
import { ensureKafkaJars, kafkaVersion } from '../../infra/lab/kafkaJars.js';
import { KafkaBroker } from '../../infra/lab/kafkaBroker.js';
import { provisionRegions } from '../../infra/lab/kafkaAcls.js';
import { KAFKA_ADMIN_PRINCIPAL, ensureLabSecrets, type LabSecrets } from '../../infra/lab/labSecrets.js';
import { kafkaSecurityConfig, type KafkaClientSecurity } from '../../shared/kafka/client.js';
import { Kafka, logLevel } from 'kafkajs';
import { PortAllocator } from '../../infra/lab/ports.js';
import { PostgresCluster, findPostgresBinaries } from '../../infra/lab/postgresCluster.js';
import { RegionProcess } from '../../infra/lab/regionProcess.js';
import { BrokerLinkProxies, PartitionMode } from '../../infra/lab/brokerLinkProxies.js';
import { ensureToxiproxy } from '../../infra/lab/toxiproxyBinary.js';
import { ToxiproxyServer } from '../../infra/lab/toxiproxyServer.js';
import { waitFor } from '../../infra/lab/waitFor.js';
import { migrate } from '../../shared/db/migrate.js';
import { SUBSCRIBER_APPLY_STAMP_SQL, type LandedClock } from '../measure/commitTimes.js';
import { createRootLogger } from '../../shared/logging/logger.js';
import { generateApiKey } from '../../shared/security/apiKey.js';
import { eventKeyEnv, provisionEventKeys, type EventSigningFiles } from '../../shared/security/eventKeys.js';

export const REGIONS = ['us', 'eu'] as const;
export type RegionName = (typeof REGIONS)[number];
export const CLUSTERS = ['us', 'eu', 'pub', 'sub'] as const;
export type ClusterName = (typeof CLUSTERS)[number];
/** Databases the bench queries: the regions', the pgbench peer's, and the logical-replication pair's. */
export type DatabaseName = 'us' | 'eu' | 'peer' | 'pub' | 'sub';
/** How the region processes reach Kafka: straight to their listener, or through their Toxiproxy link. */
export type LinkMode = 'direct' | 'linked';

const HOTHOT_DB = 'hothot';
const PEER_DB = 'peer';
const PUBLICATION = 'bench_pub';
export const SUBSCRIPTION = 'bench_sub';

export interface BenchLabOptions {
  /** Extra environment for both region processes (tuning knobs). */
  regionEnv?: Readonly<Record<string, string>>;
  /** Extra PostgreSQL settings for the hothot clusters (e.g. pg_stat_statements when profiling). */
  hothotPgSettings?: Readonly<Record<string, string | number | boolean>>;
  /** Entry point of the region processes, relative to the repository root. @default services/region/main.ts */
  regionEntry?: string;
  /** Keep the lab directory after stop (it is removed otherwise). */
  keep?: boolean;
  log: (message: string) => void;
}

export class BenchLab {
  readonly clusters = new Map<ClusterName, PostgresCluster>();
  readonly regions = new Map<RegionName, RegionProcess>();
  kafka: KafkaBroker | undefined;
  toxiproxy: ToxiproxyServer | undefined;
  private readonly cutRegions = new Set<RegionName>();
  readonly kafkaVersion = kafkaVersion();
  pgMajorVersion = 0;
  private readonly pools = new Map<DatabaseName, pg.Pool>();
  private stopped = false;
  private kafkaPorts: Record<RegionName, number> = { us: 0, eu: 0 };
  private directPorts: Record<RegionName, number> = { us: 0, eu: 0 };
  private proxyPorts: Record<RegionName, number> = { us: 0, eu: 0 };
  private regionPorts: Record<RegionName, number> = { us: 0, eu: 0 };
  private linkMode: LinkMode = 'direct';
  /** The bench's admin API key (read, write, admin), created in both regions' databases. */
  private readonly adminKey = generateApiKey().token;
  /** SESSION_TOKEN_KEYS of both region processes. */
  private readonly sessionTokenKeys = randomBytes(32).toString('base64url');

  private constructor(
    readonly dir: string,
    private readonly options: BenchLabOptions,
  ) {}

  /** Start everything; on failure stop whatever started and rethrow. */
  static async up(options: BenchLabOptions): Promise<BenchLab> {
    const dir = mkdtempSync(join(tmpdir(), 'hothot-bench-'));
    chmodSync(dir, 0o755); // PostgreSQL runs as the postgres user when we are root
    const lab = new BenchLab(dir, options);
    try {
      await lab.start();
    } catch (err) {
      await lab.stop(true);
      throw err;
    }
    return lab;
  }

  /** The `Authorization` header value every bench client sends. */
  get authorization(): string {
    return `Bearer ${this.adminKey}`;
  }

  get logsDir(): string {
    return join(this.dir, 'logs');
  }

  region(name: RegionName): RegionProcess {
    const r = this.regions.get(name);
    if (!r) throw new Error(`no region ${name}`);
    return r;
  }

  cluster(name: ClusterName): PostgresCluster {
    const c = this.clusters.get(name);
    if (!c) throw new Error(`no cluster ${name}`);
    return c;
  }

  /** A small pool on one of the bench's databases (for measurements, not for load). */
  db(name: DatabaseName): pg.Pool {
    let pool = this.pools.get(name);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: this.databaseUrl(name),
        max: 4,
        application_name: 'hothot-bench',
      });
      pool.on('error', () => undefined);
      this.pools.set(name, pool);
    }
    return pool;
  }

  databaseUrl(name: DatabaseName): string {
    switch (name) {
      case 'us':
      case 'eu':
      case 'pub':
      case 'sub':
        return this.cluster(name).url(HOTHOT_DB);
      case 'peer':
        return this.cluster('us').url(PEER_DB);
    }
  }

  /** How to read when a row landed in database `name` (see measure/commitTimes.ts). */
  landedClock(name: DatabaseName): LandedClock {
    return name === 'sub' ? 'updated_at' : 'commit';
  }

  /** libpq-style connection parameters for pgbench against `name`. */
  pgbenchTarget(name: 'peer' | 'pub'): {
    host: string;
    port: number;
    user: string;
    database: string;
    password: string;
  } {
    const clusterName = name === 'peer' ? 'us' : 'pub';
    const cluster = this.cluster(clusterName);
    return {
      host: '127.0.0.1',
      port: cluster.port,
      user: 'postgres',
      database: name === 'peer' ? PEER_DB : HOTHOT_DB,
      password: this.credentials.postgresPassword(clusterName, 'superuser'),
    };
  }

  /** The bench's credentials (Kafka CA and SCRAM passwords, PostgreSQL passwords), as the lab makes them. */
  get credentials(): LabSecrets {
    if (this.secrets === undefined) throw new Error('the bench lab has not made its credentials yet');
    return this.secrets;
  }
  private secrets: LabSecrets | undefined;
  /** Each region's event-key files (made at start). */
  private eventKeys: Record<string, EventSigningFiles> = {};

  /** How a bench client connects to Kafka: TLS and SCRAM as admin (who may use any topic and group). */
  kafkaClientSecurity(): KafkaClientSecurity {
    return {
      ca: this.credentials.caCertificate(),
      username: KAFKA_ADMIN_PRINCIPAL,
      password: this.credentials.kafkaPassword(KAFKA_ADMIN_PRINCIPAL),
    };
  }

  /** Bootstrap address of a region's broker link (through its proxy). */
  kafkaBootstrap(region: RegionName): string {
    return `127.0.0.1:${this.proxyPorts[region]}`;
  }

  /** Bootstrap address of a region's direct listener (no proxy hop). */
  kafkaDirect(region: RegionName): string {
    return `127.0.0.1:${this.directPorts[region]}`;
  }

  get linkModeNow(): LinkMode {
    return this.linkMode;
  }

  /**
   * Restart both region processes reaching Kafka `direct`ly or through their `linked` Toxiproxy
   * proxies (needed to cut a link). Same ports, databases and consumer groups: they carry on.
   */
  async useLinks(mode: LinkMode): Promise<void> {
    if (mode === this.linkMode) return;
    this.options.log(`restarting the region processes with ${mode} broker links`);
    await settle([...this.regions.values()].map((r) => r.stop()));
    this.linkMode = mode;
    await this.startRegions();
  }

  /**
   * Restart both region processes with `envFor(region)` over the run's own `regionEnv` (until the
   * next call; `() => ({})` goes back to the run's own). Same databases, topics and ports.
   */
  async restartRegions(envFor: (region: RegionName) => Readonly<Record<string, string>>): Promise<void> {
    await settle([...this.regions.values()].map((r) => r.stop()));
    this.extraEnv = envFor;
    await this.startRegions();
  }
  private extraEnv: (region: RegionName) => Readonly<Record<string, string>> = () => ({});

  /**
   * Restart one region process alone with `env` over the run's own `regionEnv` (e.g. another
   * API_PROCESSES), ready when its API answers: the other region may be stopped meanwhile. `{}` goes
   * back to the run's own settings.
   */
  async restartRegion(r: RegionName, env: Readonly<Record<string, string>>): Promise<void> {
    await this.regions.get(r)?.stop();
    const previous = this.extraEnv;
    this.extraEnv = (x) => (x === r ? env : previous(x));
    await this.startRegion(r);
    await provisionAdminKey(this.adminKey, [this.databaseUrl(r)]);
  }

  get links(): BrokerLinkProxies {
    if (!this.toxiproxy) throw new Error('the bench lab has no Toxiproxy');
    return new BrokerLinkProxies(this.toxiproxy.url);
  }

  /**
   * Cut a region's broker link (the lab's `partition`, reset mode: connections closed, new ones
   * refused): its relay cannot publish and its applier cannot consume; its API keeps serving.
   */
  async cut(region: RegionName): Promise<void> {
    await this.links.partition(region, PartitionMode.Reset);
    this.cutRegions.add(region);
  }

  async heal(region: RegionName): Promise<void> {
    await this.links.heal(region);
    this.cutRegions.delete(region);
  }

  isCut(region: RegionName): boolean {
    return this.cutRegions.has(region);
  }

  private async start(): Promise<void> {
    const { log } = this.options;
    mkdirSync(this.logsDir, { recursive: true });
    // Secured as the lab is (TLS + SCRAM + ACLs to Kafka, passwords for PostgreSQL): measured as deployed.
    const secrets = ensureLabSecrets(join(this.dir, 'secrets'), {
      kafkaPrincipals: [...REGIONS],
      postgresClusters: [...CLUSTERS],
    });
    this.secrets = secrets;
    // Each region signs what it publishes and verifies its peer (SECURITY_MODE=on, the default).
    this.eventKeys = provisionEventKeys(join(this.dir, 'secrets', 'event-keys'), [...REGIONS]);
    const binaries = findPostgresBinaries();
    this.pgMajorVersion = binaries.majorVersion;
    const jars = await ensureKafkaJars({ onFetchStart: log });
    const toxiproxyBinary = await ensureToxiproxy({ onBuildStart: log });

    const ports = new PortAllocator();
    const port = (what: string) => ports.allocate(undefined, what);
    const pgPorts = {} as Record<ClusterName, number>;
    for (const c of CLUSTERS) pgPorts[c] = await port(`PostgreSQL ${c}`);
    const regionPorts = {} as Record<RegionName, number>;
    for (const r of REGIONS) {
      regionPorts[r] = await port(`region ${r}`);
      this.kafkaPorts[r] = await port(`Kafka listener ${r}`);
      this.directPorts[r] = await port(`Kafka direct listener ${r}`);
      this.proxyPorts[r] = await port(`link proxy ${r}`);
    }
    const controllerPort = await port('Kafka controller');
    const internalPort = await port('Kafka internal listener');

    // The broker links first: Kafka advertises them and its readiness probe goes through them.
    this.toxiproxy = await ToxiproxyServer.start({
      port: await port('Toxiproxy API'),
      binary: toxiproxyBinary,
      logFile: join(this.logsDir, 'toxiproxy.log'),
      detached: true,
    });
    await this.links.define(
      REGIONS.map((r) => ({
        region: r,
        listen: `127.0.0.1:${this.proxyPorts[r]}`,
        upstream: `127.0.0.1:${this.kafkaPorts[r]}`,
      })),
    );

    log(`starting PostgreSQL (${CLUSTERS.join(', ')}) and Kafka ${this.kafkaVersion} in ${this.dir}`);
    const common = { track_commit_timestamp: 'on' };
    const settings: Record<ClusterName, Record<string, string | number | boolean>> = {
      us: { ...common, ...this.options.hothotPgSettings },
      eu: { ...common, ...this.options.hothotPgSettings },
      pub: { ...common, wal_level: 'logical' },
      sub: { ...common, wal_level: 'logical' },
    };
    await settle([
      ...CLUSTERS.map(async (c) => {
        const cluster = new PostgresCluster({
          dataDir: join(this.dir, `pg-${c}`),
          port: pgPorts[c],
          binDir: binaries.binDir,
          logFile: join(this.logsDir, `postgres-${c}.log`),
          settings: settings[c],
          superuserPassword: secrets.postgresPassword(c, 'superuser'),
        });
        this.clusters.set(c, cluster);
        await cluster.init();
        await cluster.start();
        await cluster.createDatabase(HOTHOT_DB);
        if (c === 'us') await cluster.createDatabase(PEER_DB);
      }),
      (async () => {
        this.kafka = await KafkaBroker.start({
          dir: join(this.dir, 'kafka'),
          logFile: join(this.logsDir, 'kafka.log'),
          libsDir: jars.libsDir,
          controllerPort,
          internalPort,
          listeners: REGIONS.flatMap((r) => [
            { name: r.toUpperCase(), port: this.kafkaPorts[r], advertisedPort: this.proxyPorts[r] },
            { name: `${r.toUpperCase()}_DIRECT`, port: this.directPorts[r] },
          ]),
          detached: true,
          security: {
            tls: { keystoreFile: secrets.brokerKeystoreFile, truststoreFile: secrets.caCertFile },
            scramUsers: Object.fromEntries(
              [KAFKA_ADMIN_PRINCIPAL, ...REGIONS].map((p) => [p, secrets.kafkaPassword(p)]),
            ),
            secretsDir: secrets.dir,
          },
        });
        await provisionRegions(
          new Kafka({
            clientId: 'hothot-bench-admin',
            brokers: [this.kafka.internalBootstrap],
            logLevel: logLevel.NOTHING,
            ...kafkaSecurityConfig(this.kafkaClientSecurity()),
          }),
          { prefix: this.options.regionEnv?.KAFKA_TOPIC_PREFIX ?? 'hothot', regions: [...REGIONS] },
        );
      })(),
    ]);

    // The peers' schema is hothot's own (same tables, same indexes).
    const migrationLog = createRootLogger({ region: 'bench', level: 'warn' });
    for (const name of ['peer', 'pub', 'sub'] as const) await migrate(this.db(name), migrationLog);
    await this.db('pub').query(`CREATE PUBLICATION ${PUBLICATION} FOR TABLE item`);
    for (const sql of SUBSCRIBER_APPLY_STAMP_SQL) await this.db('sub').query(sql);
    const pubCluster = this.cluster('pub');
    await this.db('sub').query(
      // The password is hex (no quoting needed); PostgreSQL keeps the connection string in pg_subscription,
      // which only superusers read.
      `CREATE SUBSCRIPTION ${SUBSCRIPTION} CONNECTION 'host=127.0.0.1 port=${pubCluster.port} user=postgres dbname=${HOTHOT_DB} password=${secrets.postgresPassword('pub', 'superuser')}' PUBLICATION ${PUBLICATION}`,
    );
    await waitFor(
      async () => {
        const { rows } = await this.db('sub').query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_subscription_rel WHERE srsubstate <> 'r'`,
        );
        return rows[0]?.n === '0';
      },
      { description: 'the logical-replication subscription to be ready', timeoutMs: 60_000, intervalMs: 200 },
    );

    for (const r of REGIONS) this.regionPorts[r] = regionPorts[r];
    await this.startRegions();
  }

  private async startRegions(): Promise<void> {
    this.options.log(`starting region processes us, eu (${this.linkMode} broker links)`);
    await settle(REGIONS.map((r) => this.startRegion(r)));
    // Ready means migrated: the admin key can go in (again, after a restart: re-granted as it was).
    await provisionAdminKey(
      this.adminKey,
      REGIONS.map((r) => this.databaseUrl(r)),
    );
    // Ready means the API answers; wait until both appliers consume (a heartbeat from the peer arrived).
    await waitFor(
      async () => {
        for (const r of REGIONS) {
          const res = await fetch(`${this.region(r).url}/v1/status`, {
            headers: { authorization: this.authorization },
          });
          const body = (await res.json()) as { peers: { state: string; heartbeatAgeMs: number | null }[] };
          if (!body.peers.every((p) => p.state === 'up' && (p.heartbeatAgeMs ?? 1e9) < 3000)) return false;
        }
        return true;
      },
      { description: 'both regions to see each other up', timeoutMs: 90_000, intervalMs: 250 },
    );
  }

  private async startRegion(r: RegionName): Promise<void> {
    const region = await RegionProcess.start({
      region: r,
      peerRegions: REGIONS.filter((x) => x !== r),
      databaseUrl: this.databaseUrl(r),
      kafkaBrokers: [this.linkMode === 'linked' ? this.kafkaBootstrap(r) : this.kafkaDirect(r)],
      port: this.regionPorts[r],
      logFile: join(this.logsDir, `region-${r}.log`),
      detached: true,
      env: {
        SESSION_TOKEN_KEYS: this.sessionTokenKeys,
        ...eventKeyEnv(this.eventKeys[r]!),
        KAFKA_SSL_CA_FILE: this.credentials.caCertFile,
        KAFKA_SASL_USERNAME: r,
        KAFKA_SASL_PASSWORD_FILE: this.credentials.kafkaPasswordFile(r),
        ...this.options.regionEnv,
        ...this.extraEnv(r),
      },
      ...(this.options.regionEntry ? { entry: this.options.regionEntry } : {}),
    });
    this.regions.set(r, region);
  }

  /** Stop everything this lab started (idempotent); remove its directory unless kept or failed. */
  async stop(failed = false): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await settle([...this.pools.values()].map((p) => p.end()));
    this.pools.clear();
    await settle([...this.regions.values()].map((r) => r.stop()));
    if (this.kafka) await this.kafka.stop().catch(() => undefined);
    if (this.toxiproxy) await this.toxiproxy.stop().catch(() => undefined);
    const sub = this.clusters.get('sub');
    if (sub) await sub.stop('fast').catch(() => undefined);
    await settle([...this.clusters.values()].map((c) => c.stop('fast')));
    if (failed || this.options.keep === true) {
      this.options.log(`lab files kept in ${this.dir}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** Run all, wait for all, then throw the first failure. */
async function settle(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
