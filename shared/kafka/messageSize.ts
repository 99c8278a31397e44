/**
 * How big a Kafka produce may be, and how to split messages so that no request carries a record
 * batch the broker refuses. Pure.
 *
 * The broker refuses a record batch larger than its `message.max.bytes` (a topic may lower it with
 * `max.message.bytes`) whole, and kafkajs puts every message of one send() for one partition into a
 * single batch without splitting it. Uncompressed, a batch is a 61-byte header plus its records; a
 * record is its key and value plus at most ~35 bytes of varints and attributes. The constants below
 * round both up, so a split computed here is always accepted by a broker with that limit.
 */
import { SIGNATURE_HEADERS_MAX_BYTES } from '../security/eventAuth.js';

/** Kafka's own default `message.max.bytes` (1 MiB + 12): what a broker accepts unless told otherwise. */
export const KAFKA_DEFAULT_MESSAGE_MAX_BYTES = 1_048_588;

/**
 * The `message.max.bytes` that the native lab, the tests and the compose file give their broker,
 * and the `KAFKA_MESSAGE_MAX_BYTES` they give their regions: 2 MiB, so that every value the API's
 * default body limit (1 MiB) admits fits in one event with its metadata, for every policy but the
 * largest `fields` items (whose event carries the value twice: as the value and in the per-field
 * state).
 */
export const LAB_MESSAGE_MAX_BYTES = 2 * 1024 * 1024;

/** Bytes a record batch adds around its records (61 in the v2 format), rounded up. */
export const BATCH_OVERHEAD_BYTES = 128;
/**
 * Bytes one record adds around its key and value: length, attributes and delta varints (64, rounded
 * up), and the event-signature headers (SIGNATURE_HEADERS_MAX_BYTES,
 * counted whether or not this region signs, so every region admits the same largest event).
 */
export const RECORD_OVERHEAD_BYTES = 64 + SIGNATURE_HEADERS_MAX_BYTES;

/** Bytes one message takes in a record batch. */
export function recordBytes(keyBytes: number, valueBytes: number): number {
  return keyBytes + valueBytes + RECORD_OVERHEAD_BYTES;
}

/** True when one message with these sizes fits in a batch of at most `maxMessageBytes`. */
export function fitsInOneBatch(keyBytes: number, valueBytes: number, maxMessageBytes: number): boolean {
  return BATCH_OVERHEAD_BYTES + recordBytes(keyBytes, valueBytes) <= maxMessageBytes;
}

/** The largest event value (bytes) that fits in one batch with a key of `keyBytes`. */
export function maxValueBytes(keyBytes: number, maxMessageBytes: number): number {
  return maxMessageBytes - BATCH_OVERHEAD_BYTES - RECORD_OVERHEAD_BYTES - keyBytes;
}

/**
 * Split `items` (in order) into consecutive chunks of at most `maxCount` items whose records add up
 * to at most `maxMessageBytes` with one batch header: published one chunk per send(), no partition's
 * batch can exceed the limit, whatever the partitioner does. An item too large for any batch comes
 * alone in a chunk of its own (the caller decides what to do with it; see {@link fitsInOneBatch}).
 */
export function chunkBySize<T>(
  items: readonly T[],
  sizeOf: (item: T) => number,
  maxMessageBytes: number,
  maxCount = Number.POSITIVE_INFINITY,
): T[][] {
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = BATCH_OVERHEAD_BYTES;
  for (const item of items) {
    const size = sizeOf(item);
    if (chunk.length > 0 && (bytes + size > maxMessageBytes || chunk.length >= maxCount)) {
      chunks.push(chunk);
      chunk = [];
      bytes = BATCH_OVERHEAD_BYTES;
    }
    chunk.push(item);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}
