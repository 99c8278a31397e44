/**
 * Region process configuration, read once from the environment at start.
 *
 * Every variable is validated and every problem is reported at once, naming the variable and
 * saying how to fix it. The result is frozen. Required variables have no default.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { isValidCollection } from '../domain/itemRules.js';
import { KAFKA_DEFAULT_MESSAGE_MAX_BYTES } from '../kafka/messageSize.js';
import { POLICIES, isPolicy, type Policy, type PolicyMap } from '../domain/mergePolicy.js';
import { REGION_NAME_HINT, isRegionName } from '../domain/regionName.js';

/** Anti-entropy rounds, when ANTI_ENTROPY_INTERVAL_MS is not set, every this many heartbeat periods. */
export const ANTI_ENTROPY_HEARTBEATS = 5;

export const Role = { Api: 'api', Relay: 'relay', Applier: 'applier' } as const;
export type Role = (typeof Role)[keyof typeof Role];
const ALL_ROLES: readonly Role[] = [Role.Api, Role.Relay, Role.Applier];

export interface Config {
  /** This region's id (`REGION`). Required. */
  readonly region: string;
  /**
   * Other regions whose changes this region applies, at start (`PEER_REGIONS`, comma-separated; may
   * be empty), or read from `PEER_REGIONS_FILE`. One of the two is required. The live list, which
   * can change while the region runs, is the region's `PeerMembership`.
   */
  readonly peerRegions: readonly string[];
  /**
   * A file listing the peer regions (commas, spaces or newlines between them; `PEER_REGIONS_FILE`),
   * re-read while the region runs (on SIGHUP and every MEMBERSHIP_RELOAD_MS): a region joins or
   * leaves without a restart (docs/operations.md). @default none: PEER_REGIONS, fixed until restart
   */
  readonly peerRegionsFile: string | undefined;
  /**
   * How often the peers file and EVENT_PUBLIC_KEYS_FILE are checked for changes
   * (`MEMBERSHIP_RELOAD_MS`); 0: only on SIGHUP. @default 2000
   */
  readonly membershipReloadMs: number;
  /**
   * Processes this region process runs (`API_PROCESSES`): with more than one, a primary forks that
   * many workers (node:cluster) sharing the API port; every worker serves the API and applies peer
   * events (the consumer group shares the partitions), and exactly one — the leader, holding a
   * PostgreSQL advisory lock — runs the relay, heartbeats, maintenance and anti-entropy; a standby
   * takes over when it goes. @default 1
   */
  readonly apiProcesses: number;
  /**
   * With `API_PROCESSES` > 1, whether the primary also forks a relay worker (`RELAY_WORKER`): a worker
   * that serves no requests and applies nothing, and leads whenever it is up (the preferred leader,
   * services/region/leadership.ts), so that the relay has an event loop of its own instead of one
   * shared with an API under load; the API workers stand by for it. `false`: one of the API workers
   * leads, as with a single process. @default true
   */
  readonly relayWorker: boolean;
  /** PostgreSQL connection string of this region's database (`DATABASE_URL`). Required. */
  readonly databaseUrl: string;
  /**
   * File holding the database password (`DATABASE_PASSWORD_FILE`), where it cannot be in
   * `DATABASE_URL` (compose secrets); it replaces a password in the URL. @default none
   */
  readonly databasePasswordFile: string | undefined;
  /** Kafka bootstrap servers, `host:port,…` (`KAFKA_BROKERS`). Required. */
  readonly kafkaBrokers: readonly string[];
  /** Roles this process runs (`ROLES`). @default api,relay,applier */
  readonly roles: ReadonlySet<Role>;
  /** HTTP listen address (`HOST`). @default 127.0.0.1 */
  readonly host: string;
  /** HTTP port (`PORT`); 0 picks a free one. @default 8080 */
  readonly port: number;
  /** Prefix of topic and consumer-group names (`KAFKA_TOPIC_PREFIX`). @default hothot */
  readonly topicPrefix: string;
  /** Partitions of each change topic when this region creates it (`KAFKA_TOPIC_PARTITIONS`). @default 3 */
  readonly topicPartitions: number;
  /** Kafka client id (`KAFKA_CLIENT_ID`). @default hothot-<region> */
  readonly kafkaClientId: string;
  /** Connections in this process's PostgreSQL pool (`DB_POOL_SIZE`). @default 10 */
  readonly dbPoolSize: number;
  /** Largest accepted request body (`MAX_BODY_BYTES`). @default 1048576 (1 MiB) */
  readonly maxBodyBytes: number;
  /**
   * The broker's `message.max.bytes` (or the topic's lower `max.message.bytes`): the largest record
   * batch Kafka accepts (`KAFKA_MESSAGE_MAX_BYTES`). The API refuses a write whose change event would
   * not fit (413), and the relay splits its publishes by it. Checked against the topic's real value
   * once the broker answers; the lower of the two is used. @default 1048588 (Kafka's default)
   */
  readonly kafkaMessageMaxBytes: number;
  /** Outbox rows the relay claims per batch (`RELAY_BATCH_SIZE`). @default 500 */
  readonly relayBatchSize: number;
  /** Idle poll interval of the relay (`OUTBOX_POLL_INTERVAL_MS`). @default 50 */
  readonly outboxPollIntervalMs: number;
  /** Deadline of one publish to Kafka before the batch is released and retried (`PUBLISH_TIMEOUT_MS`). @default 10000 */
  readonly publishTimeoutMs: number;
  /** kafkajs TCP connect deadline (`KAFKA_CONNECTION_TIMEOUT_MS`). @default 3000 */
  readonly kafkaConnectionTimeoutMs: number;
  /** kafkajs deadline of one request to the broker (`KAFKA_REQUEST_TIMEOUT_MS`). @default 10000 */
  readonly kafkaRequestTimeoutMs: number;
  /** Consumer group session timeout: a silent member is evicted after this (`KAFKA_SESSION_TIMEOUT_MS`). @default 10000 */
  readonly kafkaSessionTimeoutMs: number;
  /** Period of the broker-link probe, a Kafka ApiVersions round trip on a fresh connection (`BROKER_PROBE_INTERVAL_MS`). @default 1000 */
  readonly brokerProbeIntervalMs: number;
  /** Deadline of one broker-link probe; two failed probes in a row mark the link down (`BROKER_PROBE_TIMEOUT_MS`). @default 1500 */
  readonly brokerProbeTimeoutMs: number;
  /** Heartbeat period (`HEARTBEAT_INTERVAL_MS`); 0 disables heartbeats. @default 1000 */
  readonly heartbeatIntervalMs: number;
  /**
   * Digest anti-entropy round period (`ANTI_ENTROPY_INTERVAL_MS`, docs/anti-entropy.md); 0 turns
   * anti-entropy off. @default 5 × HEARTBEAT_INTERVAL_MS (so off when heartbeats are)
   */
  readonly antiEntropyIntervalMs: number;
  /** Peer is `suspect` when its last heartbeat is older than this (`PEER_SUSPECT_AFTER_MS`). @default 5000 */
  readonly peerSuspectAfterMs: number;
  /** Peer is `down` when its last heartbeat is older than this (`PEER_DOWN_AFTER_MS`). @default 15000 */
  readonly peerDownAfterMs: number;
  /** Largest accepted lead of a peer's HLC over this host's clock (`MAX_CLOCK_SKEW_MS`). @default 60000 */
  readonly maxClockSkewMs: number;
  /**
   * Merge policy per collection (`COLLECTION_POLICIES`, e.g. `carts=fields,likes=counter`); other
   * collections use `lww`. Every region must declare the same map. @default (all lww)
   */
  readonly collectionPolicies: PolicyMap;
  /** Longest wait of a read carrying a session token for this region to catch up (`SESSION_WAIT_MS`). @default 2000 */
  readonly sessionWaitMs: number;
  /** Tombstones are collected this long after every region acknowledged them, at the earliest (`TOMBSTONE_GRACE_MS`). A peer silent longer blocks collection. @default 3600000 */
  readonly tombstoneGraceMs: number;
  /** Conflicts older than this are removed (`CONFLICT_RETENTION_MS`). @default 604800000 (7 days) */
  readonly conflictRetentionMs: number;
  /** At most this many conflicts are kept, oldest removed first (`CONFLICT_LOG_MAX_ROWS`). @default 1000000 */
  readonly conflictLogMaxRows: number;
  /** Versions kept per item in its history (`HISTORY_MAX_VERSIONS`). @default 20 */
  readonly historyMaxVersions: number;
  /** Period of the maintenance job: tombstone GC, retention, parked events (`MAINTENANCE_INTERVAL_MS`). @default 5000 */
  readonly maintenanceIntervalMs: number;
  /** Least gap between watermark heartbeats sent after data (`HEARTBEAT_MARK_INTERVAL_MS`). @default 50 */
  readonly heartbeatMarkIntervalMs: number;
  /** Safety margin subtracted from watermarks for clock differences between a region's hosts (`WATERMARK_MARGIN_MS`). @default 20 */
  readonly watermarkMarginMs: number;
  /** Authentication of clients, peers' events and the Kafka connection; see {@link SecurityConfig}. */
  readonly security: SecurityConfig;
  /** pino level (`LOG_LEVEL`). @default info */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export const SecurityMode = { On: 'on', InsecureDev: 'insecure-dev' } as const;
export type SecurityMode = (typeof SecurityMode)[keyof typeof SecurityMode];

/**
 * The mode when `SECURITY_MODE` is not set: secure by default. `insecure-dev` is only ever an
 * explicit choice, and the process says so loudly at start.
 */
export const DEFAULT_SECURITY_MODE: SecurityMode = SecurityMode.On;

/**
 * Security settings. With `SECURITY_MODE=on` (the default) every credential below marked "required"
 * must be given; `SECURITY_MODE=insecure-dev` turns client authentication, event signatures and
 * session-token MACs off for local work (the process says so loudly at start) and makes the rest optional.
 */
export interface SecurityConfig {
  /** `SECURITY_MODE`: `on` or `insecure-dev`. @default on */
  readonly mode: SecurityMode;
  /**
   * Keys of the session-token MAC (`SESSION_TOKEN_KEYS`: comma-separated base64url, ≥ 32 bytes each;
   * the first signs, all verify, for rotation; or `SESSION_TOKEN_KEYS_FILE`, a file holding that
   * value, read once at start). The same in every region. Required when on.
   */
  readonly sessionTokenKeys: readonly Buffer[];
  /**
   * A file holding one API key (`hh_<id>_<secret>`, `BOOTSTRAP_ADMIN_KEY_FILE`) that the region
   * creates with every scope at start when no key with that id exists yet (an existing one, revoked
   * or not, is left alone): the first admin key of a deployment that has no shell on its database.
   */
  readonly bootstrapAdminKeyFile: string | undefined;
  /** How long a looked-up API key is trusted before it is read again: revocation takes effect within it (`API_KEY_CACHE_MS`). @default 5000 */
  readonly apiKeyCacheMs: number;
  /**
   * JWT bearer tokens (`JWT_ISSUER`, `JWT_AUDIENCE`, and `JWT_JWKS_FILE` or `JWT_JWKS_URL`); absent
   * when none is set (API keys only). `JWT_SCOPE_CLAIM` (@default scope) holds space-separated
   * scopes, `JWT_COLLECTIONS_CLAIM` (@default hothot_collections) optionally limits collections.
   */
  readonly jwt:
    | {
        readonly issuer: string;
        readonly audience: string;
        readonly jwksFile: string | undefined;
        readonly jwksUrl: string | undefined;
        readonly scopeClaim: string;
        readonly collectionsClaim: string;
      }
    | undefined;
  /**
   * This region's Ed25519 event-signing key (`EVENT_SIGNING_KEY_FILE`, PKCS#8 PEM, and its id
   * `EVENT_SIGNING_KEY_ID`) and every region's public keys (`EVENT_PUBLIC_KEYS_FILE`, JSON
   * `{"<region>": {"<key id>": "<SPKI PEM>"}}`). Required when on.
   */
  readonly eventSigning:
    { readonly keyFile: string; readonly keyId: string; readonly publicKeysFile: string } | undefined;
  /**
   * Kafka over SASL_SSL with SCRAM-SHA-512: the CA that signed the broker's certificate
   * (`KAFKA_SSL_CA_FILE`), this region's principal (`KAFKA_SASL_USERNAME`) and its password
   * (`KAFKA_SASL_PASSWORD_FILE`, or `KAFKA_SASL_PASSWORD`). Required when on; absent means PLAINTEXT.
   */
  readonly kafka:
    | {
        readonly caFile: string;
        readonly username: string;
        readonly password: string | undefined;
        readonly passwordFile: string | undefined;
      }
    | undefined;
}

/** Variables without a default: every deployment (lab, compose, tests) must set them. */
export const REQUIRED_ENV_VARS = ['REGION', 'PEER_REGIONS', 'DATABASE_URL', 'KAFKA_BROKERS'] as const;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly retryable = false;
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

const intVar = (name: string, def: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === '') return def;
      const n = Number(s);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({
          code: 'custom',
          message: `${name}=${JSON.stringify(s)}: expected an integer from ${min} to ${max}`,
        });
        return z.NEVER;
      }
      return n;
    });

