/**
 * Log files of lab components. Every component writes to a file (never to a pipe owned by the CLI),
 * so it survives the CLI that started it; the CLI follows the files to stream them.
 */
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { lastLines } from './processes.js';

/** Open `path` for appending (creating its directory); returns the file descriptor. */
export function openLogFile(path: string): number {
  mkdirSync(dirname(path), { recursive: true });
  return openSync(path, 'a');
}

/** Close a descriptor from {@link openLogFile}, ignoring errors. */
export function closeLogFile(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Current size of `path`, 0 when it does not exist. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The last `lines` non-empty lines of a log file (reads at most its last 64 KiB); '' if unreadable. */
export async function tailFile(path: string, lines = 40, fromOffset = 0): Promise<string> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return '';
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(fromOffset, size - 65_536, 0);
    const buffer = Buffer.alloc(size - start);
    await handle.read(buffer, 0, buffer.length, start);
    return lastLines(buffer.toString('utf8'), lines);
  } finally {
    await handle.close();
  }
}

/**
 * Follow a growing file from `fromOffset`, calling `onLine` for each complete line. Polls (works on
 * every file system, cheap at lab volumes). Returns a function that stops following after flushing
 * what was already written.
 */
export function followFile(
  path: string,
  onLine: (line: string) => void,
  options: { fromOffset?: number; intervalMs?: number } = {},
): () => Promise<void> {
  let offset = options.fromOffset ?? 0;
  let partial = '';
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();

  const poll = async (): Promise<void> => {
    let handle;
    try {
      handle = await open(path, 'r');
    } catch {
      return; // not created yet
    }
    try {
      const { size } = await handle.stat();
      if (size < offset) offset = 0; // truncated: start over
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(size - offset, 1 << 20));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const text = partial + buffer.subarray(0, bytesRead).toString('utf8');
        const parts = text.split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) onLine(line);
      }
    } finally {
      await handle.close();
    }
  };

  const timer = setInterval(() => {
    busy = busy.then(poll).catch(() => undefined);
  }, options.intervalMs ?? 200);

  return async () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    await busy;
    await poll().catch(() => undefined);
    if (partial !== '') onLine(partial);
  };
}
