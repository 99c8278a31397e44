import { describe, expect, it } from 'vitest';
import { labPortLayout, validateRegions } from '../../infra/lab/lab.js';

describe('labPortLayout', () => {
  it('when given a base port, then regions, PostgreSQL and Kafka get disjoint, predictable ports', () => {
    const ports = labPortLayout(['us', 'eu'], 9000);
    expect(ports).toEqual({
      region: { us: 9000, eu: 9001 },
      postgres: { us: 9100, eu: 9101 },
      kafkaController: 9200,
      kafkaInternal: 9201,
      kafkaListener: { us: 9210, eu: 9211 },
      toxiproxy: 9202,
      kafkaProxy: { us: 9220, eu: 9221 },
      frontDoor: 9099,
    });
  });

  it('when there are ten regions, then no two components share a port', () => {
    const regions = Array.from({ length: 10 }, (_, i) => `r${i}`);
    const ports = labPortLayout(regions, 9000);
    const all = [
      ...Object.values(ports.region),
      ...Object.values(ports.postgres),
      ports.kafkaController,
      ports.kafkaInternal,
      ...Object.values(ports.kafkaListener),
      ports.toxiproxy,
      ...Object.values(ports.kafkaProxy),
      ports.frontDoor,
    ];
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('validateRegions', () => {
  it('when regions are well-formed, then they are returned trimmed', () => {
    expect(validateRegions([' us', 'eu ', 'ap-south'])).toEqual(['us', 'eu', 'ap-south']);
  });

  it('when a region is malformed, duplicated or takes a reserved listener name, then it refuses', () => {
    expect(() => validateRegions([])).toThrow(/no regions/);
    expect(() => validateRegions(['US'])).toThrow(/lower-case/);
    expect(() => validateRegions(['us', 'us'])).toThrow(/distinct/);
    expect(() => validateRegions(['us-1', 'us_1'])).toThrow();
    expect(() => validateRegions(['internal'])).toThrow(/reserved/);
  });
});