const boolVar = (name: string, def: boolean) =>
  z
    .string()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s.trim() === '') return def;
      const v = s.trim().toLowerCase();
      if (v === 'true' || v === '1') return true;
      if (v === 'false' || v === '0') return false;
      ctx.addIssue({ code: 'custom', message: `${name}=${JSON.stringify(s)}: expected true or false` });
      return z.NEVER;
    });

const required = (name: string, hint: string) =>
  z
    .string({ error: `${name} is not set: ${hint}` })
    .refine((s) => s.trim() !== '', `${name} is empty: ${hint}`);

/** Region ids of a list: separated by commas, spaces or newlines (a PEER_REGIONS value or file). */
export function splitRegionList(text: string): string[] {
  return text.split(/[\s,]+/).filter((r) => r !== '');
}

/** What is wrong with a list of region ids named `name` (nothing: an empty array). */
export function regionListProblems(name: string, items: readonly string[]): string[] {
  const problems = items
    .filter((r) => !isRegionName(r))
    .map((r) => `${name}: ${JSON.stringify(r)} is not a region id (${REGION_NAME_HINT})`);
  if (new Set(items).size !== items.length) problems.push(`${name} names a region twice`);
  return problems;
}

/**
 * The peer regions listed in `text` (the content of PEER_REGIONS_FILE), checked as at start: each a
 * region id, none twice, not `region` itself. Throws naming every problem.
 */
