/**
 * A PostgreSQL cluster made from the local binaries with `initdb` and run with `pg_ctl`, listening on
 * 127.0.0.1 only, with password authentication (SCRAM-SHA-256) for every connection, local socket
 * included: the superuser's password is set by `initdb --pwfile`, and roles get theirs as SCRAM
 * verifiers computed here (the password itself never travels in a statement). There is no `trust`.
 *
 * PostgreSQL refuses to run as root. When this process is root, every PostgreSQL command runs as the
 * `postgres` system user (`runuser -u postgres --`) and the data directory is given to that user.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import { redactUrl } from '../../shared/config/redactUrl.js';
import { errorWithLogTail } from './managedProcess.js';
import { LOOPBACK } from './ports.js';
import { isPidAlive, run } from './processes.js';

export const POSTGRES_SUPERUSER = 'postgres';
/** Unix socket paths are limited to 107 bytes on Linux; leave room for `/.s.PGSQL.<port>`. */
const MAX_SOCKET_DIR_LENGTH = 90;
const RUNTIME_CONF = 'hothot.runtime.conf';

export type ShutdownMode = 'smart' | 'fast' | 'immediate';

export interface PostgresBinaries {
  /** Directory holding `initdb`, `pg_ctl` and `postgres`. */
  binDir: string;
  /** Major version, e.g. 15. */
  majorVersion: number;
}

/**
 * Find the PostgreSQL server binaries: `HOTHOT_PG_BIN_DIR`, else `pg_ctl` on PATH (symlinks followed),
 * else the highest version under /usr/lib/postgresql/<major>/bin (Debian/Ubuntu layout).
 */
export function findPostgresBinaries(env: NodeJS.ProcessEnv = process.env): PostgresBinaries {
  const candidates: string[] = [];
  if (env.HOTHOT_PG_BIN_DIR !== undefined && env.HOTHOT_PG_BIN_DIR !== '')
    candidates.push(env.HOTHOT_PG_BIN_DIR);
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'pg_ctl')))
      candidates.push(dirname(realPath(join(dir, 'pg_ctl'))));
  }
  const debianRoot = '/usr/lib/postgresql';
  if (existsSync(debianRoot)) {
    const versions = readdirSync(debianRoot)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(join(debianRoot, v, 'bin'));
  }
  for (const binDir of candidates) {
    if (['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(binDir, b)))) {
      return { binDir, majorVersion: majorVersionOf(binDir) };
    }
  }
  throw new Error(
    'PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH nor under /usr/lib/postgresql/*/bin: ' +
      'install them (Debian: apt-get install postgresql) or set HOTHOT_PG_BIN_DIR',
  );
}

export interface PostgresClusterOptions {
  /** Data directory; created by `initdb` when it holds no cluster yet, reused otherwise. */
  dataDir: string;
  port: number;
  /** Server log (`pg_ctl -l`). @default `<dataDir>/server.log` */
  logFile?: string;
  /** @default found by {@link findPostgresBinaries} */
  binDir?: string;
  /**
   * Extra settings appended to postgresql.conf when the cluster is created (later starts keep them).
   * Defaults suit tests: `max_connections=200`.
   */
  settings?: Readonly<Record<string, string | number | boolean>>;
  /** Seconds `pg_ctl` waits for start/stop. @default 60 */
  timeoutS?: number;
  /**
   * The superuser's password: `initdb` sets it and makes every connection authenticate with
   * SCRAM-SHA-256; {@link PostgresCluster.url} carries it. Required to make a cluster; not needed to
   * start or stop an existing one.
   */
  superuserPassword?: string;
}

/** A started cluster as plain data (the lab writes it into lab.json). */
export interface PostgresClusterInfo {
  dataDir: string;
  port: number;
  logFile: string;
  binDir: string;
}

export class PostgresCluster {
  readonly dataDir: string;
  readonly port: number;
  readonly logFile: string;
  readonly binDir: string;
  private readonly timeoutS: number;
  private readonly settings: Readonly<Record<string, string | number | boolean>>;
  private readonly superuserPassword: string | undefined;

