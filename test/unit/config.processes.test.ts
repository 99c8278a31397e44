/** The process settings of a region: API_PROCESSES and RELAY_WORKER. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../shared/config/loadConfig.js';

const BASE = {
  REGION: 'us',
  PEER_REGIONS: 'eu',
  DATABASE_URL: 'postgres://h/db',
  KAFKA_BROKERS: 'k:9092',
  SECURITY_MODE: 'insecure-dev',
};

describe('a region’s processes in the configuration', () => {
  it('when RELAY_WORKER is unset, then a relay worker is on; true/false and 1/0 are read; anything else is named', () => {
    expect(loadConfig(BASE)).toMatchObject({ apiProcesses: 1, relayWorker: true });
    for (const [value, want] of [
      ['true', true],
      [' FALSE ', false],
      ['1', true],
      ['0', false],
    ] as const)
      expect(loadConfig({ ...BASE, API_PROCESSES: '2', RELAY_WORKER: value })).toMatchObject({
        apiProcesses: 2,
        relayWorker: want,
      });
    expect(() => loadConfig({ ...BASE, RELAY_WORKER: 'maybe' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...BASE, RELAY_WORKER: 'maybe' })).toThrow(
      /RELAY_WORKER="maybe": expected true or false/,
    );
  });
});
