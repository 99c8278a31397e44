/**
 * The native lab: Toxiproxy (one broker-link proxy per region), one PostgreSQL cluster per region, one
 * Kafka broker with one listener per region advertised at that region's proxy, one region process per
 * region reaching Kafka only through its proxy, and HAProxy in front of the regions (or, for `hothot lab
 * up` on a machine without HAProxy, no front door: see {@link LabUpOptions.frontDoor}). Brought up in
 * that order, taken down in the reverse one.
 *
 * Everything the lab starts runs in its own session (not tied to the process that started it), so a
 * foreground `lab up` decides the shutdown order itself on Ctrl-C, and a `--detach`ed one survives
 * the CLI. lab.json records every pid and directory so another process can stop the lab.
 *
 * Secured like a deployment (docs/security.md): the lab makes its credentials once under
 * `<lab dir>/secrets/` (infra/lab/labSecrets.ts) — Kafka's CA and certificate, a SCRAM password per
 * region and for admin, PostgreSQL passwords — runs Kafka over SASL_SSL with ACLs (a region writes
 * only its own topic) and PostgreSQL with SCRAM authentication, and gives each region its own
 * credentials. lab.json, `lab status` and the lab's output name files, never secrets.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaSecurityConfig } from '../../shared/kafka/client.js';
import { eventKeyEnv, provisionEventKeys, type EventSigningFiles } from '../../shared/security/eventKeys.js';
import { provisionRegions } from './kafkaAcls.js';
import {
  KAFKA_ADMIN_PRINCIPAL,
  LabSecrets,
  POSTGRES_APP_ROLE,
  ensureLabSecrets,
  readSecret,
} from './labSecrets.js';
import { FrontDoor, findHaproxy, missingHaproxy, type Balance } from './frontDoor.js';
import {
  ensureAdminKey,
  ensureSessionTokenKeys,
  provisionAdminKey,
  type LabAdminKey,
} from './labClientKeys.js';
import { ensureKafkaJars } from './kafkaJars.js';
import { probeBroker } from '../../shared/kafka/brokerLink.js';
import { KafkaBroker } from './kafkaBroker.js';
import { listenerNameForRegion, RESERVED_LISTENER_NAMES } from './kafkaServerProperties.js';
import {
  LAB_STATE_VERSION,
  labStatePath,
  livePids,
  readLabState,
  removeLabState,
  writeLabState,
  type LabState,
} from './labState.js';
import { resolveLabRoot } from './paths.js';
import { PortAllocator, canConnect } from './ports.js';
import {
  PostgresCluster,
  findPostgresBinaries,
  postmasterPid,
  stopPostgresDataDir,
} from './postgresCluster.js';
import { isPidAlive, isPidRunning, signalPid, waitForPidExit, type TerminateOutcome } from './processes.js';
import { RegionProcess, httpOk, type RegionProcessInfo, type RegionProcessOptions } from './regionProcess.js';
import { BrokerLinkProxies, brokerProxyName } from './brokerLinkProxies.js';
import { ensureToxiproxy } from './toxiproxyBinary.js';
import { ToxiproxyClient } from './toxiproxyClient.js';
import { ToxiproxyServer } from './toxiproxyServer.js';
import { isRegionName } from '../../shared/domain/regionName.js';

export const DEFAULT_REGIONS: readonly string[] = ['us', 'eu'];
/**
 * Regions get base+i, the front door base+99, PostgreSQL base+100+i, Kafka base+200 (controller),
 * +201 (internal), +210+i (region listeners), Toxiproxy's API base+202 and the broker-link proxies
 * base+220+i.
 */
export const DEFAULT_BASE_PORT = 8081;
/** Database each region uses in its own cluster. */
export const LAB_DATABASE = 'hothot';
const OWNER_STOP_TIMEOUT_MS = 120_000;

/** Something the lab reports while it works; the CLI prints these. */
export type LabProgress =
  | { type: 'info'; message: string }
  /** Something the user should act on, though the lab goes on (e.g. no HAProxy: no front door). */
  | { type: 'warning'; message: string; fix?: string }
  | { type: 'step-start'; action: LabAction; component: string; detail: string }
  | { type: 'step-done'; action: LabAction; component: string; detail: string; ms: number }
  | { type: 'step-failed'; action: LabAction; component: string; detail: string; ms: number; error: unknown };

/** Whether a step starts or stops a component. */
export type LabAction = 'start' | 'stop';

export type LabProgressListener = (event: LabProgress) => void;

export interface LabPorts {
  region: Record<string, number>;
  postgres: Record<string, number>;
  kafkaController: number;
  kafkaInternal: number;
  kafkaListener: Record<string, number>;
  /** Toxiproxy's HTTP API. */
  toxiproxy: number;
  /** Per region: the broker-link proxy, the address Kafka advertises to that region. */
  kafkaProxy: Record<string, number>;
  /** HAProxy in front of the regions. */
  frontDoor: number;
}

/**
 * Processes per lab region (`API_PROCESSES`): two, as deployed, so that a region outlives one of its
 * processes and its relay moves to the other (services/region/leadership.ts).
 */
