/**
 * Renders infra/kafka/server.properties for one single-node KRaft broker with one named client listener
 * per region, secured: TLS on every listener, SCRAM-SHA-512, ACLs. There is no PLAINTEXT mode: the lab,
 * the native test infrastructure and the bench all run the broker secured. Pure apart from reading the
 * template file.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';
import { KAFKA_ADMIN_PRINCIPAL, KAFKA_BROKER_CERT_CN } from './labSecrets.js';
import { REPO_ROOT } from './paths.js';

export const KAFKA_SERVER_PROPERTIES_TEMPLATE = join(REPO_ROOT, 'infra', 'kafka', 'server.properties');

/** Listener names the broker uses itself; a client listener may not take them. */
export const RESERVED_LISTENER_NAMES = ['CONTROLLER', 'INTERNAL'] as const;

/** A client listener: where the broker listens, and the address it tells clients that came through it. */
export interface KafkaListener {
  /** Upper-case listener name, e.g. `US` (see {@link listenerNameForRegion}). */
  readonly name: string;
  /** Port the broker binds on 127.0.0.1. */
  readonly port: number;
  /** Host advertised to clients of this listener. @default 127.0.0.1 */
  readonly advertisedHost?: string;
  /** Port advertised to clients of this listener (a proxy's port, later). @default port */
  readonly advertisedPort?: number;
}

export interface KafkaServerPropertiesInput {
  /** @default 1 */
  readonly nodeId?: number;
  /** Directory of the broker's log segments and metadata (`log.dirs`). */
  readonly logDir: string;
  readonly controllerPort: number;
  /** Inter-broker listener port. */
  readonly internalPort: number;
  /** One or more client listeners. */
  readonly listeners: readonly KafkaListener[];
  /** `message.max.bytes`. @default LAB_MESSAGE_MAX_BYTES (2 MiB), what the lab's regions are told */
  readonly messageMaxBytes?: number;
  /** The TLS material (see infra/lab/labSecrets.ts). */
  readonly tls: KafkaTlsFiles;
}

/** PEM files of the broker's TLS. */
export interface KafkaTlsFiles {
  /** The broker's private key (PKCS#8, unencrypted), certificate and chain, in one PEM file. */
  readonly keystoreFile: string;
  /** The CA certificate: what the broker trusts as a client of its own INTERNAL and CONTROLLER listeners. */
  readonly truststoreFile: string;
}

/**
 * `super.users`: the admin principal (SCRAM) and the broker's certificate (its principal on the mTLS
 * controller listener). Nobody else bypasses the ACLs.
 */
export const KAFKA_SUPER_USERS = `User:${KAFKA_ADMIN_PRINCIPAL};User:CN=${KAFKA_BROKER_CERT_CN}`;

/** Security protocol of each listener: the controller's is TLS with client certificates, every other SASL_SSL. */
export function listenerSecurityProtocol(listenerName: string): 'SSL' | 'SASL_SSL' {
  return listenerName === 'CONTROLLER' ? 'SSL' : 'SASL_SSL';
}

/** The authorizer of a secured broker (ACLs kept in the KRaft metadata log). */
export const KAFKA_AUTHORIZER = 'org.apache.kafka.metadata.authorizer.StandardAuthorizer';

/** `us` → `US`, `us-east-1` → `US_EAST_1`. */
export function listenerNameForRegion(region: string): string {
  return region.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/** `host:port` a client of `listener` bootstraps from (its advertised address). */
export function advertisedAddress(listener: KafkaListener): string {
  return `${listener.advertisedHost ?? '127.0.0.1'}:${listener.advertisedPort ?? listener.port}`;
}

/** The values filling the template's placeholders; validates the listeners. */
export function kafkaServerPropertiesValues(input: KafkaServerPropertiesInput): Record<string, string> {
  const { listeners } = input;
  if (listeners.length === 0) throw new Error('a Kafka broker needs at least one client listener');
  const names = new Set<string>();
  const ports = new Set<number>([input.controllerPort, input.internalPort]);
  if (ports.size !== 2) throw new Error('the controller and internal listeners need different ports');
  for (const l of listeners) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(l.name)) {
      throw new Error(
        `Kafka listener name ${JSON.stringify(l.name)}: use upper-case letters, digits and "_"`,
      );
    }
    if ((RESERVED_LISTENER_NAMES as readonly string[]).includes(l.name)) {
      throw new Error(`Kafka listener name ${l.name} is reserved for the broker itself: rename the region`);
    }
    if (names.has(l.name)) throw new Error(`Kafka listener ${l.name} is defined twice`);
    if (ports.has(l.port))
      throw new Error(`Kafka listener ${l.name}: port ${l.port} is already used by another listener`);
    names.add(l.name);
    ports.add(l.port);
  }

  const bind = (name: string, port: number) => `${name}://127.0.0.1:${port}`;
  return {
    nodeId: String(input.nodeId ?? 1),
    controllerPort: String(input.controllerPort),
    listeners: [
      bind('CONTROLLER', input.controllerPort),
      bind('INTERNAL', input.internalPort),
      ...listeners.map((l) => bind(l.name, l.port)),
    ].join(','),
    advertisedListeners: [
      bind('INTERNAL', input.internalPort),
      ...listeners.map((l) => `${l.name}://${advertisedAddress(l)}`),
    ].join(','),
    securityProtocolMap: ['CONTROLLER', 'INTERNAL', ...listeners.map((l) => l.name)]
      .map((n) => `${n}:${listenerSecurityProtocol(n)}`)
      .join(','),
    logDirs: escapePropertiesValue(input.logDir),
    messageMaxBytes: String(input.messageMaxBytes ?? LAB_MESSAGE_MAX_BYTES),
    sslKeystoreFile: escapePropertiesValue(input.tls.keystoreFile),
    sslTruststoreFile: escapePropertiesValue(input.tls.truststoreFile),
    authorizer: KAFKA_AUTHORIZER,
    superUsers: KAFKA_SUPER_USERS,
  };
}

/** The rendered server.properties text. */
export function renderKafkaServerProperties(
  input: KafkaServerPropertiesInput,
  template: string = readFileSync(KAFKA_SERVER_PROPERTIES_TEMPLATE, 'utf8'),
): string {
  return fillTemplate(template, kafkaServerPropertiesValues(input));
}

/**
 * Replace every `${name}` in `template`. Throws when the template uses a name not in `values` or when
 * a value is never used (template and code drifted apart).
 */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const missing = new Set<string>();
  const text = template.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) {
      missing.add(name);
      return '';
    }
    used.add(name);
    return value;
  });
  if (missing.size > 0) throw new Error(`template placeholders without a value: ${[...missing].join(', ')}`);
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) throw new Error(`values not used by the template: ${unused.join(', ')}`);
  return text;
}

/** Escape a value for a Java .properties file (backslashes; leading whitespace is kept literal). */
function escapePropertiesValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/^\s/, (c) => `\\${c}`);
}