export function parsePeerRegions(text: string, region: string, name = 'PEER_REGIONS_FILE'): string[] {
  const items = splitRegionList(text);
  const problems = regionListProblems(name, items);
  if (items.includes(region)) problems.push(`${name} must not contain this region (${region})`);
  if (problems.length > 0) throw new ConfigError(problems);
  return items;
}

const regionList = (name: string) =>
  z
    .string({
      error: `${name} is not set: list the other regions, comma-separated (may be empty for a lone region), or give PEER_REGIONS_FILE`,
    })
    .transform((s, ctx) => {
      const items = splitRegionList(s);
      for (const message of regionListProblems(name, items)) ctx.addIssue({ code: 'custom', message });
      return items;
    });

const schema = z
  .object({
    REGION: required('REGION', `set it to this region's id, e.g. us`).superRefine((s, ctx) => {
      if (s.trim() !== '' && !isRegionName(s))
        ctx.addIssue({
          code: 'custom',
          message: `REGION=${JSON.stringify(s)} is not a region id (${REGION_NAME_HINT})`,
        });
    }),
    PEER_REGIONS: regionList('PEER_REGIONS'),
    DATABASE_URL: required('DATABASE_URL', 'set it to postgres://user@host:port/db').refine(
      (s) => /^postgres(ql)?:\/\//.test(s),
      'DATABASE_URL must start with postgres:// or postgresql://',
    ),
    DATABASE_PASSWORD_FILE: z.string().optional(),
    KAFKA_BROKERS: required(
      'KAFKA_BROKERS',
      'set it to host:port,… of the Kafka bootstrap servers',
    ).transform((s, ctx) => {
      const brokers = s
        .split(',')
        .map((b) => b.trim())
        .filter((b) => b !== '');
      for (const b of brokers) {
        if (!/^[^\s:]+:\d{1,5}$/.test(b))
          ctx.addIssue({ code: 'custom', message: `KAFKA_BROKERS: ${JSON.stringify(b)} is not host:port` });
      }
      if (brokers.length === 0)
        ctx.addIssue({ code: 'custom', message: 'KAFKA_BROKERS is empty: set it to host:port,…' });
      return brokers;
    }),
    ROLES: z
      .string()
      .optional()
      .transform((s, ctx) => {
        if (s === undefined || s.trim() === '') return new Set<Role>(ALL_ROLES);
        const roles = s
          .split(',')
          .map((r) => r.trim())
          .filter((r) => r !== '');
        const bad = roles.filter((r) => !(ALL_ROLES as readonly string[]).includes(r));
        if (bad.length > 0 || roles.length === 0) {
          ctx.addIssue({
            code: 'custom',
            message: `ROLES=${JSON.stringify(s)}: expected a comma-separated subset of ${ALL_ROLES.join(',')}`,
          });
          return z.NEVER;
        }
        return new Set(roles as Role[]);
      }),
    HOST: z
      .string()
      .optional()
      .transform((s) => (s === undefined || s === '' ? '127.0.0.1' : s)),
    PORT: intVar('PORT', 8080, 0, 65535),
    KAFKA_TOPIC_PREFIX: z
      .string()
      .optional()
      .transform((s) => (s === undefined || s === '' ? 'hothot' : s))
      .refine(
        (s) => /^[A-Za-z0-9._-]{1,100}$/.test(s),
        'KAFKA_TOPIC_PREFIX: use letters, digits, ".", "_" and "-" only',
      ),
    KAFKA_TOPIC_PARTITIONS: intVar('KAFKA_TOPIC_PARTITIONS', 3, 1, 1000),
    KAFKA_CLIENT_ID: z.string().optional(),
    DB_POOL_SIZE: intVar('DB_POOL_SIZE', 10, 1, 1000),
    MAX_BODY_BYTES: intVar('MAX_BODY_BYTES', 1_048_576, 1, 64 * 1_048_576),
    RELAY_BATCH_SIZE: intVar('RELAY_BATCH_SIZE', 500, 1, 100_000),
    OUTBOX_POLL_INTERVAL_MS: intVar('OUTBOX_POLL_INTERVAL_MS', 50, 1, 60_000),
    KAFKA_MESSAGE_MAX_BYTES: intVar(
      'KAFKA_MESSAGE_MAX_BYTES',
      KAFKA_DEFAULT_MESSAGE_MAX_BYTES,
      4096,
      1_073_741_824,
    ),
    PUBLISH_TIMEOUT_MS: intVar('PUBLISH_TIMEOUT_MS', 10_000, 100, 600_000),
    KAFKA_CONNECTION_TIMEOUT_MS: intVar('KAFKA_CONNECTION_TIMEOUT_MS', 3000, 100, 600_000),
    KAFKA_REQUEST_TIMEOUT_MS: intVar('KAFKA_REQUEST_TIMEOUT_MS', 10_000, 100, 600_000),
    KAFKA_SESSION_TIMEOUT_MS: intVar('KAFKA_SESSION_TIMEOUT_MS', 10_000, 1000, 600_000),
    BROKER_PROBE_INTERVAL_MS: intVar('BROKER_PROBE_INTERVAL_MS', 1000, 100, 600_000),
    BROKER_PROBE_TIMEOUT_MS: intVar('BROKER_PROBE_TIMEOUT_MS', 1500, 100, 600_000),
    HEARTBEAT_INTERVAL_MS: intVar('HEARTBEAT_INTERVAL_MS', 1000, 0, 3_600_000),
    // -1: not set (the default follows HEARTBEAT_INTERVAL_MS).
    ANTI_ENTROPY_INTERVAL_MS: intVar('ANTI_ENTROPY_INTERVAL_MS', -1, 0, 24 * 3_600_000),
    PEER_REGIONS_FILE: z.string().optional(),
    MEMBERSHIP_RELOAD_MS: intVar('MEMBERSHIP_RELOAD_MS', 2000, 0, 3_600_000),
    API_PROCESSES: intVar('API_PROCESSES', 1, 1, 64),
    RELAY_WORKER: boolVar('RELAY_WORKER', true),
    PEER_SUSPECT_AFTER_MS: intVar('PEER_SUSPECT_AFTER_MS', 5000, 1, 86_400_000),
    PEER_DOWN_AFTER_MS: intVar('PEER_DOWN_AFTER_MS', 15_000, 1, 86_400_000),
    MAX_CLOCK_SKEW_MS: intVar('MAX_CLOCK_SKEW_MS', 60_000, 1, 86_400_000),
    COLLECTION_POLICIES: z
      .string()
      .optional()
      .transform((s, ctx) => {
        const out: Record<string, Policy> = {};
        for (const part of (s ?? '')
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== '')) {
          const [name, policy, extra] = part.split('=').map((x) => x.trim());
          if (extra !== undefined || !isValidCollection(name) || !isPolicy(policy)) {
            ctx.addIssue({
              code: 'custom',
              message: `COLLECTION_POLICIES: ${JSON.stringify(part)} is not <collection>=<${POLICIES.join('|')}>`,
            });
            continue;
          }
          if (Object.hasOwn(out, name))
            ctx.addIssue({ code: 'custom', message: `COLLECTION_POLICIES names ${name} twice` });
          out[name] = policy;
        }
        return out;
      }),
    SESSION_WAIT_MS: intVar('SESSION_WAIT_MS', 2000, 0, 600_000),
    TOMBSTONE_GRACE_MS: intVar('TOMBSTONE_GRACE_MS', 3_600_000, 0, 365 * 86_400_000),
    CONFLICT_RETENTION_MS: intVar('CONFLICT_RETENTION_MS', 7 * 86_400_000, 1000, 3650 * 86_400_000),
    CONFLICT_LOG_MAX_ROWS: intVar('CONFLICT_LOG_MAX_ROWS', 1_000_000, 1, 1_000_000_000),
    HISTORY_MAX_VERSIONS: intVar('HISTORY_MAX_VERSIONS', 20, 1, 10_000),
    MAINTENANCE_INTERVAL_MS: intVar('MAINTENANCE_INTERVAL_MS', 5000, 100, 3_600_000),
    HEARTBEAT_MARK_INTERVAL_MS: intVar('HEARTBEAT_MARK_INTERVAL_MS', 50, 1, 60_000),
    WATERMARK_MARGIN_MS: intVar('WATERMARK_MARGIN_MS', 20, 0, 60_000),
    SECURITY_MODE: z
      .enum(['on', 'insecure-dev'], { error: 'SECURITY_MODE: expected on or insecure-dev' })
      .optional(),
    SESSION_TOKEN_KEYS: z.string().optional(),
    SESSION_TOKEN_KEYS_FILE: z.string().optional(),
    BOOTSTRAP_ADMIN_KEY_FILE: z.string().optional(),
    API_KEY_CACHE_MS: intVar('API_KEY_CACHE_MS', 5000, 0, 3_600_000),
    JWT_ISSUER: z.string().optional(),
    JWT_AUDIENCE: z.string().optional(),
    JWT_JWKS_FILE: z.string().optional(),
    JWT_JWKS_URL: z.string().optional(),
    JWT_SCOPE_CLAIM: z.string().optional(),
    JWT_COLLECTIONS_CLAIM: z.string().optional(),
    EVENT_SIGNING_KEY_FILE: z.string().optional(),
    EVENT_SIGNING_KEY_ID: z.string().optional(),
    EVENT_PUBLIC_KEYS_FILE: z.string().optional(),
    KAFKA_SSL_CA_FILE: z.string().optional(),
    KAFKA_SASL_USERNAME: z.string().optional(),
    KAFKA_SASL_PASSWORD: z.string().optional(),
    KAFKA_SASL_PASSWORD_FILE: z.string().optional(),
    LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
        error: 'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent',
      })
      .optional(),
  })
  .superRefine((v, ctx) => {
    if (v.PEER_REGIONS.includes(v.REGION))
      ctx.addIssue({ code: 'custom', message: `PEER_REGIONS must not contain this region (${v.REGION})` });
    if (v.PEER_DOWN_AFTER_MS < v.PEER_SUSPECT_AFTER_MS)
      ctx.addIssue({ code: 'custom', message: 'PEER_DOWN_AFTER_MS must be at least PEER_SUSPECT_AFTER_MS' });
    for (const problem of securityProblems(v)) ctx.addIssue({ code: 'custom', message: problem });
  });

