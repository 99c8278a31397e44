/**
 * The relay's split of a claim into produce requests: every chunk fits the broker's limit (or is one
 * message too large for any batch), chunks keep the order and lose nothing, and no chunk is cut
 * earlier than it had to be.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BATCH_OVERHEAD_BYTES,
  chunkBySize,
  fitsInOneBatch,
  maxValueBytes,
  recordBytes,
} from '../../shared/kafka/messageSize.js';
import { seeded } from './support/fc.js';

const runs = seeded(import.meta.url);

describe('chunkBySize', () => {
  it('when messages of many sizes are split, then the chunks keep order, fit the limit and are as full as allowed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5_000 }), { maxLength: 200 }),
        fc.integer({ min: 256, max: 20_000 }),
        fc.integer({ min: 1, max: 50 }),
        (sizes, limit, maxCount) => {
          const items = sizes.map((size, i) => ({ i, size }));
          const chunks = chunkBySize(items, (x) => x.size, limit, maxCount);
          expect(chunks.flat()).toEqual(items);
          for (const [n, chunk] of chunks.entries()) {
            expect(chunk.length).toBeGreaterThan(0);
            expect(chunk.length).toBeLessThanOrEqual(maxCount);
            const bytes = BATCH_OVERHEAD_BYTES + chunk.reduce((a, x) => a + x.size, 0);
            if (chunk.length > 1) expect(bytes).toBeLessThanOrEqual(limit);
            else if (bytes > limit) expect(chunk[0]!.size + BATCH_OVERHEAD_BYTES).toBeGreaterThan(limit);
            // Greedy: the next chunk's first item would not have fitted in this one.
            const next = chunks[n + 1]?.[0];
            if (next !== undefined && chunk.length < maxCount)
              expect(bytes + next.size).toBeGreaterThan(limit);
          }
        },
      ),
      runs.params(500),
    );
  });

  it('when there is nothing to send, then there is no chunk', () => {
    expect(chunkBySize([], () => 1, 1000)).toEqual([]);
  });
});

describe('fitsInOneBatch and maxValueBytes', () => {
  it('when a value is exactly the largest for its key, then it fits, and one byte more does not', () => {
    const limit = 2 * 1024 * 1024;
    const key = 'people/ada';
    const max = maxValueBytes(key.length, limit);
    expect(fitsInOneBatch(key.length, max, limit)).toBe(true);
    expect(fitsInOneBatch(key.length, max + 1, limit)).toBe(false);
    expect(BATCH_OVERHEAD_BYTES + recordBytes(key.length, max)).toBe(limit);
  });
});
