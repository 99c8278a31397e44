/**
 * An item's identity as one text, `<collection>/<key>`, built here and nowhere else: it is the Kafka
 * message key of the item's events (one item's events stay in order within a partition), the text
 * its advisory lock id is hashed from, the text its anti-entropy bucket is hashed from (PostgreSQL's
 * `hothot_bucket` in migration 0008 hashes the same text), and the id of an item in maps. Neither a
 * collection name nor a key contains "/" (itemRules.ts), so the text names one item. Pure.
 */

export function formatItemKey(item: { readonly collection: string; readonly key: string }): string {
  return `${item.collection}/${item.key}`;
}
