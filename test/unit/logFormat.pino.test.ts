import { describe, expect, it } from 'vitest';
import { formatLogLine } from '../../infra/lab/logFormat.js';

describe('formatLogLine', () => {
  it('when given a pino line, then it shows time, level, message and the remaining fields', () => {
    const line = JSON.stringify({
      level: 30,
      time: Date.UTC(2025, 0, 2, 3, 4, 5, 678),
      pid: 42,
      hostname: 'h',
      region: 'us',
      msg: 'applied peer event',
      key: 'demo/k1',
      count: 3,
    });
    expect(formatLogLine(line)).toBe('03:04:05.678 INFO  applied peer event region=us key=demo/k1 count=3');
  });

  it('when a field needs quoting or is an object, then it is rendered as JSON', () => {
    const line = JSON.stringify({ level: 40, time: 0, msg: 'm', note: 'two words', req: { method: 'GET' } });
    expect(formatLogLine(line)).toBe('00:00:00.000 WARN  m note="two words" req={"method":"GET"}');
  });

  it('when an error is logged, then its message is inline and its stack below', () => {
    const line = JSON.stringify({
      level: 50,
      time: 0,
      msg: 'failed',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' },
    });
    expect(formatLogLine(line)).toBe('00:00:00.000 ERROR failed err=boom\n    Error: boom\n        at x');
  });

  it('when the line is not a JSON object, then it is returned unchanged', () => {
    expect(formatLogLine('plain text')).toBe('plain text');
    expect(formatLogLine('{not json')).toBe('{not json');
    expect(formatLogLine('[1,2]')).toBe('[1,2]');
  });

  it('when colour is asked for, then the level of an error is red', () => {
    expect(formatLogLine(JSON.stringify({ level: 50, time: 0, msg: 'x' }), { color: true })).toContain(
      '\x1b[31mERROR',
    );
  });
});
