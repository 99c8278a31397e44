/**
 * docker-compose.yml, read as Docker Compose reads it (merge keys resolved): each region service gets
 * a complete, valid configuration that points at its own PostgreSQL and at its own Kafka listener
 * through its own Toxiproxy proxy, and waits for them to be healthy; the Kafka node is set up for a
 * single broker; HAProxy fronts every region. Security as in the lab: TLS on every Kafka listener,
 * SCRAM with one principal per region and ACLs from infra/lab/kafkaAcls.ts, PostgreSQL with SCRAM and
 * no `trust`, each container mounting only its own secrets. Also checks that the image puts the
 * migrations where the compiled migration runner looks for them.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, REQUIRED_ENV_VARS } from '../../shared/config/loadConfig.js';
import { MIGRATIONS_DIR } from '../../shared/db/migrate.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { REGION_NODE_OPTIONS } from '../../infra/lab/regionProcess.js';
import {
  COMPOSE_ACLS_FILE,
  COMPOSE_ADMIN_KEY_FILE,
  COMPOSE_SESSION_TOKEN_KEYS_FILE,
  COMPOSE_TOPIC_PREFIX,
  composeAclLines,
  composeSecretFiles,
  writeComposeSecrets,
} from '../../infra/lab/composeSecrets.js';
import { KAFKA_AUTHORIZER, KAFKA_SUPER_USERS } from '../../infra/lab/kafkaServerProperties.js';
import { parseApiKey } from '../../shared/security/apiKey.js';

const REPO_ROOT = new URL('../../', import.meta.url);

interface Service {
  readonly environment?: Record<string, unknown> | readonly string[];
  readonly depends_on?: readonly string[] | Record<string, { readonly condition?: string }>;
  readonly healthcheck?: { readonly test?: unknown };
  readonly ports?: readonly unknown[];
  readonly image?: string;
  readonly volumes?: readonly string[];
  readonly command?: readonly string[];
  readonly secrets?: readonly (string | { readonly source: string; readonly target?: string })[];
}

const composeText = readFileSync(new URL('docker-compose.yml', REPO_ROOT), 'utf8');
/** `${NAME:-default}` → default: the file as Compose reads it when none of its variables is set. */
const VARIABLE = /\$\{([A-Z0-9_]+):-([^}]*)\}/g;
const compose = parse(
  composeText.replace(VARIABLE, (_, _name: string, fallback: string) => fallback),
  { merge: true },
) as {
  services: Record<string, Service>;
  secrets?: Record<string, { readonly file?: string }>;
};
const services = compose.services;

/** A service's secrets as mount path (/run/secrets/<target>) → secret name. */
function secretMounts(service: Service | undefined): Map<string, string> {
  return new Map(
    (service?.secrets ?? []).map((s) =>
      typeof s === 'string' ? [`/run/secrets/${s}`, s] : [`/run/secrets/${s.target ?? s.source}`, s.source],
    ),
  );
}

interface ToxiproxyProxyConfig {
  readonly name: string;
  readonly listen: string;
  readonly upstream: string;
  readonly enabled?: boolean;
}
const toxiproxyConfig = JSON.parse(
  readFileSync(new URL('infra/toxiproxy/toxiproxy.json', REPO_ROOT), 'utf8'),
) as ToxiproxyProxyConfig[];
const haproxyConfig = readFileSync(new URL('infra/haproxy/haproxy.cfg', REPO_ROOT), 'utf8');