export const LAB_REGION_PROCESSES = 2;

export interface LabUpOptions {
  /** Directory of lab.json; data and logs go to `<root>/lab/`. See `resolveLabRoot`. */
  root: string;
  /** @default us,eu */
  regions?: readonly string[];
  /**
   * Port layout base (see {@link DEFAULT_BASE_PORT}). Given explicitly, a busy port is an error; by
   * default a busy port is replaced by a free one.
   */
  basePort?: number;
  /** Whether the caller returns once the lab is up (recorded in lab.json). @default false */
  detached?: boolean;
  /** Delete the lab's data (`<root>/lab`) first instead of reusing it. @default false */
  fresh?: boolean;
  /** Extra environment for every region process (tuning knobs); overrides `processes`. */
  regionEnv?: Readonly<Record<string, string>>;
  /** `API_PROCESSES` of every region (workers of one region process). @default LAB_REGION_PROCESSES */
  processes?: number;
  /** `LOG_LEVEL` of the region processes. */
  logLevel?: string;
  /** Entry point of the region processes, relative to the repository root. @default services/region/main.ts */
  regionEntry?: string;
  /** Front door weight per region (0–256; missing regions get 100). */
  weights?: Readonly<Record<string, number>>;
  /** How the front door spreads requests (frontDoor.ts `Balance`). @default roundrobin */
  balance?: Balance;
  /**
   * Start HAProxy in front of the regions. `'if-installed'` (what `hothot lab up` asks for): only when
   * the haproxy binary is found, else the lab starts without a front door, warns, and records why in
   * lab.json (`noFrontDoor`). `true`: a missing HAProxy fails the start. @default true
   */
  frontDoor?: boolean | 'if-installed';
  onProgress?: LabProgressListener;
}

/** `lab up` found a lab already running in the same directory. */
export class LabAlreadyRunningError extends Error {
  override readonly name = 'LabAlreadyRunningError';
  constructor(
    readonly root: string,
    readonly livePids: readonly number[],
  ) {
    super(
      `a lab is already running in ${root} (live pids ${livePids.join(', ')}): ` +
        `use it, or stop it with \`hothot lab down${root === resolveLabRoot(undefined, {}) ? '' : ` --dir ${root}`}\``,
    );
  }
}

/** Check region ids: lower-case letters, digits and dashes; distinct; at least one. */
export function validateRegions(regions: readonly string[]): string[] {
  const list = regions.map((r) => r.trim()).filter((r) => r !== '');
  if (list.length === 0) throw new Error('no regions given: pass e.g. --regions us,eu');
  for (const r of list) {
    if (!isRegionName(r)) {
      throw new Error(
        `region ${JSON.stringify(r)}: use lower-case letters, digits and dashes, starting with a letter`,
      );
    }
    if ((RESERVED_LISTENER_NAMES as readonly string[]).includes(listenerNameForRegion(r))) {
      throw new Error(
        `region ${JSON.stringify(r)}: its Kafka listener name is reserved; choose another region id`,
      );
    }
  }
  const listeners = list.map(listenerNameForRegion);
  if (new Set(listeners).size !== listeners.length)
    throw new Error(`regions must be distinct: ${list.join(',')}`);
  return list;
}

/** Preferred ports for `regions` from `basePort` (pure). */
export function labPortLayout(regions: readonly string[], basePort = DEFAULT_BASE_PORT): LabPorts {
  if (regions.length > 10) throw new Error('the lab port layout supports at most 10 regions');
  const perRegion = (offset: number) => Object.fromEntries(regions.map((r, i) => [r, basePort + offset + i]));
  return {
    region: perRegion(0),
    postgres: perRegion(100),
    kafkaController: basePort + 200,
    kafkaInternal: basePort + 201,
    kafkaListener: perRegion(210),
    toxiproxy: basePort + 202,
    kafkaProxy: perRegion(220),
    frontDoor: basePort + 99,
  };
}

/** Ports to use: the layout's when free, else free ones (or an error with an explicit base port). */
export async function allocateLabPorts(regions: readonly string[], basePort?: number): Promise<LabPorts> {
  const layout = labPortLayout(regions, basePort ?? DEFAULT_BASE_PORT);
  const ports = new PortAllocator(basePort !== undefined);
  const each = async (prefs: Record<string, number>, what: string) => {
    const out: Record<string, number> = {};
    for (const [r, p] of Object.entries(prefs)) out[r] = await ports.allocate(p, `${what} ${r}`);
    return out;
  };
  return {
    region: await each(layout.region, 'region'),
    postgres: await each(layout.postgres, 'PostgreSQL'),
    kafkaController: await ports.allocate(layout.kafkaController, 'the Kafka controller'),
    kafkaInternal: await ports.allocate(layout.kafkaInternal, 'the Kafka internal listener'),
    kafkaListener: await each(layout.kafkaListener, 'Kafka listener'),
    toxiproxy: await ports.allocate(layout.toxiproxy, 'the Toxiproxy API'),
    kafkaProxy: await each(layout.kafkaProxy, 'broker-link proxy'),
    frontDoor: await ports.allocate(layout.frontDoor, 'the front door'),
  };
}

