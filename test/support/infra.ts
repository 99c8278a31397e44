/**
 * PostgreSQL and Kafka for a test run, from one place (design §5):
 *
 * 1. `env` — `HOTHOT_TEST_DATABASE_URL` (superuser URL of a server where tests may CREATE DATABASE)
 *    and `HOTHOT_TEST_KAFKA_BROKERS` (`host:port,…`), when both are set;
 * 2. `native` (the default otherwise) — one PostgreSQL cluster and one Kafka broker from local binaries (infra/lab), on free
 *    ports, in a temporary directory removed by `stop()`. Secured like the lab: the broker speaks
 *    SASL_SSL only (TLS, SCRAM-SHA-512 with a principal per test region and `admin`, ACLs), PostgreSQL
 *    wants the superuser's password; the credentials are files in `<dir>/secrets`
 *    ({@link TestInfra.kafkaSecurity}). The other two kinds give a PLAINTEXT Kafka (no
 *    `kafkaSecurity`: tests that need ACLs skip, regions run `insecure-dev` without Kafka credentials).
 * 3. `testcontainers` — `postgres:15` and `apache/kafka:3.9.1` containers, only when chosen
 *    (`HOTHOT_TEST_INFRA=testcontainers`): a Docker engine alone does not select it. The images can be
 *    swapped with `HOTHOT_POSTGRES_IMAGE` and `HOTHOT_KAFKA_IMAGE` — the variables of
 *    docker-compose.yml, which infra/docker/build-images.sh points at images built without a
 *    registry (test/integration/infra.testcontainers.test.ts runs on those, with
 *    `TESTCONTAINERS_RYUK_DISABLED=true`: `stop()` removes the containers and their volumes itself).
 *
 * `HOTHOT_TEST_INFRA=env|testcontainers|native` forces a choice. `HOTHOT_TEST_KEEP_INFRA=1` keeps the
 * native directory (data and logs) after the run for a post-mortem.
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { redactUrl } from '../../shared/config/redactUrl.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { KafkaBroker, waitForKafka } from '../../infra/lab/kafkaBroker.js';
import { KAFKA_ADMIN_PRINCIPAL, ensureLabSecrets } from '../../infra/lab/labSecrets.js';
import { findFreePort } from '../../infra/lab/ports.js';
import { PostgresCluster, stopPostgresDataDir } from '../../infra/lab/postgresCluster.js';
import { isPidAlive, terminatePid } from '../../infra/lab/processes.js';
import { REPO_ROOT as REPO_ROOT_DIR } from '../../infra/lab/paths.js';

export type InfraKind = 'env' | 'testcontainers' | 'native';

/** The region principals the secured test broker knows: every region name the tests use. */
export const TEST_KAFKA_REGIONS: readonly string[] = ['us', 'eu', 'ap'];

/** The credentials of a secured test broker, as files every test process can read. */
export interface TestKafkaSecurity {
  /** The CA certificate (PEM) that signed the broker's certificate. */
  readonly caFile: string;
  /** Principal → file holding its SCRAM password: `admin` (super user) and {@link TEST_KAFKA_REGIONS}. */
  readonly passwordFiles: Readonly<Record<string, string>>;
}

export interface TestInfra {
  /** Superuser URL (with its password) of database `postgres` on a server where tests may CREATE DATABASE. */
  readonly postgresUrl: string;
  /** Kafka bootstrap servers, `host:port`. */
  readonly kafkaBrokers: string[];
  /** TLS + SCRAM credentials of the broker; absent: PLAINTEXT (env and testcontainers). */
  readonly kafkaSecurity?: TestKafkaSecurity;
  readonly kind: InfraKind;
  /** One line saying what was started or used, for the test output. */
  readonly description: string;
  /** Stop and remove whatever was started (nothing for `env`). Idempotent. */
  stop(): Promise<void>;
}