  /** Describe a cluster without touching it; see {@link init}, {@link start}, or {@link PostgresCluster.start}. */
  constructor(options: PostgresClusterOptions) {
    this.dataDir = resolve(options.dataDir);
    this.port = options.port;
    this.logFile = resolve(options.logFile ?? join(this.dataDir, 'server.log'));
    this.binDir = options.binDir ?? findPostgresBinaries().binDir;
    this.timeoutS = options.timeoutS ?? 60;
    this.settings = { max_connections: 200, ...options.settings };
    this.superuserPassword = options.superuserPassword;
  }

  /** Create (if needed) and start a cluster; resolves once it accepts connections. */
  static async start(options: PostgresClusterOptions): Promise<PostgresCluster> {
    const cluster = new PostgresCluster(options);
    await cluster.init();
    await cluster.start();
    return cluster;
  }

  get info(): PostgresClusterInfo {
    return { dataDir: this.dataDir, port: this.port, logFile: this.logFile, binDir: this.binDir };
  }

  /** Connection URL of `database` as the superuser, with its password (percent-encoded): never print it. */
  url(database = 'postgres'): string {
    return this.urlAs(POSTGRES_SUPERUSER, this.superuserPassword, database);
  }

  /** Connection URL of `database` as `role` with `password`: never print it. */
  urlAs(role: string, password: string | undefined, database: string): string {
    const auth =
      password === undefined
        ? encodeURIComponent(role)
        : `${encodeURIComponent(role)}:${encodeURIComponent(password)}`;
    return `postgres://${auth}@${LOOPBACK}:${this.port}/${encodeURIComponent(database)}`;
  }

  /** {@link url} with the password replaced by `***`: what lab.json and `lab status` show. */
  redactedUrl(database = 'postgres', role = POSTGRES_SUPERUSER): string {
    return redactUrl(this.urlAs(role, this.superuserPassword === undefined ? undefined : 'x', database));
  }

  /** Whether the data directory holds a cluster already. */
  isInitialized(): boolean {
    return existsSync(join(this.dataDir, 'PG_VERSION'));
  }

