import { describe, expect, it } from 'vitest';
import {
  KAFKA_AUTHORIZER,
  KAFKA_SUPER_USERS,
  advertisedAddress,
  fillTemplate,
  listenerNameForRegion,
  renderKafkaServerProperties,
} from '../../infra/lab/kafkaServerProperties.js';
import { LAB_MESSAGE_MAX_BYTES } from '../../shared/kafka/messageSize.js';

/** The rendered file as key → value (last one wins, as for Java). */
function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    props.set(trimmed.slice(0, eq), trimmed.slice(eq + 1));
  }
  return props;
}

const BASE = {
  logDir: '/data/kafka',
  controllerPort: 9093,
  internalPort: 9094,
  tls: { keystoreFile: '/s/kafka-broker.pem', truststoreFile: '/s/ca.crt' },
} as const;

describe('renderKafkaServerProperties', () => {
  it('when rendered, then the broker takes record batches of exactly the size the regions are told (KAFKA_MESSAGE_MAX_BYTES)', () => {
    const listeners = [{ name: 'US', port: 9101 }];
    expect(
      parseProperties(renderKafkaServerProperties({ ...BASE, listeners })).get('message.max.bytes'),
    ).toBe(String(LAB_MESSAGE_MAX_BYTES));
    expect(
      parseProperties(renderKafkaServerProperties({ ...BASE, listeners, messageMaxBytes: 5000 })).get(
        'message.max.bytes',
      ),
    ).toBe('5000');
  });

  it('when given a listener per region, then each region has its own named SASL_SSL listener and advertised address', () => {
    const props = parseProperties(
      renderKafkaServerProperties({
        ...BASE,
        listeners: [
          { name: 'US', port: 9101 },
          { name: 'EU', port: 9102 },
        ],
      }),
    );
    expect(props.get('listeners')).toBe(
      'CONTROLLER://127.0.0.1:9093,INTERNAL://127.0.0.1:9094,US://127.0.0.1:9101,EU://127.0.0.1:9102',
    );
    expect(props.get('advertised.listeners')).toBe(
      'INTERNAL://127.0.0.1:9094,US://127.0.0.1:9101,EU://127.0.0.1:9102',
    );
    expect(props.get('listener.security.protocol.map')).toBe(
      'CONTROLLER:SSL,INTERNAL:SASL_SSL,US:SASL_SSL,EU:SASL_SSL',
    );
    expect(props.get('inter.broker.listener.name')).toBe('INTERNAL');
    expect(props.get('controller.listener.names')).toBe('CONTROLLER');
  });

  it('when a listener sits behind a proxy, then only its advertised address changes, not where the broker binds', () => {
    const props = parseProperties(
      renderKafkaServerProperties({
        ...BASE,
        listeners: [
          { name: 'US', port: 9101, advertisedHost: '127.0.0.1', advertisedPort: 19101 },
          { name: 'EU', port: 9102, advertisedPort: 19102 },
        ],
      }),
    );
    expect(props.get('listeners')).toContain('US://127.0.0.1:9101');
    expect(props.get('advertised.listeners')).toBe(
      'INTERNAL://127.0.0.1:9094,US://127.0.0.1:19101,EU://127.0.0.1:19102',
    );
  });

  it('when rendered, then the single-node KRaft essentials are set', () => {
    const props = parseProperties(
      renderKafkaServerProperties({ ...BASE, listeners: [{ name: 'CLIENT', port: 9101 }] }),
    );
    expect(props.get('process.roles')).toBe('broker,controller');
    expect(props.get('node.id')).toBe('1');
    expect(props.get('controller.quorum.voters')).toBe('1@127.0.0.1:9093');
    expect(props.get('log.dirs')).toBe('/data/kafka');
    for (const key of [
      'offsets.topic.replication.factor',
      'transaction.state.log.replication.factor',
      'transaction.state.log.min.isr',
    ]) {
      expect(props.get(key), key).toBe('1');
    }
    expect(props.get('group.initial.rebalance.delay.ms')).toBe('0');
    expect(props.get('num.partitions')).toBe('3');
    expect([...props.values()].join('\n')).not.toContain('${');
  });

  it('when listeners clash in name, port or with the broker’s own listeners, then it refuses', () => {
    const render = (listeners: { name: string; port: number }[]) => () =>
      renderKafkaServerProperties({ ...BASE, listeners });
    expect(render([])).toThrow(/at least one/);
    expect(
      render([
        { name: 'US', port: 9101 },
        { name: 'US', port: 9102 },
      ]),
    ).toThrow(/twice/);
    expect(
      render([
        { name: 'US', port: 9101 },
        { name: 'EU', port: 9101 },
      ]),
    ).toThrow(/already used/);
    expect(render([{ name: 'US', port: 9093 }])).toThrow(/already used/);
    expect(render([{ name: 'INTERNAL', port: 9101 }])).toThrow(/reserved/);
    expect(render([{ name: 'us', port: 9101 }])).toThrow(/upper-case/);
  });
});

