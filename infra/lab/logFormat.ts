/**
 * Human-readable rendering of a region's pino JSON log lines for the lab's foreground mode.
 * Pure: no I/O, no colours unless asked.
 */

const PINO_LEVELS: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** Fields shown elsewhere in the line, or noise in a lab terminal. */
const OMITTED_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

const ANSI = { dim: '\x1b[2m', red: '\x1b[31m', yellow: '\x1b[33m', reset: '\x1b[0m' } as const;

export interface FormatLogLineOptions {
  /** Colour the level (for a terminal). @default false */
  color?: boolean;
  /** Longest rendering of one extra field's value before it is cut. @default 200 */
  maxFieldChars?: number;
}

/**
 * `12:34:56.789 INFO  applied peer event eventId=… key=…` for a pino JSON line; any other line
 * (a stack trace, a non-JSON message) is returned unchanged.
 */
export function formatLogLine(line: string, options: FormatLogLineOptions = {}): string {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return line;
  let entry: unknown;
  try {
    entry = JSON.parse(trimmed);
  } catch {
    return line;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return line;
  const record = entry as Record<string, unknown>;

  const time = formatTime(record.time);
  const level = formatLevel(record.level);
  const msg = typeof record.msg === 'string' ? record.msg : '';
  const maxChars = options.maxFieldChars ?? 200;
  let stack = '';
  const fields = Object.entries(record)
    .filter(([k]) => !OMITTED_FIELDS.has(k))
    .map(([k, v]) => {
      // pino's error serializer: show the message inline and the stack below the line.
      if (isSerializedError(v)) {
        if (typeof v.stack === 'string') stack = `\n${v.stack.replace(/^/gm, '    ')}`;
        return `${k}=${renderValue(v.message)}`;
      }
      return `${k}=${truncate(renderValue(v), maxChars)}`;
    });

  let levelText = level.padEnd(5);
  if (options.color === true) {
    const colour = level === 'ERROR' || level === 'FATAL' ? ANSI.red : level === 'WARN' ? ANSI.yellow : '';
    if (colour !== '') levelText = `${colour}${levelText}${ANSI.reset}`;
  }
  const rest = fields.length > 0 ? ` ${fields.join(' ')}` : '';
  const restText = options.color === true && rest !== '' ? `${ANSI.dim}${rest}${ANSI.reset}` : rest;
  return `${time} ${levelText} ${msg}${restText}`.trimEnd() + stack;
}

function isSerializedError(value: unknown): value is { message: string; stack?: unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { message?: unknown }).message === 'string' &&
    'stack' in value
  );
}

function formatTime(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) return '--:--:--.---';
  return date.toISOString().slice(11, 23);
}

function formatLevel(level: unknown): string {
  if (typeof level === 'number') return PINO_LEVELS[level] ?? `L${level}`;
  if (typeof level === 'string') return level.toUpperCase();
  return '?';
}

function renderValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value === null || typeof value !== 'object') return String(value);
  return JSON.stringify(value);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