export interface AcquireInfraOptions {
  /** Progress messages (e.g. "fetching Kafka jars…"). @default silent */
  log?: (message: string) => void;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

const NATIVE_DIR_PREFIX = 'hothot-test-';
const DOCKER_PROBE_TIMEOUT_MS = 5_000;
/** The images of the testcontainers path: docker-compose.yml's defaults, swapped by the same variables. */
export function testcontainersImages(env: NodeJS.ProcessEnv = process.env): {
  postgres: string;
  kafka: string;
} {
  const pick = (value: string | undefined, fallback: string) =>
    value !== undefined && value.trim() !== '' ? value.trim() : fallback;
  return {
    postgres: pick(env.HOTHOT_POSTGRES_IMAGE, 'postgres:15'),
    kafka: pick(env.HOTHOT_KAFKA_IMAGE, 'apache/kafka:3.9.1'),
  };
}

/** Choose and start the infrastructure for this run (see the module comment for the order). */
export async function acquireInfra(options: AcquireInfraOptions = {}): Promise<TestInfra> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => undefined);
  const forced = env.HOTHOT_TEST_INFRA;
  if (forced !== undefined && forced !== '' && !['env', 'testcontainers', 'native'].includes(forced)) {
    throw new Error(`HOTHOT_TEST_INFRA=${forced}: expected env, testcontainers or native`);
  }

  const auto = forced === undefined || forced === '';
  const fromEnv = auto || forced === 'env' ? infraFromEnv(env) : undefined;
  if (forced === 'env' || (auto && fromEnv !== undefined)) {
    if (fromEnv === undefined) {
      throw new Error('HOTHOT_TEST_INFRA=env needs HOTHOT_TEST_DATABASE_URL and HOTHOT_TEST_KAFKA_BROKERS');
    }
    return fromEnv;
  }
  // Native by default, also where a Docker engine runs: only the native broker speaks SASL_SSL with
  // ACLs (security on); testcontainers is chosen explicitly (HOTHOT_TEST_INFRA=testcontainers).
  if (forced === 'testcontainers') {
    return startContainers(log, testcontainersImages(env));
  }
  return startNative(log, env);
}