describe('renderKafkaServerProperties, security (there is no PLAINTEXT mode)', () => {
  const props = parseProperties(
    renderKafkaServerProperties({
      ...BASE,
      listeners: [
        { name: 'US', port: 9101 },
        { name: 'EU', port: 9102 },
      ],
    }),
  );

  it('when rendered, then client and inter-broker listeners are SASL_SSL and the controller is TLS with client certificates', () => {
    expect(props.get('listener.security.protocol.map')).toBe(
      'CONTROLLER:SSL,INTERNAL:SASL_SSL,US:SASL_SSL,EU:SASL_SSL',
    );
    expect(props.get('listener.name.controller.ssl.client.auth')).toBe('required');
    expect(props.get('sasl.enabled.mechanisms')).toBe('SCRAM-SHA-512');
    expect(props.get('sasl.mechanism.inter.broker.protocol')).toBe('SCRAM-SHA-512');
  });

  it('when rendered, then the key store and trust store are the PEM files given', () => {
    expect(props.get('ssl.keystore.type')).toBe('PEM');
    expect(props.get('ssl.keystore.location')).toBe('/s/kafka-broker.pem');
    expect(props.get('ssl.truststore.type')).toBe('PEM');
    expect(props.get('ssl.truststore.location')).toBe('/s/ca.crt');
  });

  it('when rendered, then ACLs are enforced by the StandardAuthorizer, with admin and the broker as the only super users', () => {
    expect(props.get('authorizer.class.name')).toBe(KAFKA_AUTHORIZER);
    expect(props.get('authorizer.class.name')).toBe(
      'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
    );
    expect(props.get('allow.everyone.if.no.acl.found')).toBe('false');
    expect(props.get('super.users')).toBe(KAFKA_SUPER_USERS);
    expect(props.get('super.users')?.split(';')).toEqual(['User:admin', 'User:CN=hothot-kafka-broker']);
  });

  it('when rendered, then no password is in the file (the broker login is in its JAAS file)', () => {
    expect([...props.keys()].filter((k) => /password|jaas/.test(k))).toEqual([]);
  });
});

describe('listenerNameForRegion', () => {
  it('when a region id has dashes, then its listener name is upper-case with underscores', () => {
    expect(listenerNameForRegion('us')).toBe('US');
    expect(listenerNameForRegion('us-east-1')).toBe('US_EAST_1');
  });
});

describe('advertisedAddress', () => {
  it('when nothing is overridden, then clients are told the bound port on 127.0.0.1', () => {
    expect(advertisedAddress({ name: 'US', port: 9101 })).toBe('127.0.0.1:9101');
    expect(advertisedAddress({ name: 'US', port: 9101, advertisedHost: 'proxy', advertisedPort: 1 })).toBe(
      'proxy:1',
    );
  });
});

describe('fillTemplate', () => {
  it('when every placeholder has a value, then all are replaced', () => {
    expect(fillTemplate('a=${x}\nb=${y}${x}', { x: '1', y: '2' })).toBe('a=1\nb=21');
  });

  it('when template and values drift apart, then it names the placeholders', () => {
    expect(() => fillTemplate('a=${x}', {})).toThrow(/without a value: x/);
    expect(() => fillTemplate('a=1', { x: '1' })).toThrow(/not used by the template: x/);
  });
});
