/** Topic and consumer-group names. Each origin region publishes to its own topic. */
import { formatItemKey } from '../domain/itemKey.js';

export function changeTopic(prefix: string, region: string): string {
  return `${prefix}.changes.${region}`;
}

export function applyGroupId(prefix: string, region: string): string {
  return `${prefix}.apply.${region}`;
}

/** The origin region of a change topic, or undefined if `topic` is not one under `prefix`. */
export function topicOrigin(prefix: string, topic: string): string | undefined {
  const head = `${prefix}.changes.`;
  return topic.startsWith(head) ? topic.slice(head.length) : undefined;
}

/** Message key of an item's change events: one item's events stay in order within a partition. */
export function itemMessageKey(collection: string, key: string): string {
  return formatItemKey({ collection, key });
}

export function heartbeatMessageKey(region: string): string {
  return `_heartbeat/${region}`;
}