  /** `initdb` unless the data directory holds a cluster already. */
  async init(): Promise<void> {
    if (this.isInitialized()) {
      if (this.superuserPassword !== undefined && this.trustsConnections()) {
        throw new Error(
          `the PostgreSQL cluster in ${this.dataDir} trusts connections without a password (made before ` +
            'the lab used passwords): delete it (hothot lab up --fresh) so that it is made again',
        );
      }
      return;
    }
    if (this.superuserPassword === undefined)
      throw new Error(`making the PostgreSQL cluster in ${this.dataDir} needs a superuser password`);
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.prepareOwnership(this.dataDir);
    // initdb reads the password from a file; as root it runs as postgres, who must be able to read it.
    const pwDir = mkdtempSync(join(tmpdir(), 'hothot-initdb-'));
    const pwFile = join(pwDir, 'pwfile');
    try {
      writeFileSync(pwFile, `${this.superuserPassword}\n`, { mode: 0o600 });
      if (isRoot()) {
        const { uid, gid } = postgresUser();
        chownSync(pwDir, uid, gid);
        chownSync(pwFile, uid, gid);
      }
      await this.pgCommand('initdb', [
        '-D',
        this.dataDir,
        '--auth-local=scram-sha-256',
        '--auth-host=scram-sha-256',
        `--pwfile=${pwFile}`,
        `--username=${POSTGRES_SUPERUSER}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ]);
    } finally {
      rmSync(pwDir, { recursive: true, force: true });
    }
    const lines = Object.entries(this.settings).map(([k, v]) => `${k} = ${formatSetting(v)}`);
    appendFileSync(
      join(this.dataDir, 'postgresql.conf'),
      [
        '',
        '# hothot lab (infra/lab/postgresCluster.ts)',
        ...lines,
        `include_if_exists = '${RUNTIME_CONF}'`,
        '',
      ].join('\n'),
    );
  }

  /** Start the server (`pg_ctl start -w`); resolves once it accepts connections. */
  async start(): Promise<void> {
    if (!this.isInitialized())
      throw new Error(`${this.dataDir} holds no PostgreSQL cluster: call init() first`);
    // Per-start settings live in a file included by postgresql.conf: no shell quoting through pg_ctl -o.
    const socketDir = this.dataDir.length <= MAX_SOCKET_DIR_LENGTH ? this.dataDir : '';
    writeFileSync(
      join(this.dataDir, RUNTIME_CONF),
      [
        '# written at every start by infra/lab/postgresCluster.ts',
        `port = ${this.port}`,
        `listen_addresses = '${LOOPBACK}'`,
        `unix_socket_directories = '${socketDir}'`,
        '',
      ].join('\n'),
    );
    this.prepareOwnership(this.dataDir);
    this.prepareLogFile();
    try {
      await this.pgCommand('pg_ctl', [
        'start',
        '-w',
        '-t',
        String(this.timeoutS),
        '-D',
        this.dataDir,
        '-l',
        this.logFile,
      ]);
    } catch (err) {
      throw await errorWithLogTail(
        `PostgreSQL did not start on port ${this.port} (data ${this.dataDir}): ${err instanceof Error ? err.message : String(err)}`,
        err,
        { logFile: this.logFile, label: 'server log' },
      );
    }
  }

  /** Stop the server (`pg_ctl stop -m <mode>`, default fast). Does nothing if it is not running. */
  async stop(mode: ShutdownMode = 'fast'): Promise<void> {
    if (!this.isRunning()) return;
    try {
      await this.pgCommand('pg_ctl', [
        'stop',
        '-w',
        '-t',
        String(this.timeoutS),
        '-m',
        mode,
        '-D',
        this.dataDir,
      ]);
    } catch (err) {
      if (this.isRunning()) throw err; // it went away on its own meanwhile
    }
  }

  /** Simulated crash: `pg_ctl stop -m immediate` (no checkpoint; recovery runs at the next start). */
  stopImmediate(): Promise<void> {
    return this.stop('immediate');
  }

  /** Stop (fast by default) and start again on the same port. */
  async restart(mode: ShutdownMode = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /** The postmaster pid from `postmaster.pid`, if the server runs. */
  get pid(): number | undefined {
    return postmasterPid(this.dataDir);
  }

  isRunning(): boolean {
    const pid = this.pid;
    return pid !== undefined && isPidAlive(pid);
  }

  /**
   * Create `name` unless it exists (owned by `owner`, default the superuser); returns its connection
   * URL as the superuser.
   */
  async createDatabase(name: string, owner?: string): Promise<string> {
    await this.withClient(async (client) => {
      const exists = await client.query<{ owner: string }>(
        'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
        [name],
      );
      const ownerClause = owner === undefined ? '' : ` OWNER ${quoteIdentifier(owner)}`;
      if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${quoteIdentifier(name)}${ownerClause}`);
      else if (owner !== undefined && exists.rows[0]!.owner !== owner)
        throw new Error(
          `database ${name} in ${this.dataDir} belongs to ${exists.rows[0]!.owner}, not ${owner} (made before ` +
            'the lab used its own role): delete the cluster (hothot lab up --fresh) so that it is made again',
        );
    });
    return this.url(name);
  }

  /**
   * Create login role `name` with `password` (or set its password), not a superuser. With
   * `readAllStats`, it sees every session in `pg_stat_activity` (a region's relay reads the oldest
   * open transaction of its database there). The password goes to the server as a SCRAM verifier.
   */
  async ensureRole(name: string, password: string, options: { readAllStats?: boolean } = {}): Promise<void> {
    const verifier = scramSha256Verifier(password);
    await this.withClient(async (client) => {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
      const role = quoteIdentifier(name);
      const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
      await client.query(
        `${verb} ROLE ${role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${quoteLiteral(verifier)}`,
      );
      if (options.readAllStats === true) await client.query(`GRANT pg_read_all_stats TO ${role}`);
    });
  }

  /** Whether pg_hba.conf lets any connection in without a password (a cluster made with trust). */
  private trustsConnections(): boolean {
    try {
      return readFileSync(join(this.dataDir, 'pg_hba.conf'), 'utf8')
        .split('\n')
        .some((line) => !line.trim().startsWith('#') && /\btrust\s*$/.test(line.trim()));
    } catch {
      return false;
    }
  }

