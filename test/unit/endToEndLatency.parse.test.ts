/**
 * Reading the results of Kafka's EndToEndLatency tool (bench/load/endToEndLatency.ts), the Java row
 * of the bench's transport floor: its output as Kafka 3.9 prints it, in either decimal separator,
 * and a run that ended without results.
 */
import { describe, expect, it } from 'vitest';
import { parseEndToEndLatency } from '../../bench/load/endToEndLatency.js';

describe("Kafka's EndToEndLatency output", () => {
  it('reads the average and the three percentiles after the progress lines', () => {
    const out = [
      '0\t12.31',
      '1000\t2.04',
      'Avg latency: 2.6121 ms',
      'Percentiles: 50th = 2, 99th = 15, 99.9th = 42',
      '',
    ].join('\n');
    expect(parseEndToEndLatency(out)).toEqual({ avg: 2.6121, p50: 2, p99: 15, p999: 42 });
  });

  it('reads an average printed with a decimal comma and lines ending in CRLF', () => {
    const out = 'Avg latency: 3,1400 ms\r\nPercentiles: 50th = 1, 99th = 11, 99.9th = 36\r\n';
    expect(parseEndToEndLatency(out)).toEqual({ avg: 3.14, p50: 1, p99: 11, p999: 36 });
  });

  it('when the results are missing, then it says so with the last output', () => {
    expect(() => parseEndToEndLatency('0\t12.31\nsomething went wrong\n')).toThrow(
      /without its results[\s\S]*something went wrong/,
    );
  });
});