/** Read and validate the configuration; throws {@link ConfigError} listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const peersFile = readPeersFile(env);
  const parsed = schema.safeParse(peersFile.env);
  const problems = [
    ...peersFile.problems,
    ...(parsed.success ? [] : parsed.error.issues.map((i) => peersFile.rename(i.message))),
  ];
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const v = parsed.data;
  return Object.freeze({
    region: v.REGION,
    peerRegions: Object.freeze([...v.PEER_REGIONS]),
    peerRegionsFile: set(v.PEER_REGIONS_FILE) ? v.PEER_REGIONS_FILE : undefined,
    membershipReloadMs: v.MEMBERSHIP_RELOAD_MS,
    apiProcesses: v.API_PROCESSES,
    relayWorker: v.RELAY_WORKER,
    databaseUrl: v.DATABASE_URL,
    databasePasswordFile:
      v.DATABASE_PASSWORD_FILE !== undefined && v.DATABASE_PASSWORD_FILE.trim() !== ''
        ? v.DATABASE_PASSWORD_FILE
        : undefined,
    kafkaBrokers: Object.freeze([...v.KAFKA_BROKERS]),
    roles: v.ROLES,
    host: v.HOST,
    port: v.PORT,
    topicPrefix: v.KAFKA_TOPIC_PREFIX,
    topicPartitions: v.KAFKA_TOPIC_PARTITIONS,
    kafkaClientId: v.KAFKA_CLIENT_ID ?? `hothot-${v.REGION}`,
    dbPoolSize: v.DB_POOL_SIZE,
    maxBodyBytes: v.MAX_BODY_BYTES,
    relayBatchSize: v.RELAY_BATCH_SIZE,
    outboxPollIntervalMs: v.OUTBOX_POLL_INTERVAL_MS,
    publishTimeoutMs: v.PUBLISH_TIMEOUT_MS,
    kafkaMessageMaxBytes: v.KAFKA_MESSAGE_MAX_BYTES,
    kafkaConnectionTimeoutMs: v.KAFKA_CONNECTION_TIMEOUT_MS,
    kafkaRequestTimeoutMs: v.KAFKA_REQUEST_TIMEOUT_MS,
    kafkaSessionTimeoutMs: v.KAFKA_SESSION_TIMEOUT_MS,
    brokerProbeIntervalMs: v.BROKER_PROBE_INTERVAL_MS,
    brokerProbeTimeoutMs: v.BROKER_PROBE_TIMEOUT_MS,
    heartbeatIntervalMs: v.HEARTBEAT_INTERVAL_MS,
    antiEntropyIntervalMs:
      v.ANTI_ENTROPY_INTERVAL_MS >= 0
        ? v.ANTI_ENTROPY_INTERVAL_MS
        : ANTI_ENTROPY_HEARTBEATS * v.HEARTBEAT_INTERVAL_MS,
    peerSuspectAfterMs: v.PEER_SUSPECT_AFTER_MS,
    peerDownAfterMs: v.PEER_DOWN_AFTER_MS,
    maxClockSkewMs: v.MAX_CLOCK_SKEW_MS,
    collectionPolicies: Object.freeze(v.COLLECTION_POLICIES),
    sessionWaitMs: v.SESSION_WAIT_MS,
    tombstoneGraceMs: v.TOMBSTONE_GRACE_MS,
    conflictRetentionMs: v.CONFLICT_RETENTION_MS,
    conflictLogMaxRows: v.CONFLICT_LOG_MAX_ROWS,
    historyMaxVersions: v.HISTORY_MAX_VERSIONS,
    maintenanceIntervalMs: v.MAINTENANCE_INTERVAL_MS,
    heartbeatMarkIntervalMs: v.HEARTBEAT_MARK_INTERVAL_MS,
    watermarkMarginMs: v.WATERMARK_MARGIN_MS,
    security: Object.freeze(securityConfig(v)),
    logLevel: v.LOG_LEVEL ?? 'info',
  });
}

type SecurityVars = Partial<
  Record<
    | 'SECURITY_MODE'
    | 'SESSION_TOKEN_KEYS'
    | 'SESSION_TOKEN_KEYS_FILE'
    | 'BOOTSTRAP_ADMIN_KEY_FILE'
    | 'JWT_ISSUER'
    | 'JWT_AUDIENCE'
    | 'JWT_JWKS_FILE'
    | 'JWT_JWKS_URL'
    | 'JWT_SCOPE_CLAIM'
    | 'JWT_COLLECTIONS_CLAIM'
    | 'EVENT_SIGNING_KEY_FILE'
    | 'EVENT_SIGNING_KEY_ID'
    | 'EVENT_PUBLIC_KEYS_FILE'
    | 'KAFKA_SSL_CA_FILE'
    | 'KAFKA_SASL_USERNAME'
    | 'KAFKA_SASL_PASSWORD'
    | 'KAFKA_SASL_PASSWORD_FILE',
    string
  >
> & { API_KEY_CACHE_MS: number };

const set = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';

/**
 * With PEER_REGIONS_FILE, the environment to validate carries the file's list as PEER_REGIONS (so one
 * rule checks both), and the problems found in it are named by the file.
 */