/** `<lab dir>/secrets`: the lab's credentials (see infra/lab/labSecrets.ts). */
export function labSecretsDir(root: string): string {
  return join(root, 'lab', 'secrets');
}

/**
 * The URL (with its password: never print it) of region `region`'s database in the lab of `state`,
 * as the region's own role: lab.json keeps it without the password.
 */
export function labDatabaseUrl(state: LabState, region: string): string {
  const pg = state.postgres[region];
  if (pg === undefined)
    throw new Error(`the lab has no region ${region}; it has ${state.regionNames.join(', ')}`);
  const password = readSecret(new LabSecrets(labSecretsDir(state.root)).postgresPasswordFile(region, 'app'));
  const url = new URL(pg.databaseUrl);
  url.password = encodeURIComponent(password);
  return url.toString();
}

export class Lab {
  readonly postgres = new Map<string, PostgresCluster>();
  readonly regions = new Map<string, RegionProcess>();
  kafka: KafkaBroker | undefined;
  toxiproxy: ToxiproxyServer | undefined;
  frontDoor: FrontDoor | undefined;
  private labSecrets: LabSecrets | undefined;
  private labAdminKey: LabAdminKey | undefined;
  private sessionTokenKeys: string | undefined;
  /** Each region's event-signing key files (made in start()). */
  private eventKeys: Record<string, EventSigningFiles> = {};

  private constructor(
    readonly state: LabState,
    private readonly progress: LabProgressListener,
  ) {}

  /** Directory of data and logs. */
  get dir(): string {
    return join(this.state.root, 'lab');
  }

  /** Cut, heal and slow down the regions' broker links. */
  get links(): BrokerLinkProxies {
    if (this.toxiproxy === undefined) throw new Error('the lab has no Toxiproxy');
    return new BrokerLinkProxies(this.toxiproxy.url);
  }

  /** The lab's credentials (once {@link Lab.up} has begun). */
  get secrets(): LabSecrets {
    if (this.labSecrets === undefined) throw new Error('the lab has not made its credentials yet');
    return this.labSecrets;
  }

  /**
   * The lab's admin API key (read, write, admin; in every region's database once the lab is up) and
   * its file: `$HOTHOT_LAB_ADMIN_KEY`, or the one of an earlier run, or a new one
   * (infra/lab/labClientKeys.ts). Print it only where a user asked for the lab.
   */
  get adminKey(): LabAdminKey {
    if (this.labAdminKey === undefined) throw new Error('the lab has not made its admin key yet');
    return this.labAdminKey;
  }

  /** URL of region `name`'s database as the region's own role, with its password: never print it. */
  databaseUrl(name: string): string {
    const cluster = this.postgres.get(name);
    if (cluster === undefined)
      throw new Error(`the lab has no region ${name}; it has ${[...this.postgres.keys()].join(', ')}`);
    return cluster.urlAs(POSTGRES_APP_ROLE, this.secrets.postgresPassword(name, 'app'), LAB_DATABASE);
  }

  /** Region `name`'s event-signing key files (a test signs with them as that region would). */
  eventSigningFiles(name: string): EventSigningFiles {
    const files = this.eventKeys[name];
    if (files === undefined) throw new Error(`the lab has no event keys for ${name}`);
    return files;
  }

  /** The running region process `name`. */
  region(name: string): RegionProcess {
    const region = this.regions.get(name);
    if (region === undefined)
      throw new Error(`the lab has no region ${name}; it has ${[...this.regions.keys()].join(', ')}`);
    return region;
  }