/** A service's environment as strings, whether written as a map or as a `KEY=value` list. */
function envOf(service: Service | undefined): Record<string, string> {
  const env = service?.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(
      (env as readonly string[]).map((entry) => {
        const eq = entry.indexOf('=');
        return eq < 0 ? [entry, ''] : [entry.slice(0, eq), entry.slice(eq + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(env).map(([k, v]) => [
      k,
      v === null || v === undefined ? '' : String(v as string | number),
    ]),
  );
}

/** `depends_on` as service → condition (the short list form means `service_started`). */
function dependenciesOf(service: Service): Record<string, string> {
  const deps = service.depends_on;
  if (deps === undefined) return {};
  if (Array.isArray(deps))
    return Object.fromEntries((deps as readonly string[]).map((d) => [d, 'service_started']));
  return Object.fromEntries(
    Object.entries(deps as Record<string, { condition?: string }>).map(([name, d]) => [
      name,
      d.condition ?? 'service_started',
    ]),
  );
}

/** `NAME://host:port,…` → name → `host:port`. */
function listenerMap(value: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const entry of (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const m = /^([A-Za-z0-9_]+):\/\/(.*)$/.exec(entry);
    if (m) map.set(m[1]!, m[2]!);
  }
  return map;
}

const regionServices = Object.keys(services).filter((name) => name.startsWith('region-'));

/**
 * The compose secrets, written by `hothot lab compose-secrets` into a temporary directory: the region
 * environment given to loadConfig reads SESSION_TOKEN_KEYS_FILE at load, so it points at the file
 * there instead of at its mount path.
 */
const secretsRoot = mkdtempSync(path.join(tmpdir(), 'hothot-compose-config-'));
afterAll(() => rmSync(secretsRoot, { recursive: true, force: true }));
const secretsDir = path.join(secretsRoot, 'compose');
writeComposeSecrets(
  secretsDir,
  regionServices.map((n) => n.slice('region-'.length)),
);
function withHostSecrets(env: Record<string, string>): Record<string, string> {
  return { ...env, SESSION_TOKEN_KEYS_FILE: path.join(secretsDir, COMPOSE_SESSION_TOKEN_KEYS_FILE) };
}
const regionOf = (serviceName: string) => serviceName.slice('region-'.length);
const kafkaEnv = envOf(services.kafka);
const advertised = listenerMap(kafkaEnv.KAFKA_ADVERTISED_LISTENERS);

describe('docker-compose.yml', () => {
  it('when the file is read, then it defines kafka and at least two region services, each with its own PostgreSQL', () => {
    expect(services.kafka).toBeDefined();
    expect(regionServices.length).toBeGreaterThanOrEqual(2);
    for (const name of regionServices) expect(services[`postgres-${regionOf(name)}`], name).toBeDefined();
  });

  describe.each(regionServices)('%s', (name) => {
    const service = services[name]!;
    const env = envOf(service);
    const region = regionOf(name);
    const config = () => loadConfig(withHostSecrets(env));

    it('when its environment is read, then every required variable is set and not empty', () => {
      for (const variable of REQUIRED_ENV_VARS) {
        expect(env[variable], `${name}: ${variable}`).toBeDefined();
        expect(env[variable]!.trim(), `${name}: ${variable}`).not.toBe('');
      }
    });

    it('when its environment is given to loadConfig, then the configuration is valid and names the region after the service', () => {
      const loaded = config();
      expect(loaded.region).toBe(region);
      expect(loaded.host).toBe('0.0.0.0');
    });

    it('when its peers are read, then PEER_REGIONS lists exactly the other region services', () => {
      const others = regionServices.filter((n) => n !== name).map(regionOf);
      expect([...config().peerRegions].sort()).toEqual(others.sort());
    });

    it('when its database is read, then DATABASE_URL points at its own PostgreSQL service and database', () => {
      const url = new URL(env.DATABASE_URL!);
      const postgres = `postgres-${region}`;
      expect(url.hostname).toBe(postgres);
      expect(url.port === '' ? '5432' : url.port).toBe('5432');
      expect(url.pathname.slice(1)).toBe(envOf(services[postgres]).POSTGRES_DB ?? 'postgres');
    });

    it("when its brokers are read, then KAFKA_BROKERS is its own listener's advertised address and no other region's", () => {
      const brokers = config().kafkaBrokers;
      const own = advertised.get(region.toUpperCase().replace(/[^A-Z0-9_]/g, '_'));
      expect(own, `kafka advertises no listener for ${region}`).toBeDefined();
      expect(brokers).toEqual([own]);
      for (const other of regionServices.filter((n) => n !== name)) {
        expect(envOf(services[other]).KAFKA_BROKERS).not.toBe(env.KAFKA_BROKERS);
      }
    });

    it('when its brokers are read, then they are its own Toxiproxy proxy, which forwards to its own Kafka listener', () => {
      const listener = region.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
      const [host, port] = config().kafkaBrokers[0]!.split(':');
      expect(host).toBe('toxiproxy');
      const proxy = toxiproxyConfig.find((p) => p.name === `kafka-${region}`);
      expect(proxy, `infra/toxiproxy/toxiproxy.json has kafka-${region}`).toBeDefined();
      expect(proxy!.listen.split(':').at(-1)).toBe(port);
      const bound = listenerMap(kafkaEnv.KAFKA_LISTENERS).get(listener);
      expect(proxy!.upstream).toBe(`kafka:${bound!.split(':').at(-1)}`);
    });

    it('when the front door is read, then HAProxy has a server line for it on its API port', () => {
      expect(haproxyConfig).toMatch(new RegExp(`^\\s*server ${region} ${name}:8080\\b`, 'm'));
    });

    it('when it starts, then it waits for its PostgreSQL, Kafka and Toxiproxy to be healthy', () => {
      const deps = dependenciesOf(service);
      for (const dep of [`postgres-${region}`, 'kafka', 'toxiproxy']) {
        expect(deps[dep], `${name} depends_on ${dep}`).toBe('service_healthy');
        expect(services[dep]?.healthcheck?.test, `${dep} has a healthcheck`).toBeDefined();
      }
    });

    it('when its health is checked, then the check asks /readyz', () => {
      expect(JSON.stringify(service.healthcheck?.test)).toContain('/readyz');
    });

    it('when it connects to Kafka, then it is its own principal over TLS: the CA and its own password, mounted', () => {
      const mounts = secretMounts(service);
      const kafka = config().security.kafka;
      expect(kafka?.username).toBe(region);
      expect(mounts.get(env.KAFKA_SSL_CA_FILE!)).toBe('kafka-ca');
      expect(mounts.get(env.KAFKA_SASL_PASSWORD_FILE!)).toBe(`kafka-${region}-password`);
      expect(env.KAFKA_SASL_PASSWORD, 'no password in the environment').toBeUndefined();
      for (const other of regionServices.filter((n) => n !== name))
        expect([...mounts.values()]).not.toContain(`kafka-${regionOf(other)}-password`);
    });

    it('when it publishes, then it signs with its own event key and verifies with every public key, both mounted', () => {
      const mounts = secretMounts(service);
      const signing = config().security.eventSigning;
      expect(signing?.keyId).toBe(`${region}-1`);
      expect(mounts.get(signing!.keyFile)).toBe(`event-${region}-key`);
      expect(mounts.get(signing!.publicKeysFile)).toBe('event-public-keys');
      for (const other of regionServices.filter((n) => n !== name))
        expect([...mounts.values()]).not.toContain(`event-${regionOf(other)}-key`);
    });

    it('when it connects to PostgreSQL, then it is the role owning the database, with no password in the URL and its own secret', () => {
      const url = new URL(env.DATABASE_URL!);
      expect(url.username).toBe('hothot');
      expect(url.password).toBe('');
      expect(secretMounts(service).get(env.DATABASE_PASSWORD_FILE!)).toBe(`postgres-${region}-app-password`);
      expect(config().databasePasswordFile).toBe(env.DATABASE_PASSWORD_FILE);
      // Its PostgreSQL creates that role with the same secret.
      const postgres = services[`postgres-${region}`]!;
      expect(secretMounts(postgres).get('/run/secrets/postgres-app-password')).toBe(
        `postgres-${region}-app-password`,
      );
      expect(
        postgres.volumes?.some((v) =>
          v.startsWith('./infra/postgres/compose-app-role.sh:/docker-entrypoint-initdb.d/'),
        ),
      ).toBe(true);
    });

    it('when it starts, then security is on, said explicitly, with the shared session-token key and the bootstrap admin key mounted', () => {
      expect(env.SECURITY_MODE).toBe('on');
      expect(config().security.mode).toBe('on');
      const mounts = secretMounts(service);
      expect(mounts.get(env.SESSION_TOKEN_KEYS_FILE!)).toBe('session-token-keys');
      expect(mounts.get(env.BOOTSTRAP_ADMIN_KEY_FILE!)).toBe('bootstrap-admin-key');
      expect(config().security.bootstrapAdminKeyFile).toBe(env.BOOTSTRAP_ADMIN_KEY_FILE);
      expect(config().security.sessionTokenKeys[0]?.length).toBeGreaterThanOrEqual(32);
      expect(env.SESSION_TOKEN_KEYS, 'no key in the environment').toBeUndefined();
    });

    it('when it starts, then the topics and ACLs are in place (kafka-setup completed)', () => {
      expect(dependenciesOf(service)['kafka-setup']).toBe('service_completed_successfully');
    });
  });

  it('when the region services publish their API, then each uses its own host port', () => {
    const hostPorts = regionServices.flatMap((n) =>
      (services[n]!.ports ?? []).map((p) => (typeof p === 'string' ? p.split(':').slice(-2)[0] : String(p))),
    );
    expect(hostPorts.length).toBe(regionServices.length);
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it('when any port is published, then it binds 127.0.0.1 only, on a host port a variable can move', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? [])
        expect(String(port as string), name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
    const published = [...composeText.matchAll(/^\s*- '127\.0\.0\.1:(.*):\d+'$/gm)].map((m) => m[1]);
    expect(published.length).toBeGreaterThanOrEqual(4);
    for (const hostPort of published) expect(hostPort).toMatch(/^\$\{HOTHOT_[A-Z_]+_PORT:-\d+\}$/);
  });

  it('when the images are read, then each is a HOTHOT_*_IMAGE variable whose default is the official image', () => {
    const images = [...composeText.matchAll(/^\s*image: (.*)$/gm)].map((m) => m[1]!);
    expect(images.length).toBeGreaterThanOrEqual(6);
    for (const image of images) expect(image).toMatch(/^\$\{HOTHOT_[A-Z]+_IMAGE:-[^}]+\}$/);
    expect(composeText).toMatch(/NODE_IMAGE: \$\{HOTHOT_NODE_IMAGE:-node:20-bookworm-slim\}/);
    expect(services['region-us']?.image).toBe(services['region-eu']?.image);
  });

  it('when the kafka service is read, then it is a single KRaft node whose internal topics accept one replica', () => {
    expect(kafkaEnv.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(kafkaEnv.KAFKA_CONTROLLER_QUORUM_VOTERS?.split(',')).toHaveLength(1);
    expect(kafkaEnv.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe('1');
    expect(kafkaEnv.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR).toBe('1');
    expect(kafkaEnv.KAFKA_TRANSACTION_STATE_LOG_MIN_ISR).toBe('1');
  });

  it('when the kafka listeners are read, then every advertised listener is bound and mapped to a protocol, and the controller is not advertised', () => {
    const bound = listenerMap(kafkaEnv.KAFKA_LISTENERS);
    const protocols = new Set(
      (kafkaEnv.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP ?? '').split(',').map((p) => p.split(':')[0]),
    );
    for (const [listener, address] of advertised) {
      expect(bound.get(listener)?.split(':').at(-1), `${listener} is bound on the advertised port`).toBe(
        address.split(':').at(-1),
      );
      expect(protocols.has(listener), `${listener} has a security protocol`).toBe(true);
    }
    const controller = kafkaEnv.KAFKA_CONTROLLER_LISTENER_NAMES ?? 'CONTROLLER';
    expect(advertised.has(controller)).toBe(false);
  });
});

describe('docker-compose.yml security', () => {
  const protocols = new Map(
    (kafkaEnv.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP ?? '')
      .split(',')
      .map((p) => p.split(':') as [string, string]),
  );
  const kafkaMounts = secretMounts(services.kafka);

  it('when the kafka listeners are read, then every one speaks TLS: SASL_SSL, and mTLS for the controller', () => {
    for (const [listener, protocol] of protocols) {
      expect(protocol, listener).toBe(listener === 'CONTROLLER' ? 'SSL' : 'SASL_SSL');
    }
    expect(kafkaEnv.KAFKA_LISTENER_NAME_CONTROLLER_SSL_CLIENT_AUTH).toBe('required');
    expect(kafkaEnv.KAFKA_SASL_ENABLED_MECHANISMS).toBe('SCRAM-SHA-512');
    expect(kafkaEnv.KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL).toBe('SCRAM-SHA-512');
  });

  it('when the kafka authorizer is read, then ACLs are enforced as in the lab: StandardAuthorizer, admin and the broker as the only super users', () => {
    expect(kafkaEnv.KAFKA_AUTHORIZER_CLASS_NAME).toBe(KAFKA_AUTHORIZER);
    expect(kafkaEnv.KAFKA_SUPER_USERS).toBe(KAFKA_SUPER_USERS);
    expect(kafkaEnv.KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND).toBe('false');
  });

  it('when the kafka key material is read, then PEM key and trust stores and the JAAS login are mounted secrets', () => {
    expect(kafkaEnv.KAFKA_SSL_KEYSTORE_TYPE).toBe('PEM');
    expect(kafkaMounts.get(kafkaEnv.KAFKA_SSL_KEYSTORE_LOCATION!)).toBe('kafka-broker-keystore');
    expect(kafkaEnv.KAFKA_SSL_TRUSTSTORE_TYPE).toBe('PEM');
    expect(kafkaMounts.get(kafkaEnv.KAFKA_SSL_TRUSTSTORE_LOCATION!)).toBe('kafka-ca');
    const jaas = /-Djava\.security\.auth\.login\.config=(\S+)/.exec(kafkaEnv.KAFKA_OPTS ?? '')?.[1];
    expect(kafkaMounts.get(jaas!)).toBe('kafka-broker-jaas');
  });

  it('when kafka formats its storage, then there is a SCRAM user for admin and for every region, from its own password', () => {
    expect(services.kafka?.command).toEqual(['bash', '/hothot/compose-kafka.sh']);
    expect(services.kafka?.volumes).toContain('./infra/kafka/compose-kafka.sh:/hothot/compose-kafka.sh:ro');
    expect(services.kafka?.volumes).toContain(
      './infra/kafka/kafka-env-properties.sh:/hothot/kafka-env-properties.sh:ro',
    );
    for (const user of ['admin', ...regionServices.map(regionOf)]) {
      expect(kafkaMounts.get(`/run/secrets/kafka-user-${user}`), user).toBe(`kafka-${user}-password`);
    }
    // Healthy once INTERNAL accepts connections: never a region's (proxied, cuttable) listener.
    expect(JSON.stringify(services.kafka?.healthcheck?.test)).toContain('/dev/tcp/127.0.0.1/9092');
    expect(listenerMap(kafkaEnv.KAFKA_LISTENERS).get('INTERNAL')).toBe('0.0.0.0:9092');
  });

  it('when kafka-setup runs, then it applies exactly the ACLs infra/lab/kafkaAcls.ts gives the regions', () => {
    const setup = services['kafka-setup'];
    expect(setup?.volumes).toContain('./infra/kafka/compose-acls.txt:/hothot/compose-acls.txt:ro');
    expect(dependenciesOf(setup!).kafka).toBe('service_healthy');
    const lines = readFileSync(COMPOSE_ACLS_FILE, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines).toEqual(composeAclLines(COMPOSE_TOPIC_PREFIX, regionServices.map(regionOf)));
  });

  it('when PostgreSQL is read, then every connection authenticates with SCRAM and nothing trusts', () => {
    expect(composeText).not.toMatch(/\btrust\b/);
    for (const region of regionServices.map(regionOf)) {
      const name = `postgres-${region}`;
      const env = envOf(services[name]);
      expect(env.POSTGRES_HOST_AUTH_METHOD, name).toBe('scram-sha-256');
      expect(env.POSTGRES_INITDB_ARGS, name).toContain('--auth-local=scram-sha-256');
      expect(env.POSTGRES_INITDB_ARGS, name).toContain('--auth-host=scram-sha-256');
      expect(env.POSTGRES_PASSWORD, name).toBeUndefined();
      expect(secretMounts(services[name]).get(env.POSTGRES_PASSWORD_FILE!), name).toBe(
        `postgres-${region}-superuser-password`,
      );
    }
  });

  it('when the secrets are read, then each is a file `hothot lab compose-secrets` writes, and every one a service uses is declared', () => {
    const expected = composeSecretFiles(regionServices.map(regionOf));
    const declared = compose.secrets ?? {};
    expect(Object.keys(declared).sort()).toEqual(Object.keys(expected).sort());
    for (const [secret, file] of Object.entries(expected)) {
      expect(declared[secret]?.file, secret).toBe(`./.hothot/compose/${file}`);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const secret of secretMounts(service).values())
        expect(declared[secret], `${name}: ${secret}`).toBeDefined();
    }
  });

  it('when `hothot lab compose-secrets` runs, then it writes every declared file, readable by the containers, in a 0700 directory', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hothot-compose-secrets-'));
    try {
      const target = path.join(dir, 'compose');
      const written = writeComposeSecrets(target, regionServices.map(regionOf));
      expect(statSync(target).mode & 0o777).toBe(0o700);
      for (const file of Object.values(composeSecretFiles(regionServices.map(regionOf)))) {
        expect(written.files).toContain(file);
        expect(statSync(path.join(target, file)).mode & 0o777, file).toBe(0o644);
      }
      expect(statSync(path.join(target, 'ca.key')).mode & 0o777).toBe(0o600);
      // The client credentials: one session-token key (≥ 32 bytes) and an admin API key, kept on a rerun.
      const keys = readFileSync(path.join(target, COMPOSE_SESSION_TOKEN_KEYS_FILE), 'utf8').trim();
      expect(Buffer.from(keys, 'base64url').length).toBeGreaterThanOrEqual(32);
      const adminKey = readFileSync(path.join(target, COMPOSE_ADMIN_KEY_FILE), 'utf8').trim();
      expect(parseApiKey(adminKey)).toBeDefined();
      writeComposeSecrets(target, regionServices.map(regionOf));
      expect(readFileSync(path.join(target, COMPOSE_SESSION_TOKEN_KEYS_FILE), 'utf8').trim()).toBe(keys);
      expect(readFileSync(path.join(target, COMPOSE_ADMIN_KEY_FILE), 'utf8').trim()).toBe(adminKey);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker-compose.yml fault proxy and front door', () => {
  it('when the toxiproxy service is read, then it is the official image loading infra/toxiproxy/toxiproxy.json', () => {
    const toxiproxy = services.toxiproxy;
    expect(toxiproxy?.image).toMatch(/^ghcr\.io\/shopify\/toxiproxy:/);
    expect(toxiproxy?.volumes?.some((v) => v.startsWith('./infra/toxiproxy/toxiproxy.json:'))).toBe(true);
  });

  it('when the kafka advertised listeners are read, then every region listener is advertised at the toxiproxy service', () => {
    for (const name of regionServices) {
      const listener = regionOf(name)
        .toUpperCase()
        .replace(/[^A-Z0-9_]/g, '_');
      expect(advertised.get(listener)?.split(':')[0], `${listener} advertised host`).toBe('toxiproxy');
    }
  });

  it('when the front door is read, then it is the official HAProxy image with the repository config', () => {
    const door = services.frontdoor;
    expect(door?.image).toMatch(/^haproxy:/);
    expect(door?.volumes?.some((v) => v.startsWith('./infra/haproxy/haproxy.cfg:'))).toBe(true);
    expect(haproxyConfig).toMatch(/option httpchk GET \/readyz/);
  });
});

describe('infra/docker/Dockerfile', () => {
  it('when the image is built, then the migrations are copied to where dist/shared/db/migrate.js looks for them', () => {
    // The runner resolves MIGRATIONS_DIR relative to its own file; compiled, that file is dist/shared/db/.
    const relative = path.relative(fileURLToPath(new URL('shared/db/', REPO_ROOT)), MIGRATIONS_DIR);
    const target = path.posix.normalize(
      path.posix.join('dist/shared/db', relative.split(path.sep).join('/')),
    );
    const dockerfile = readFileSync(new URL('infra/docker/Dockerfile', REPO_ROOT), 'utf8');
    expect(target).toBe('dist/infra/postgres/migrations');
    expect(dockerfile).toMatch(
      /^COPY\s+infra\/postgres\/migrations\/?\s+(\.\/)?dist\/infra\/postgres\/migrations\/?\s*$/m,
    );
    // Same Node options as the lab's region processes (RegionProcess).
    const cmd = JSON.stringify(['node', ...REGION_NODE_OPTIONS, 'dist/services/region/main.js']).replaceAll(
      ',',
      ', ',
    );
    expect(dockerfile.split('\n')).toContain(`CMD ${cmd}`);
  });

  it('when the broker limits record batches, then every region is told the same limit, the one the lab uses', () => {
    const brokerLimit = envOf(services.kafka).KAFKA_MESSAGE_MAX_BYTES;
    expect(brokerLimit).toBe(String(LAB_MESSAGE_MAX_BYTES));
    for (const name of Object.keys(services).filter((n) => n.startsWith('region-'))) {
      expect(envOf(services[name]).KAFKA_MESSAGE_MAX_BYTES, name).toBe(brokerLimit);
    }
  });
});
