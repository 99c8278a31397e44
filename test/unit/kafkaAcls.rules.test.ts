/**
 * The ACLs a region's principal gets (infra/lab/kafkaAcls.ts): write only its own change topic, read
 * its peers', use only its own consumer group; every pattern LITERAL, nothing on the cluster.
 */
import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { meshAclRules, regionAclRules, toAclEntry, type AclRule } from '../../infra/lab/kafkaAcls.js';

const has = (rules: readonly AclRule[], resource: string, name: string, operation: string) =>
  rules.some((r) => r.resource === resource && r.name === name && r.operation === operation);

describe('regionAclRules', () => {
  const rules = regionAclRules('p', 'eu', ['us', 'ap']);

  it('when eu is given peers us and ap, then every rule is for User:eu', () => {
    expect(new Set(rules.map((r) => r.principal))).toEqual(new Set(['User:eu']));
  });

  it('when eu publishes, then it may write, describe, create and read the configuration of its own topic only', () => {
    for (const op of ['WRITE', 'DESCRIBE', 'CREATE', 'DESCRIBE_CONFIGS'])
      expect(has(rules, 'TOPIC', 'p.changes.eu', op), op).toBe(true);
    const writes = rules
      .filter((r) => r.operation === 'WRITE' || r.operation === 'CREATE')
      .map((r) => r.name);
    expect(new Set(writes)).toEqual(new Set(['p.changes.eu']));
  });

  it("when eu applies, then it may read and describe each peer's topic, and nothing more on them", () => {
    for (const peer of ['us', 'ap']) {
      const onPeer = rules.filter((r) => r.name === `p.changes.${peer}`).map((r) => r.operation);
      expect(onPeer.sort()).toEqual(['DESCRIBE', 'READ']);
    }
  });

  it('when eu consumes, then only its own group is usable', () => {
    const groups = rules.filter((r) => r.resource === 'GROUP');
    expect(new Set(groups.map((g) => g.name))).toEqual(new Set(['p.apply.eu']));
    expect(groups.map((g) => g.operation).sort()).toEqual(['DESCRIBE', 'READ']);
  });

  it('when converted for kafkajs, then each rule is a LITERAL ALLOW from any host', () => {
    for (const entry of rules.map(toAclEntry)) {
      expect(entry.resourcePatternType).toBe(kafkajs.ResourcePatternTypes.LITERAL);
      expect(entry.permissionType).toBe(kafkajs.AclPermissionTypes.ALLOW);
      expect(entry.host).toBe('*');
    }
    expect(toAclEntry(rules[0]!).resourceType).toBe(kafkajs.AclResourceTypes.TOPIC);
    expect(toAclEntry({ ...rules[0]!, operation: 'DESCRIBE_CONFIGS' }).operation).toBe(
      kafkajs.AclOperationTypes.DESCRIBE_CONFIGS,
    );
  });
});

describe('meshAclRules', () => {
  it('when regions replicate to each other, then no region may write another’s topic, even one whose name starts with its own', () => {
    const rules = meshAclRules('p', ['us', 'us-east', 'eu']);
    for (const region of ['us', 'us-east', 'eu']) {
      const written = rules
        .filter((r) => r.principal === `User:${region}` && r.operation === 'WRITE')
        .map((r) => r.name);
      expect(written).toEqual([`p.changes.${region}`]);
    }
  });
});