/** `env` infrastructure, or undefined when neither variable is set (one alone is an error). */
function infraFromEnv(env: NodeJS.ProcessEnv): TestInfra | undefined {
  const url = env.HOTHOT_TEST_DATABASE_URL?.trim() ?? '';
  const brokers = (env.HOTHOT_TEST_KAFKA_BROKERS ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  if (url === '' && brokers.length === 0) return undefined;
  if (url === '' || brokers.length === 0) {
    throw new Error(
      'set both HOTHOT_TEST_DATABASE_URL (postgres://user@host:port/postgres, may CREATE DATABASE) and ' +
        'HOTHOT_TEST_KAFKA_BROKERS (host:port,…), or neither',
    );
  }
  return {
    postgresUrl: url,
    kafkaBrokers: brokers,
    kind: 'env',
    description: `from the environment: PostgreSQL ${redactUrl(url)}, Kafka ${brokers.join(',')}`,
    stop: () => Promise.resolve(),
  };
}

/**
 * Whether a Docker engine answers. Cheap when there is none: without `DOCKER_HOST`, a known socket
 * file or a testcontainers config file, testcontainers is not even loaded.
 */
export async function isDockerAvailable(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const hints = [
    env.DOCKER_HOST,
    env.TESTCONTAINERS_HOST_OVERRIDE,
    ...[
      '/var/run/docker.sock',
      env.XDG_RUNTIME_DIR !== undefined ? join(env.XDG_RUNTIME_DIR, 'docker.sock') : undefined,
      join(homedir(), '.docker', 'run', 'docker.sock'),
      join(homedir(), '.testcontainers.properties'),
    ].filter((p): p is string => p !== undefined && existsSync(p)),
  ].filter((h) => h !== undefined && h !== '');
  if (hints.length === 0) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('Docker did not answer in time')), DOCKER_PROBE_TIMEOUT_MS);
    });
    try {
      await Promise.race([getContainerRuntimeClient(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return true;
  } catch {
    return false;
  }
}

async function startContainers(
  log: (message: string) => void,
  images: { postgres: string; kafka: string },
): Promise<TestInfra> {
  const { GenericContainer, Wait, getContainerRuntimeClient } = await import('testcontainers');
  const client = await getContainerRuntimeClient();
  const host = client.info.containerRuntime.host;
  log(`starting ${images.postgres} and ${images.kafka} with testcontainers on ${host}…`);

  // Kafka advertises the address clients must use, so its host port is fixed up front (and the same
  // inside the container) instead of being mapped at random. Free on this host, assumed free on the
  // Docker host (the same machine in the usual setup).
  const kafkaPort = await findFreePort();
  const postgresPassword = randomBytes(24).toString('hex');
  const [postgres, kafka] = await Promise.allSettled([
    new GenericContainer(images.postgres)
      .withEnvironment({ POSTGRES_PASSWORD: postgresPassword, POSTGRES_HOST_AUTH_METHOD: 'scram-sha-256' })
      .withCommand(['postgres', '-c', 'max_connections=200'])
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .withStartupTimeout(120_000)
      .start(),
    new GenericContainer(images.kafka)
      .withEnvironment({
        KAFKA_MESSAGE_MAX_BYTES: String(LAB_MESSAGE_MAX_BYTES),
        KAFKA_NODE_ID: '1',
        KAFKA_PROCESS_ROLES: 'broker,controller',
        KAFKA_LISTENERS: `CLIENT://0.0.0.0:${kafkaPort},INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:19093`,
        KAFKA_ADVERTISED_LISTENERS: `CLIENT://${host}:${kafkaPort},INTERNAL://localhost:19092`,
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT',
        KAFKA_INTER_BROKER_LISTENER_NAME: 'INTERNAL',
        KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
        KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:19093',
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: '10',
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
        KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS: '10',
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
        KAFKA_NUM_PARTITIONS: '3',
        KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'true',
      })
      .withExposedPorts({ container: kafkaPort, host: kafkaPort })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .withStartupTimeout(180_000)
      .start(),
  ]);
  const started = [postgres, kafka].flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => {
    await Promise.allSettled(started.map((c) => c.stop()));
  };
  if (postgres.status === 'rejected' || kafka.status === 'rejected') {
    await stop();
    const reason: unknown =
      postgres.status === 'rejected' ? postgres.reason : (kafka as PromiseRejectedResult).reason;
    throw new Error(`testcontainers: could not start the test infrastructure: ${String(reason)}`, {
      cause: reason,
    });
  }

  const postgresUrl = `postgres://postgres:${postgresPassword}@${postgres.value.getHost()}:${postgres.value.getMappedPort(5432)}/postgres`;
  const kafkaBrokers = [`${host}:${kafkaPort}`];
  try {
    await waitForKafka(kafkaBrokers, { timeoutMs: 60_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    postgresUrl,
    kafkaBrokers,
    kind: 'testcontainers',
    description: `testcontainers: PostgreSQL ${redactUrl(postgresUrl)}, Kafka ${kafkaBrokers.join(',')} (PLAINTEXT)`,
    stop: once(stop),
  };
}

/** What a native run records in its directory, so a later run can clean up after a killed one. */
interface NativeOwner {
  ownerPid: number;
  kafkaPid?: number;
  kafkaPropertiesFile?: string;
  postgresDataDir?: string;
}

async function startNative(log: (message: string) => void, env: NodeJS.ProcessEnv): Promise<TestInfra> {
  await reapAbandonedNativeDirs(log);
  const dir = mkdtempSync(join(tmpdir(), NATIVE_DIR_PREFIX));
  chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres" and must be able to enter it
  const owner: NativeOwner = { ownerPid: process.pid, postgresDataDir: join(dir, 'pg') };
  const saveOwner = () => writeFileSync(join(dir, 'owner.json'), JSON.stringify(owner));
  saveOwner();

  const secrets = ensureLabSecrets(join(dir, 'secrets'), {
    kafkaPrincipals: TEST_KAFKA_REGIONS,
    postgresClusters: ['test'],
  });
  const [postgres, kafka] = await Promise.allSettled([
    (async () =>
      PostgresCluster.start({
        dataDir: join(dir, 'pg'),
        port: await findFreePort(),
        superuserPassword: secrets.postgresPassword('test', 'superuser'),
      }))(),
    KafkaBroker.start({
      dir: join(dir, 'kafka'),
      listeners: [{ name: 'CLIENT' }],
      security: {
        tls: { keystoreFile: secrets.brokerKeystoreFile, truststoreFile: secrets.caCertFile },
        scramUsers: Object.fromEntries(
          [KAFKA_ADMIN_PRINCIPAL, ...TEST_KAFKA_REGIONS].map((p) => [p, secrets.kafkaPassword(p)]),
        ),
        secretsDir: secrets.dir,
      },
      onFetchStart: log,
      onSpawn: (info) => {
        owner.kafkaPid = info.pid;
        owner.kafkaPropertiesFile = info.propertiesFile;
        saveOwner();
      },
    }),
  ]);
  const keep = env.HOTHOT_TEST_KEEP_INFRA === '1';
  const stop = once(async () => {
    await Promise.allSettled([
      kafka.status === 'fulfilled' ? kafka.value.stop() : Promise.resolve(),
      postgres.status === 'fulfilled' ? postgres.value.stop('fast') : Promise.resolve(),
    ]);
    if (keep) log(`kept the test infrastructure's data and logs in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  if (postgres.status === 'rejected' || kafka.status === 'rejected') {
    const reasons = [postgres, kafka].flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    await stop();
    throw new Error(`native test infrastructure failed to start:\n${reasons.join('\n')}`);
  }

  const postgresUrl = postgres.value.url('postgres');
  const kafkaBrokers = [kafka.value.bootstrapFor('CLIENT')];
  return {
    postgresUrl,
    kafkaBrokers,
    kafkaSecurity: {
      caFile: secrets.caCertFile,
      passwordFiles: Object.fromEntries(
        [KAFKA_ADMIN_PRINCIPAL, ...TEST_KAFKA_REGIONS].map((p) => [p, secrets.kafkaPasswordFile(p)]),
      ),
    },
    kind: 'native',
    description: `native: PostgreSQL ${redactUrl(postgresUrl)}, Kafka ${kafkaBrokers.join(',')} SASL_SSL (in ${dir})`,
    stop,
  };
}

/**
 * Stop and delete native test directories whose owning test run is gone (killed before its
 * teardown): their PostgreSQL (which runs in its own session) and Kafka would otherwise linger.
 */
async function reapAbandonedNativeDirs(log: (message: string) => void): Promise<void> {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((e) => e.startsWith(NATIVE_DIR_PREFIX));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(tmpdir(), entry);
    let owner: NativeOwner;
    try {
      owner = JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8')) as NativeOwner;
    } catch {
      continue; // not ours, or still being set up
    }
    if (isPidAlive(owner.ownerPid)) continue;
    log(`cleaning up abandoned test infrastructure in ${dir}`);
    if (owner.kafkaPid !== undefined) {
      await terminatePid(owner.kafkaPid, { graceMs: 5_000, marker: owner.kafkaPropertiesFile }).catch(
        () => undefined,
      );
    }
    if (owner.postgresDataDir !== undefined) {
      await stopPostgresDataDir(owner.postgresDataDir, undefined, 'immediate').catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

/**
 * Why the Docker tests (the compose test, the testcontainers test) cannot run here, or undefined
 * when they can: they need a Docker engine (`.ci/run` starts one; docs/docker.md) and are off with
 * `HOTHOT_TEST_DOCKER=0`. Cheap when there is no engine.
 */
export async function dockerTestsSkipReason(
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  if (env.HOTHOT_TEST_DOCKER === '0') return 'HOTHOT_TEST_DOCKER=0';
  if (!(await isDockerAvailable(env)))
    return 'no Docker engine answers (no DOCKER_HOST, /var/run/docker.sock does not answer); .ci/run installs and starts one as root, see docs/docker.md';
  return undefined;
}

/** Where infra/docker/build-images.sh writes the HOTHOT_*_IMAGE variables of the images it built. */
export const LOCAL_IMAGES_ENV_FILE = join(REPO_ROOT_DIR, '.hothot', 'docker', 'images.env');
/** A cold build of every image takes minutes (docs/docker.md); a build whose inputs match, seconds. */
const BUILD_IMAGES_TIMEOUT_MS = 30 * 60_000;

/**
 * The images built without a registry (infra/docker/build-images.sh, run here: it rebuilds only
 * what changed), as the HOTHOT_*_IMAGE variables docker-compose.yml and {@link testcontainersImages}
 * read. `only` limits the build (e.g. `['postgres', 'kafka']`). `HOTHOT_TEST_DOCKER_BUILD=0` uses
 * the images the last build recorded, as they are.
 */
export async function buildLocalImages(
  log: (message: string) => void,
  only?: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, string>> {
  if (env.HOTHOT_TEST_DOCKER_BUILD === '0') {
    log(`HOTHOT_TEST_DOCKER_BUILD=0: the images recorded in ${LOCAL_IMAGES_ENV_FILE}, not rebuilt`);
    return readImagesEnv();
  }
  const started = Date.now();
  const { execFile } = await import('node:child_process');
  const output = await new Promise<string>((resolve, reject) => {
    execFile(
      'bash',
      [
        join(REPO_ROOT_DIR, 'infra', 'docker', 'build-images.sh'),
        ...(only ? ['--only', only.join(',')] : []),
      ],
      { timeout: BUILD_IMAGES_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`infra/docker/build-images.sh failed: ${err.message}\n${stdout}${stderr}`))
          : resolve(stdout),
    );
  });
  log(
    `images ready in ${((Date.now() - started) / 1000).toFixed(1)} s:\n${output.slice(output.indexOf('== build-images'))}`,
  );
  return readImagesEnv();
}

function readImagesEnv(): Record<string, string> {
  return Object.fromEntries(
    readFileSync(LOCAL_IMAGES_ENV_FILE, 'utf8')
      .split('\n')
      .filter((line) => /^HOTHOT_[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()]),
  );
}