  /**
   * Start a lab and wait until every region is ready. On failure, stops whatever it started and
   * removes lab.json before rethrowing.
   */
  static async up(options: LabUpOptions): Promise<Lab> {
    const regions = validateRegions(options.regions ?? DEFAULT_REGIONS);
    const progress: LabProgressListener = options.onProgress ?? (() => undefined);
    const root = options.root;
    mkdirSync(root, { recursive: true });

    const existing = readLabState(root);
    if (existing !== undefined) {
      const live = livePids(existing);
      if (live.length > 0) throw new LabAlreadyRunningError(root, live);
      removeLabState(root);
      progress({
        type: 'info',
        message: `removed stale ${labStatePath(root)} (nothing it listed was running)`,
      });
    }

    const detached = options.detached ?? false;
    const state: LabState = {
      version: LAB_STATE_VERSION,
      root,
      status: 'starting',
      startedAt: new Date().toISOString(),
      detached,
      ...(detached ? {} : { ownerPid: process.pid }),
      regionNames: regions,
      regions: {},
      postgres: {},
    };
    try {
      writeLabState(state, { exclusive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new LabAlreadyRunningError(root, []);
      throw err;
    }

    const lab = new Lab(state, progress);
    try {
      await lab.start(regions, options);
    } catch (err) {
      progress({ type: 'info', message: 'start failed: stopping what was started…' });
      await lab.down().catch(() => undefined);
      throw err;
    }
    return lab;
  }

  private async start(regions: readonly string[], options: LabUpOptions): Promise<void> {
    const labDir = this.dir;
    await stopStrayPostgres(labDir, this.progress);
    if (options.fresh === true) {
      rmSync(labDir, { recursive: true, force: true });
      this.progress({ type: 'info', message: `removed old lab data in ${labDir}` });
    }
    mkdirSync(join(labDir, 'logs'), { recursive: true });

    // Credentials first (openssl makes the certificates). Data made without them cannot be reused.
    const secretsDir = labSecretsDir(this.state.root);
    if (!existsSync(secretsDir)) {
      const stale = [
        join(labDir, 'kafka', 'data', 'meta.properties'),
        ...regions.map((r) => join(labDir, `pg-${r}`, 'PG_VERSION')),
      ].filter((f) => existsSync(f));
      if (stale.length > 0)
        throw new Error(
          `the lab data in ${labDir} was made without the credentials the lab now uses (an older version, or ` +
            `${secretsDir} was deleted): start it with \`hothot lab up --fresh\` (drops the lab's data)`,
        );
    }
    this.labSecrets = ensureLabSecrets(secretsDir, { kafkaPrincipals: regions, postgresClusters: regions });
    this.state.secretsDir = secretsDir;
    // The API's credentials: one session-token key for every region, one admin key (lab.json: its file).
    this.sessionTokenKeys = ensureSessionTokenKeys(this.state.root);
    this.labAdminKey = ensureAdminKey(this.state.root);
    this.state.adminKeyFile = this.labAdminKey.file;
    // An Ed25519 event-signing key per region (kept across starts) and every region's public key.
    const eventKeysDir = join(labDir, 'event-keys');
    this.eventKeys = provisionEventKeys(eventKeysDir, regions);
    this.state.eventKeysDir = eventKeysDir;

    // Decided before anything starts, so the warning comes first, not after a minute of other steps.
    let frontDoor = options.frontDoor !== false;
    if (options.frontDoor === false) {
      this.state.noFrontDoor = { reason: 'not asked for (--no-front-door)' };
    } else if (options.frontDoor === 'if-installed' && findHaproxy() === undefined) {
      frontDoor = false;
      this.state.noFrontDoor = missingHaproxy();
      this.progress({
        type: 'warning',
        message: `no front door: ${this.state.noFrontDoor.reason}; starting the regions without it`,
        ...(this.state.noFrontDoor.fix !== undefined ? { fix: this.state.noFrontDoor.fix } : {}),
      });
    }
    this.save();

    const pgBinaries = findPostgresBinaries();
    const jars = await ensureKafkaJars({
      onFetchStart: (message) => this.progress({ type: 'info', message }),
    });
    const toxiproxyBinary = await ensureToxiproxy({
      onBuildStart: (message) => this.progress({ type: 'info', message }),
    });
    const ports = await allocateLabPorts(regions, options.basePort);

    // The broker-link proxies first: Kafka advertises them, and its readiness probe goes through them.
    await this.step('start', 'Toxiproxy', `http://127.0.0.1:${ports.toxiproxy}`, () =>
      this.startToxiproxy(regions, ports, toxiproxyBinary),
    );
    // PostgreSQL clusters and Kafka in parallel, then the regions (they need both).
    await settleAll([
      ...regions.map((region) =>
        this.step('start', `PostgreSQL ${region}`, `127.0.0.1:${ports.postgres[region]}`, () =>
          this.startPostgres(region, ports.postgres[region]!, pgBinaries.binDir),
        ),
      ),
      this.step(
        'start',
        'Kafka',
        `listeners ${regions.map((r) => `${listenerNameForRegion(r)} :${ports.kafkaListener[r]}`).join(', ')}`,
        () => this.startKafka(regions, ports, jars.libsDir, options.regionEnv ?? {}),
      ),
    ]);
    await settleAll(
      regions.map((region) =>
        this.step('start', `region ${region}`, `http://127.0.0.1:${ports.region[region]}`, () =>
          this.startRegion(region, regions, ports.region[region]!, options),
        ),
      ),
    );
    // Ready means migrated: the api_key table exists in every region's database.
    await provisionAdminKey(
      this.adminKey.token,
      regions.map((r) => this.databaseUrl(r)),
    );
    this.progress({
      type: 'info',
      message: `admin API key ${this.adminKey.id} (read, write, admin) in every region (${this.adminKey.source === 'generated' ? 'new' : this.adminKey.source === 'file' ? 'from an earlier run' : 'from $HOTHOT_LAB_ADMIN_KEY'})`,
    });
    if (frontDoor) {
      await this.step('start', 'front door', `http://127.0.0.1:${ports.frontDoor}`, () =>
        this.startFrontDoor(regions, ports, options.weights ?? {}, options.balance),
      );
    }
    this.state.status = 'ready';
    this.save();
  }

  private async startPostgres(region: string, port: number, binDir: string): Promise<void> {
    const cluster = new PostgresCluster({
      dataDir: join(this.dir, `pg-${region}`),
      port,
      binDir,
      logFile: join(this.dir, 'logs', `postgres-${region}.log`),
      superuserPassword: this.secrets.postgresPassword(region, 'superuser'),
    });
    this.postgres.set(region, cluster);
    this.state.postgres[region] = {
      ...cluster.info,
      pid: 0,
      url: cluster.redactedUrl(),
      databaseUrl: cluster.redactedUrl(LAB_DATABASE, POSTGRES_APP_ROLE),
    };
    this.save();
    await cluster.init();
    await cluster.start();
    this.state.postgres[region].pid = cluster.pid ?? 0;
    this.save();
    // The region connects as its own role, which owns its database: not as the superuser.
    await cluster.ensureRole(POSTGRES_APP_ROLE, this.secrets.postgresPassword(region, 'app'), {
      readAllStats: true,
    });
    await cluster.createDatabase(LAB_DATABASE, POSTGRES_APP_ROLE);
  }

  private async startToxiproxy(regions: readonly string[], ports: LabPorts, binary: string): Promise<void> {
    const server = await ToxiproxyServer.start({
      port: ports.toxiproxy,
      binary,
      logFile: join(this.dir, 'logs', 'toxiproxy.log'),
      detached: true,
    });
    this.toxiproxy = server;
    const proxies = Object.fromEntries(
      regions.map((r) => [
        r,
        {
          name: brokerProxyName(r),
          listen: `127.0.0.1:${ports.kafkaProxy[r]}`,
          upstream: `127.0.0.1:${ports.kafkaListener[r]}`,
        },
      ]),
    );
    this.state.toxiproxy = { ...server.info, proxies };
    this.save();
    await new BrokerLinkProxies(server.url).define(
      regions.map((region) => ({ region, ...proxies[region]! })),
    );
  }

  private async startFrontDoor(
    regions: readonly string[],
    ports: LabPorts,
    weights: Readonly<Record<string, number>>,
    balance: Balance | undefined,
  ): Promise<void> {
    const door = await FrontDoor.start({
      bindPort: ports.frontDoor,
      ...(balance !== undefined ? { balance } : {}),
      servers: regions.map((r) => ({
        name: r,
        host: '127.0.0.1',
        port: ports.region[r]!,
        ...(weights[r] !== undefined ? { weight: weights[r] } : {}),
      })),
      configFile: join(this.dir, 'haproxy.cfg'),
      logFile: join(this.dir, 'logs', 'haproxy.log'),
      detached: true,
    });
    this.frontDoor = door;
    this.state.frontDoor = { ...door.info };
    this.save();
  }

  private async startKafka(
    regions: readonly string[],
    ports: LabPorts,
    libsDir: string,
    regionEnv: Readonly<Record<string, string>>,
  ): Promise<void> {
    // Clients bootstrap through their region's proxy; the broker advertises the proxy again.
    const bootstrap = (region: string) => `127.0.0.1:${ports.kafkaProxy[region]}`;
    const recordKafka = (info: KafkaBroker['info']) => {
      this.state.kafka = {
        ...info,
        listeners: [...info.listeners],
        bootstrap: Object.fromEntries(regions.map((r) => [r, bootstrap(r)])),
      };
      this.save();
    };
    this.kafka = await KafkaBroker.start({
      dir: join(this.dir, 'kafka'),
      logFile: join(this.dir, 'logs', 'kafka.log'),
      libsDir,
      controllerPort: ports.kafkaController,
      internalPort: ports.kafkaInternal,
      listeners: regions.map((r) => ({
        name: listenerNameForRegion(r),
        port: ports.kafkaListener[r],
        advertisedPort: ports.kafkaProxy[r],
      })),
      detached: true,
      onSpawn: recordKafka,
      security: {
        tls: { keystoreFile: this.secrets.brokerKeystoreFile, truststoreFile: this.secrets.caCertFile },
        scramUsers: Object.fromEntries(
          [KAFKA_ADMIN_PRINCIPAL, ...regions].map((p) => [p, this.secrets.kafkaPassword(p)]),
        ),
        secretsDir: this.secrets.dir,
      },
    });
    recordKafka(this.kafka.info);
    // As admin, over the broker's own listener: the regions' topics and ACLs (a region writes only its own).
    await provisionRegions(
      new Kafka({
        clientId: 'hothot-lab-admin',
        brokers: [this.kafka.internalBootstrap],
        logLevel: logLevel.NOTHING,
        ...kafkaSecurityConfig(this.kafka.adminSecurity()),
      }),
      {
        prefix: regionEnv.KAFKA_TOPIC_PREFIX ?? 'hothot',
        regions,
        ...(regionEnv.KAFKA_TOPIC_PARTITIONS !== undefined
          ? { partitions: Number(regionEnv.KAFKA_TOPIC_PARTITIONS) }
          : {}),
      },
    );
  }

  private async startRegion(
    region: string,
    regions: readonly string[],
    port: number,
    options: LabUpOptions,
  ): Promise<void> {
    const kafka = this.kafka!;
    const launch = {
      region,
      peerRegions: regions.filter((r) => r !== region),
      // A file, not a variable: `lab add-region` / `remove-region` change it and SIGHUP the region.
      peersFile: join(this.dir, `peers-${region}`),
      databaseUrl: this.databaseUrl(region),
      kafkaBrokers: [kafka.bootstrapFor(listenerNameForRegion(region))],
      port,
      logFile: join(this.dir, 'logs', `region-${region}.log`),
      detached: true,
      ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
      // Its own Kafka principal (files, not values, in its environment), whatever SECURITY_MODE says.
      env: {
        KAFKA_SSL_CA_FILE: this.secrets.caCertFile,
        KAFKA_SASL_USERNAME: region,
        KAFKA_SASL_PASSWORD_FILE: this.secrets.kafkaPasswordFile(region),
        // The same in every region: a session token from one is honoured by the others.
        SESSION_TOKEN_KEYS: this.sessionTokenKeys!,
        // Its own event-signing key and every region's public keys: events signed and verified.
        ...eventKeyEnv(this.eventKeys[region]!),
        // Every credential above is provisioned, so the lab runs secure whatever the process default
        // is; `SECURITY_MODE=insecure-dev hothot lab up` (or regionEnv) opts out, loudly.
        SECURITY_MODE: process.env.SECURITY_MODE || 'on',
        API_PROCESSES: String(options.processes ?? LAB_REGION_PROCESSES),
        ...options.regionEnv,
      },
      ...(options.regionEntry !== undefined ? { entry: options.regionEntry } : {}),
    };
    // What `restartLabRegion` (hothot lab restart, the console) needs to start it again from another process.
    writeRegionLaunch(this.dir, launch);
    const regionProcess = RegionProcess.launch(launch);
    this.regions.set(region, regionProcess);
    this.state.regions[region] = regionProcess.info;
    this.save();
    try {
      await regionProcess.waitUntilReady();
    } catch (err) {
      await regionProcess.stop(2_000);
      throw err;
    }
  }

  /** Stop the front door, regions, then Kafka, Toxiproxy, then PostgreSQL; remove lab.json. Safe to call twice. */
  async down(): Promise<void> {
    if (this.frontDoor?.isRunning() === true) {
      const door = this.frontDoor;
      await this.step('stop', 'front door', 'stopped', () => door.stop());
    }
    await settleAll(
      [...this.regions.entries()].map(([name, r]) =>
        r.isRunning() ? this.step('stop', `region ${name}`, 'stopped', () => r.stop()) : Promise.resolve(),
      ),
    );
    // A region restarted by another process (`hothot lab restart`, the console) runs under the pid lab.json has.
    await settleAll(
      Object.entries(readLabState(this.state.root)?.regions ?? {})
        .filter(([name, r]) => r.pid !== this.regions.get(name)?.pid && isPidRunning(r.pid, r.entry))
        .map(([name, r]) =>
          this.step('stop', `region ${name}`, 'stopped', () =>
            RegionProcess.stopPid(r.pid, { entry: r.entry }),
          ),
        ),
    );
    if (this.kafka?.isRunning() === true) {
      const kafka = this.kafka;
      await this.step('stop', 'Kafka', 'stopped', () => kafka.stop());
    }
    if (this.toxiproxy?.isRunning() === true) {
      const toxiproxy = this.toxiproxy;
      await this.step('stop', 'Toxiproxy', 'stopped', () => toxiproxy.stop());
    }
    await settleAll(
      [...this.postgres.entries()].map(([name, pg]) =>
        pg.isRunning()
          ? this.step('stop', `PostgreSQL ${name}`, 'stopped', () => pg.stop('fast'))
          : Promise.resolve(),
      ),
    );
    removeLabState(this.state.root);
  }

  private save(): void {
    writeLabState(this.state);
  }

  private async step<T>(
    action: LabAction,
    component: string,
    detail: string,
    fn: () => Promise<T>,
  ): Promise<T> {
    const started = Date.now();
    this.progress({ type: 'step-start', action, component, detail });
    try {
      const value = await fn();
      this.progress({ type: 'step-done', action, component, detail, ms: Date.now() - started });
      return value;
    } catch (error) {
      this.progress({ type: 'step-failed', action, component, detail, ms: Date.now() - started, error });
      throw error;
    }
  }
}

/** What `lab down` did to one component. */
export interface LabDownAction {
  component: string;
  outcome: TerminateOutcome | 'stopped-by-owner';
}

/**
 * Stop the lab recorded in `<root>/lab.json` from any process: a foreground owner is asked to stop
 * (SIGTERM) and given time; whatever still runs is stopped here (regions SIGTERM then SIGKILL, Kafka
 * likewise, PostgreSQL with `pg_ctl stop -m fast`). Removes lab.json. Idempotent.
 */
export async function labDown(
  root: string,
  options: { onProgress?: LabProgressListener } = {},
): Promise<{ hadState: boolean; actions: LabDownAction[] }> {
  const progress = options.onProgress ?? (() => undefined);
  let state = readLabState(root);
  const actions: LabDownAction[] = [];
  if (state === undefined) {
    actions.push(...(await stopStrayPostgres(join(root, 'lab'), progress)));
    return { hadState: false, actions };
  }

  const owner = state.ownerPid;
  if (owner !== undefined && owner !== process.pid && isPidRunning(owner)) {
    progress({ type: 'info', message: `asking the foreground lab (pid ${owner}) to stop…` });
    signalPid(owner, 'SIGTERM');
    await waitForPidExit(owner, OWNER_STOP_TIMEOUT_MS);
    actions.push({ component: `lab up (pid ${owner})`, outcome: 'stopped-by-owner' });
    state = readLabState(root);
    if (state === undefined) return { hadState: true, actions };
  }

  const timed = async (component: string, fn: () => Promise<TerminateOutcome>) => {
    const started = Date.now();
    progress({ type: 'step-start', action: 'stop', component, detail: 'stopping' });
    try {
      const outcome = await fn();
      actions.push({ component, outcome });
      progress({ type: 'step-done', action: 'stop', component, detail: outcome, ms: Date.now() - started });
    } catch (error) {
      progress({
        type: 'step-failed',
        action: 'stop',
        component,
        detail: 'stopping',
        ms: Date.now() - started,
        error,
      });
      throw error;
    }
  };
  const frontDoor = state.frontDoor;
  if (frontDoor !== undefined)
    await timed('front door', () => FrontDoor.stopPid(frontDoor.pid, frontDoor.configFile));
  await Promise.all(
    Object.entries(state.regions).map(([name, r]) =>
      timed(`region ${name}`, () => RegionProcess.stopPid(r.pid, { entry: r.entry })),
    ),
  );
  const kafka = state.kafka;
  if (kafka !== undefined) await timed('Kafka', () => KafkaBroker.stopPid(kafka.pid, kafka.propertiesFile));
  const toxiproxy = state.toxiproxy;
  if (toxiproxy !== undefined)
    await timed('Toxiproxy', () => ToxiproxyServer.stopPid(toxiproxy.pid, toxiproxy.binary));
  await Promise.all(
    Object.entries(state.postgres).map(([name, pg]) =>
      timed(`PostgreSQL ${name}`, async () =>
        (await stopPostgresDataDir(pg.dataDir, pg.binDir)) ? 'terminated' : 'not-running',
      ),
    ),
  );
  removeLabState(root);
  return { hadState: true, actions };
}

/** `<lab dir>/region-<region>.launch.json`: how the lab launched a region, without its secrets (0600). */
export function regionLaunchPath(labDir: string, region: string): string {
  return join(labDir, `region-${region}.launch.json`);
}

/** Secrets the launch file leaves out: put back from the lab's files when the region is started again. */
const LAUNCH_SECRETS = ['SESSION_TOKEN_KEYS'] as const;

export function writeRegionLaunch(labDir: string, launch: RegionProcessOptions & { port: number }): void {
  const { databaseUrl: _url, env = {}, ...rest } = launch;
  const kept = Object.fromEntries(
    Object.entries(env).filter(([k]) => !(LAUNCH_SECRETS as readonly string[]).includes(k)),
  );
  writeFileSync(
    regionLaunchPath(labDir, launch.region),
    `${JSON.stringify({ ...rest, env: kept }, null, 2)}\n`,
    {
      mode: 0o600,
    },
  );
}

/** The lab in `root` and its region `region`, or an error saying what to do. */
function labRegionState(root: string, region: string): LabState {
  const state = readLabState(root);
  if (state === undefined)
    throw new Error(`no lab in ${root} (no ${labStatePath(root)}): start one with \`hothot lab up\``);
  if (state.regions[region] === undefined)
    throw new Error(`the lab has no region ${region}; it has ${state.regionNames.join(', ')}`);
  return state;
}

/**
 * Kill the process of lab region `region` (recorded in `<root>/lab.json`) with `signal`: SIGKILL is a
 * crash (its PostgreSQL, broker link and outbox stay as they are), SIGTERM a graceful stop. Returns
 * false when it was not running. `restartLabRegion` starts it again.
 */
export function killLabRegion(root: string, region: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  const r = labRegionState(root, region).regions[region]!;
  if (!isPidRunning(r.pid, r.entry)) return false;
  return signalPid(r.pid, signal);
}

/**
 * Start lab region `region` again from any process, as `lab up` launched it (the launch file, the
 * lab's secrets, a fresh DATABASE_URL), on the same port; record its pid in lab.json; wait until it
 * answers /readyz. A running incarnation is stopped first (SIGTERM). Variables the region inherited
 * from `lab up`'s own environment (e.g. COLLECTION_POLICIES) come from this process's environment.
 */
export async function restartLabRegion(root: string, region: string): Promise<RegionProcessInfo> {
  const state = labRegionState(root, region);
  const recorded = state.regions[region]!;
  const launchFile = regionLaunchPath(join(root, 'lab'), region);
  if (!existsSync(launchFile))
    throw new Error(`${launchFile} is missing (a lab started by an older version): restart the lab`);
  const launch = JSON.parse(readFileSync(launchFile, 'utf8')) as Omit<RegionProcessOptions, 'databaseUrl'> & {
    port: number;
  };
  if (isPidRunning(recorded.pid, recorded.entry))
    await RegionProcess.stopPid(recorded.pid, { entry: recorded.entry });
  const regionProcess = RegionProcess.launch({
    ...launch,
    databaseUrl: labDatabaseUrl(state, region),
    env: { ...launch.env, SESSION_TOKEN_KEYS: ensureSessionTokenKeys(root) },
    detached: true,
  });
  const latest = readLabState(root);
  if (latest !== undefined) {
    latest.regions[region] = regionProcess.info;
    writeLabState(latest);
  }
  await regionProcess.waitUntilReady();
  return regionProcess.info;
}

/** Health of one lab component as seen by `lab status`. */
export interface LabComponentStatus {
  component: string;
  pid: number;
  alive: boolean;
  /** Answers: /readyz 200 (region), accepts TCP (PostgreSQL), answers metadata (Kafka, per listener). */
  healthy: boolean;
  address: string;
}

/** Probe every component recorded in `<root>/lab.json`; undefined when there is no lab. */
export async function labStatus(
  root: string,
): Promise<{ state: LabState; components: LabComponentStatus[] } | undefined> {
  const state = readLabState(root);
  if (state === undefined) return undefined;
  const components = await Promise.all([
    ...Object.entries(state.postgres).map(async ([name, pg]) => {
      const pid = postmasterPid(pg.dataDir) ?? pg.pid;
      const alive = isPidAlive(pid);
      return {
        component: `PostgreSQL ${name}`,
        pid,
        alive,
        healthy: alive && (await canConnect(pg.port)),
        address: pg.databaseUrl,
      };
    }),
    ...(state.kafka !== undefined
      ? [
          (async () => {
            const kafka = state.kafka!;
            const alive = isPidAlive(kafka.pid);
            const tls = kafka.caFile !== undefined ? { ca: readFileOr(kafka.caFile) } : undefined;
            // Each listener's own port, not the advertised proxy: a cut broker link is not a sick broker.
            const answers = alive
              ? await Promise.all(
                  kafka.listeners.map((l) =>
                    probeBroker(`127.0.0.1:${l.port}`, 2_000, 'hothot-lab-status', tls).then(
                      () => true,
                      () => false,
                    ),
                  ),
                )
              : [];
            return {
              component: 'Kafka',
              pid: kafka.pid,
              alive,
              healthy: alive && answers.every((a) => a === true),
              address: kafka.listeners.map((l) => `${l.name}=127.0.0.1:${l.port}`).join(' '),
            };
          })(),
        ]
      : []),
    ...Object.entries(state.regions).map(async ([name, r]) => {
      const alive = isPidAlive(r.pid);
      return {
        component: `region ${name}`,
        pid: r.pid,
        alive,
        healthy: alive && (await httpOk(`${r.url}/readyz`)),
        address: r.url,
      };
    }),
    ...(state.toxiproxy !== undefined
      ? [
          (async () => {
            const t = state.toxiproxy!;
            const alive = isPidAlive(t.pid);
            const answers =
              alive &&
              (await new ToxiproxyClient(t.url).version().then(
                () => true,
                () => false,
              ));
            return { component: 'Toxiproxy', pid: t.pid, alive, healthy: answers, address: t.url };
          })(),
        ]
      : []),
    ...(state.frontDoor !== undefined
      ? [
          (async () => {
            const f = state.frontDoor!;
            const alive = isPidAlive(f.pid);
            return {
              component: 'front door',
              pid: f.pid,
              alive,
              healthy: alive && (await httpOk(`${f.url}/readyz`)),
              address: f.url,
            };
          })(),
        ]
      : []),
  ]);
  return { state, components };
}

/**
 * Stop PostgreSQL servers still running on data directories under `labDir` though no lab.json lists
 * them (a lab whose state file was lost): their ports and data would block a new lab.
 */
async function stopStrayPostgres(labDir: string, progress: LabProgressListener): Promise<LabDownAction[]> {
  if (!existsSync(labDir)) return [];
  const actions: LabDownAction[] = [];
  for (const entry of readdirSync(labDir)) {
    if (!entry.startsWith('pg-')) continue;
    const dataDir = join(labDir, entry);
    const pid = postmasterPid(dataDir);
    if (pid !== undefined && isPidAlive(pid)) {
      progress({ type: 'info', message: `stopping a stray PostgreSQL (pid ${pid}) on ${dataDir}` });
      await stopPostgresDataDir(dataDir);
      actions.push({ component: `PostgreSQL ${entry.slice(3)} (stray)`, outcome: 'terminated' });
    }
  }
  return actions;
}

/** A file's text, or '' when it cannot be read (a probe with an empty CA then fails: not healthy). */
function readFileOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Like Promise.all, but waits for every promise before rejecting with the first failure. */
async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
