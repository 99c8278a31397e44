/**
 * `hothot lab console [--port N] [--dir D]`: serve the lab console (consoleServer.ts) for the lab in
 * `--dir` until Ctrl-C.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { labStatePath, readLabState } from '../labState.js';
import { resolveLabRoot } from '../paths.js';
import { ConsoleServer } from './consoleServer.js';

/** Default port of the console (the lab's own ports start at 8081). */
export const DEFAULT_CONSOLE_PORT = 8070;

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('expected a port from 0 to 65535');
  return n;
}

/** Register `console` under the `lab` command. */
export function addConsoleCommand(lab: Command): void {
  lab
    .command('console')
    .description(
      'serve a live page of the running lab (topology, peer lag, outbox, conflicts, dead letters) with buttons to cut, heal, slow, kill and restart regions',
    )
    .addOption(
      new Option('--port <port>', 'port on 127.0.0.1 (0: any free one)')
        .argParser(parsePort)
        .default(DEFAULT_CONSOLE_PORT),
    )
    .addOption(
      new Option(
        '--dir <path>',
        'lab directory: lab.json, data under <dir>/lab (default: $HOTHOT_LAB_DIR or <repo>/.hothot)',
      ),
    )
    .option('--poll-ms <ms>', 'how often the lab is polled', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 200 || n > 60_000)
        throw new InvalidArgumentError('expected 200 to 60000');
      return n;
    })
    .addHelpText(
      'after',
      `
The console listens on 127.0.0.1 only and prints a URL with a token made at start: open that URL
(it sets a cookie and drops the token from the address bar); without it every request gets 401.
The console talks to the regions with the lab's admin API key (the file lab.json names); the page
never sees it. Buttons do what these commands do:
  Cut link / Blackhole   hothot lab partition <region> [--mode blackhole]
  Heal                   hothot lab heal <region>
  Set latency            hothot lab latency <region> <ms>
  Kill                   hothot lab kill <region>       (SIGKILL: a crash)
  Restart                hothot lab restart <region>    (starts it again, waits for /readyz)
Data: each region's /readyz, /v1/status, /metrics and /v1/conflicts, its dead_letter table,
Toxiproxy's link states, every second; charts keep the last 5 minutes.`,
    )
    .action(async (options: { port: number; dir?: string; pollMs?: number }) => {
      process.exitCode = await runConsole(options);
    });
}

async function runConsole(options: { port: number; dir?: string; pollMs?: number }): Promise<number> {
  const root = resolveLabRoot(options.dir);
  if (readLabState(root) === undefined) {
    err(`hothot lab console: no lab in ${root} (no ${labStatePath(root)}): start one with \`hothot lab up\``);
    return 1;
  }
  let server: ConsoleServer;
  try {
    server = await ConsoleServer.start({
      root,
      port: options.port,
      ...(options.pollMs !== undefined ? { pollIntervalMs: options.pollMs } : {}),
      onAction: (a) =>
        out(
          `  ${a.at.slice(11, 19)}  ${a.region.padEnd(6)} ${a.action.padEnd(8)} ${a.outcome.padEnd(7)} ${a.message}`,
        ),
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    err(
      `hothot lab console: ${message}${/EADDRINUSE/.test(message) ? ` (choose another with --port, or --port 0)` : ''}`,
    );
    return 1;
  }
  out(`hothot lab console for the lab in ${root}`);
  out(`  open ${server.loginUrl}`);
  out(
    '  (the token in it is the only credential: keep it to yourself; Ctrl-C stops the console, not the lab)',
  );
  out('  actions taken:');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await server.stop();
  out('console stopped');
  return 0;
}