function readPeersFile(env: NodeJS.ProcessEnv): {
  env: NodeJS.ProcessEnv;
  problems: string[];
  rename: (message: string) => string;
} {
  const file = env.PEER_REGIONS_FILE;
  const same = { env, problems: [], rename: (m: string) => m };
  if (!set(file)) return same;
  if (set(env.PEER_REGIONS))
    return { ...same, problems: ['PEER_REGIONS and PEER_REGIONS_FILE are both set: give one'] };
  const rename = (m: string) => m.replace(/^PEER_REGIONS\b/, `PEER_REGIONS_FILE ${file}`);
  try {
    const text = readFileSync(file, 'utf8');
    return { env: { ...env, PEER_REGIONS: splitRegionList(text).join(',') }, problems: [], rename };
  } catch (err) {
    return {
      env: { ...env, PEER_REGIONS: '' },
      problems: [
        `PEER_REGIONS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      ],
      rename,
    };
  }
}

function sessionKeys(raw: string | undefined): Buffer[] {
  return set(raw) ? raw.split(',').map((k) => Buffer.from(k.trim(), 'base64url')) : [];
}

/**
 * The SESSION_TOKEN_KEYS value: the variable, or the content of SESSION_TOKEN_KEYS_FILE (read here,
 * at start). A file that cannot be read is a problem named by the variable, never by its content.
 */
function sessionKeysText(v: SecurityVars): { text: string | undefined; problem?: string } {
  if (!set(v.SESSION_TOKEN_KEYS_FILE)) return { text: v.SESSION_TOKEN_KEYS };
  if (set(v.SESSION_TOKEN_KEYS))
    return {
      text: undefined,
      problem: 'SESSION_TOKEN_KEYS and SESSION_TOKEN_KEYS_FILE are both set: give one',
    };
  try {
    return { text: readFileSync(v.SESSION_TOKEN_KEYS_FILE, 'utf8').trim() };
  } catch (err) {
    return {
      text: undefined,
      problem: `SESSION_TOKEN_KEYS_FILE: cannot read ${v.SESSION_TOKEN_KEYS_FILE} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    };
  }
}

/** Every security problem, named by variable (none in insecure-dev but malformed values). */
function securityProblems(v: SecurityVars): string[] {
  const on = (v.SECURITY_MODE ?? DEFAULT_SECURITY_MODE) === SecurityMode.On;
  const problems: string[] = [];
  const keysText = sessionKeysText(v);
  if (keysText.problem !== undefined) problems.push(keysText.problem);
  const need = (name: keyof SecurityVars, why: string) => {
    if (name === 'SESSION_TOKEN_KEYS' && (set(keysText.text) || keysText.problem !== undefined)) return;
    if (on && !set(v[name] as string | undefined))
      problems.push(
        `${name} is not set: ${why} (or SECURITY_MODE=insecure-dev for local work without security)`,
      );
  };
  need(
    'SESSION_TOKEN_KEYS',
    'give the session-token MAC key(s), base64url, at least 32 bytes, the same in every region (or SESSION_TOKEN_KEYS_FILE)',
  );
  if (set(keysText.text) && sessionKeys(keysText.text).some((k) => k.length < 32))
    problems.push(
      `${set(v.SESSION_TOKEN_KEYS_FILE) ? 'SESSION_TOKEN_KEYS_FILE' : 'SESSION_TOKEN_KEYS'}: every key must be base64url of at least 32 bytes`,
    );
  need('EVENT_SIGNING_KEY_FILE', "give this region's Ed25519 private key (PKCS#8 PEM file)");
  need('EVENT_SIGNING_KEY_ID', "give the id of this region's event-signing key");
  need('EVENT_PUBLIC_KEYS_FILE', "give the file of every region's event public keys");
  if (set(v.EVENT_SIGNING_KEY_ID) && !/^[A-Za-z0-9._-]{1,64}$/.test(v.EVENT_SIGNING_KEY_ID))
    problems.push('EVENT_SIGNING_KEY_ID: 1-64 of A-Z a-z 0-9 . _ -');
  const kafkaVars = [
    v.KAFKA_SSL_CA_FILE,
    v.KAFKA_SASL_USERNAME,
    v.KAFKA_SASL_PASSWORD,
    v.KAFKA_SASL_PASSWORD_FILE,
  ].filter(set).length;
  if (!on && kafkaVars > 0 && !(set(v.KAFKA_SSL_CA_FILE) && set(v.KAFKA_SASL_USERNAME) && kafkaVars >= 3))
    problems.push(
      'Kafka security: set KAFKA_SSL_CA_FILE, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE (or KAFKA_SASL_PASSWORD) together, or none of them (PLAINTEXT, insecure-dev only)',
    );
  if (set(v.KAFKA_SASL_PASSWORD) && set(v.KAFKA_SASL_PASSWORD_FILE))
    problems.push('KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set: give one');
  need('KAFKA_SSL_CA_FILE', "give the CA certificate (PEM) that signed the broker's certificate");
  need('KAFKA_SASL_USERNAME', "give this region's Kafka principal");
  if (on && !set(v.KAFKA_SASL_PASSWORD) && !set(v.KAFKA_SASL_PASSWORD_FILE))
    problems.push(
      "KAFKA_SASL_PASSWORD_FILE (or KAFKA_SASL_PASSWORD) is not set: give this region's Kafka password (or SECURITY_MODE=insecure-dev for local work without security)",
    );
  const jwt = [v.JWT_ISSUER, v.JWT_AUDIENCE].filter(set).length;
  const jwks = [v.JWT_JWKS_FILE, v.JWT_JWKS_URL].filter(set).length;
  if ((jwt > 0 || jwks > 0) && (jwt < 2 || jwks !== 1))
    problems.push(
      'JWT: set JWT_ISSUER, JWT_AUDIENCE and exactly one of JWT_JWKS_FILE or JWT_JWKS_URL (or none of them)',
    );
  return problems;
}

function securityConfig(v: SecurityVars): SecurityConfig {
  return {
    mode: (v.SECURITY_MODE as SecurityMode | undefined) ?? DEFAULT_SECURITY_MODE,
    sessionTokenKeys: Object.freeze(sessionKeys(sessionKeysText(v).text)),
    bootstrapAdminKeyFile: set(v.BOOTSTRAP_ADMIN_KEY_FILE) ? v.BOOTSTRAP_ADMIN_KEY_FILE : undefined,
    apiKeyCacheMs: v.API_KEY_CACHE_MS,
    jwt:
      set(v.JWT_ISSUER) && set(v.JWT_AUDIENCE)
        ? {
            issuer: v.JWT_ISSUER,
            audience: v.JWT_AUDIENCE,
            jwksFile: set(v.JWT_JWKS_FILE) ? v.JWT_JWKS_FILE : undefined,
            jwksUrl: set(v.JWT_JWKS_URL) ? v.JWT_JWKS_URL : undefined,
            scopeClaim: set(v.JWT_SCOPE_CLAIM) ? v.JWT_SCOPE_CLAIM : 'scope',
            collectionsClaim: set(v.JWT_COLLECTIONS_CLAIM) ? v.JWT_COLLECTIONS_CLAIM : 'hothot_collections',
          }
        : undefined,
    eventSigning:
      set(v.EVENT_SIGNING_KEY_FILE) && set(v.EVENT_SIGNING_KEY_ID) && set(v.EVENT_PUBLIC_KEYS_FILE)
        ? {
            keyFile: v.EVENT_SIGNING_KEY_FILE,
            keyId: v.EVENT_SIGNING_KEY_ID,
            publicKeysFile: v.EVENT_PUBLIC_KEYS_FILE,
          }
        : undefined,
    kafka:
      set(v.KAFKA_SSL_CA_FILE) && set(v.KAFKA_SASL_USERNAME)
        ? {
            caFile: v.KAFKA_SSL_CA_FILE,
            username: v.KAFKA_SASL_USERNAME,
            password: set(v.KAFKA_SASL_PASSWORD) ? v.KAFKA_SASL_PASSWORD : undefined,
            passwordFile: set(v.KAFKA_SASL_PASSWORD_FILE) ? v.KAFKA_SASL_PASSWORD_FILE : undefined,
          }
        : undefined,
  };
}