  /** Drop `name` if it exists, disconnecting its sessions. */
  async dropDatabase(name: string): Promise<void> {
    await this.withClient((client) =>
      client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`),
    );
  }

  /** Run `fn` with a superuser connection to the `postgres` database. */
  async withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.url('postgres') });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Run a PostgreSQL binary, as the `postgres` user when we are root. */
  private pgCommand(binary: string, args: readonly string[]) {
    const path = join(this.binDir, binary);
    // cwd "/": the postgres user may not be allowed into the caller's working directory.
    if (isRoot())
      return run('runuser', ['-u', POSTGRES_SUPERUSER, '--', path, ...args], {
        cwd: '/',
        timeoutMs: (this.timeoutS + 30) * 1000,
      });
    return run(path, args, { timeoutMs: (this.timeoutS + 30) * 1000 });
  }

  /**
   * As root: give `dir` to the postgres user and check it can reach it (every parent directory must be
   * searchable by others — a mkdtemp directory is 0700, for example).
   */
  private prepareOwnership(dir: string): void {
    if (!isRoot()) return;
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
    assertTraversable(dirname(dir));
  }

  private prepareLogFile(): void {
    mkdirSync(dirname(this.logFile), { recursive: true });
    closeSync(openSync(this.logFile, 'a'));
    if (isRoot()) {
      const { uid, gid } = postgresUser();
      chownSync(this.logFile, uid, gid);
      assertTraversable(dirname(this.logFile));
    }
  }
}

/** The postmaster pid recorded in `<dataDir>/postmaster.pid`, if any. */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const first = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Stop the cluster in `dataDir` if it runs (for `lab down`, which only knows directories). */
export async function stopPostgresDataDir(
  dataDir: string,
  binDir?: string,
  mode: ShutdownMode = 'fast',
): Promise<boolean> {
  const pid = postmasterPid(dataDir);
  if (pid === undefined || !isPidAlive(pid)) return false;
  await new PostgresCluster({ dataDir, port: 0, binDir }).stop(mode);
  return true;
}

/** A postgresql.conf value: numbers and booleans bare, strings single-quoted. */
function formatSetting(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * PostgreSQL's stored form of a SCRAM-SHA-256 password (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
 * RFC 5802/7677), which `PASSWORD '…'` accepts as is. For ASCII passwords (SASLprep leaves them as they are).
 */
export function scramSha256Verifier(password: string, iterations = 4096, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const b64 = (b: Buffer) => b.toString('base64');
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

let cachedPostgresUser: { uid: number; gid: number } | undefined;

function postgresUser(): { uid: number; gid: number } {
  if (cachedPostgresUser !== undefined) return cachedPostgresUser;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${POSTGRES_SUPERUSER}:`));
  const fields = line?.split(':');
  if (fields === undefined || fields.length < 4) {
    throw new Error(
      `running as root, but there is no "${POSTGRES_SUPERUSER}" system user to run PostgreSQL as: ` +
        `create it (useradd --system ${POSTGRES_SUPERUSER}) or run as a non-root user`,
    );
  }
  cachedPostgresUser = { uid: Number(fields[2]), gid: Number(fields[3]) };
  return cachedPostgresUser;
}

function assertTraversable(dir: string): void {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const { uid, gid } = postgresUser();
    const st = statSync(d);
    const bit = st.uid === uid ? 0o100 : st.gid === gid ? 0o010 : 0o001;
    const ok = (st.mode & bit) !== 0;
    if (!ok) {
      throw new Error(
        `PostgreSQL runs as the "${POSTGRES_SUPERUSER}" user, which cannot enter ${d}: run \`chmod o+x ${d}\` or put the data elsewhere`,
      );
    }
    if (d === dirname(d)) return;
  }
}

function majorVersionOf(binDir: string): number {
  const fromPath = /postgresql\/(\d+)/.exec(binDir)?.[1];
  if (fromPath !== undefined) return Number(fromPath);
  try {
    // "pg_ctl (PostgreSQL) 15.13"
    const out = execFileSync(join(binDir, 'pg_ctl'), ['--version'], { encoding: 'utf8' });
    return Number(/(\d+)(\.\d+)*\s*$/.exec(out.trim())?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
