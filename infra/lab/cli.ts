/**
 * `hothot` command line (run through bin/hothot.js): the native lab.
 *
 *   hothot lab up [--regions us,eu] [--detach] [--base-port N] [--dir DIR] [--fresh]
 *                 [--balance roundrobin|random|weighted] [--weights us=2,eu=1]
 *   hothot lab down | status | fetch
 *   hothot lab partition <region> [--mode reset|blackhole] | heal <region> | latency <region> <ms>
 *   hothot lab kill <region> | restart <region> | console [--port N] | availability [--quick]
 */
import { addKeysCommands } from '../ops/keysCommands.js';
import { addOutboxCommands } from '../ops/outboxCommands.js';
import { addRepairCommands } from '../ops/repairCommands.js';
import { addAvailabilityCommand } from './availability/availabilityCommand.js';
import { addConsoleCommand } from './console/consoleCommand.js';
import { addMembershipCommands } from './membership/membershipCommands.js';
import { COMPOSE_SECRETS_DIR, writeComposeSecrets } from './composeSecrets.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { isAbsolute, join, relative } from 'node:path';
import { BALANCE_MODES, parseWeights, resolveBalancing, type Balance } from './frontDoor.js';
import { countJars, ensureKafkaJars, hasKafkaJars, kafkaLibsDir, kafkaVersion } from './kafkaJars.js';
import {
  DEFAULT_BASE_PORT,
  DEFAULT_REGIONS,
  LAB_REGION_PROCESSES,
  Lab,
  LabAlreadyRunningError,
  killLabRegion,
  labDown,
  labStatus,
  restartLabRegion,
  validateRegions,
  type LabProgress,
} from './lab.js';
import { labStatePath, livePids, readLabState } from './labState.js';
import { followFile } from './logFiles.js';
import { formatLogLine } from './logFormat.js';
import { resolveLabRoot } from './paths.js';
import { PREREQUISITES_SCRIPT, checkPrerequisites, type Prerequisite } from './prerequisites.js';
import { isPidAlive } from './processes.js';
import { BrokerLinkProxies, PARTITION_MODES, type PartitionMode } from './brokerLinkProxies.js';
import { TOXIPROXY_VERSION, ensureToxiproxy, hasToxiproxy, toxiproxyBinary } from './toxiproxyBinary.js';

const COLOR = process.stdout.isTTY && process.env.NO_COLOR === undefined;
const REGION_COLORS = ['\x1b[36m', '\x1b[35m', '\x1b[33m', '\x1b[32m', '\x1b[34m', '\x1b[91m'];
const RESET = '\x1b[0m';
const YELLOW = '\x1b[33m';

const out = (line = '') => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A plain warning line (yellow on a terminal) and, below it, the command that fixes it. */
function warn(message: string, fix?: string): void {
  out(`  ${COLOR ? `${YELLOW}WARNING${RESET}` : 'WARNING'}  ${message}`);
  if (fix !== undefined) out(`           to fix it: ${fix}`);
}

const STOP_OUTCOME: Readonly<Record<string, string>> = {
  stopped: 'stopped',
  terminated: 'stopped',
  killed: 'killed (did not stop within its grace period)',
  'not-running': 'was not running',
};

function printProgress(event: LabProgress): void {
  switch (event.type) {
    case 'info':
      out(`  ${event.message}`);
      break;
    case 'warning':
      warn(event.message, event.fix);
      break;
    case 'step-start':
      if (event.action === 'start') out(`  starting ${event.component} (${event.detail}) …`);
      break;
    case 'step-done':
      if (event.action === 'start') out(`  ok       ${event.component} (${seconds(event.ms)})`);
      else
        out(
          `  ${event.component.padEnd(16)} ${STOP_OUTCOME[event.detail] ?? event.detail} (${seconds(event.ms)})`,
        );
      break;
    case 'step-failed':
      if (event.action === 'start') out(`  FAILED   ${event.component} after ${seconds(event.ms)}`);
      else out(`  ${event.component.padEnd(16)} FAILED to stop: ${errorMessage(event.error)}`);
      break;
  }
}

function parseRegions(value: string): string[] {
  try {
    return validateRegions(value.split(','));
  } catch (e) {
    throw new InvalidArgumentError(errorMessage(e));
  }
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1024 || n > 65_000)
    throw new InvalidArgumentError('expected a port from 1024 to 65000');
  return n;
}

const dirOption = () =>
  new Option(
    '--dir <path>',
    'lab directory: lab.json, data under <dir>/lab (default: $HOTHOT_LAB_DIR or <repo>/.hothot)',
  );

interface UpOptions {
  regions: string[];
  detach?: boolean;
  basePort?: number;
  dir?: string;
  fresh?: boolean;
  logLevel?: string;
  weights?: Record<string, number>;
  balance?: Balance;
  frontDoor?: boolean;
  processes?: number;
}

function parseProcesses(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new InvalidArgumentError('expected 1 to 16');
  return n;
}

/**
 * Run infra/prerequisites.sh for what this run needs (Maven and Go only while the cache lacks the Kafka
 * jars or Toxiproxy; HAProxy only with a front door, and optional). False when something required is
 * missing: the script has printed what to run.
 */
async function prerequisites(command: string, need: Prerequisite[], print: (line: string) => void) {
  if (!hasKafkaJars()) need.push('java', 'maven');
  if (!hasToxiproxy()) need.push('go');
  try {
    const outcome = await checkPrerequisites({
      need: [...new Set(need)],
      optional: ['haproxy'],
      onLine: print,
    });
    if (outcome !== 'missing') return true;
    err(`hothot lab ${command}: missing prerequisites (above): install them, then run it again`);
    return false;
  } catch (e) {
    // Not being able to check is no reason not to try: the steps fail with their own messages.
    print(`could not check the prerequisites (${errorMessage(e)}); going on`);
    return true;
  }
}

async function up(options: UpOptions): Promise<number> {
  const root = resolveLabRoot(options.dir);
  const existing = readLabState(root);
  const live = existing !== undefined ? livePids(existing) : [];
  if (live.length > 0) {
    err(`hothot lab up: ${new LabAlreadyRunningError(root, live).message}`);
    return 1;
  }
  let balancing: ReturnType<typeof resolveBalancing>;
  try {
    balancing = resolveBalancing(options.balance, options.weights);
  } catch (e) {
    err(`hothot lab up: ${errorMessage(e)}`);
    return 1;
  }
  const started = Date.now();
  out(`hothot lab: starting regions ${options.regions.join(', ')} in ${root}`);
  const need: Prerequisite[] = ['node', 'java', 'postgres', 'openssl'];
  if (options.frontDoor !== false) need.push('haproxy');
  if (!(await prerequisites('up', need, (line) => out(`  ${line}`)))) return 1;
  let lab: Lab;
  try {
    lab = await Lab.up({
      root,
      regions: options.regions,
      detached: options.detach === true,
      ...(options.basePort !== undefined ? { basePort: options.basePort } : {}),
      ...(options.fresh === true ? { fresh: true } : {}),
      ...(options.logLevel !== undefined ? { logLevel: options.logLevel } : {}),
      ...(options.processes !== undefined ? { processes: options.processes } : {}),
      weights: balancing.weights,
      balance: balancing.balance,
      // Without HAProxy the regions still start, without the front door (lab.json: noFrontDoor).
      frontDoor: options.frontDoor === false ? false : 'if-installed',
      onProgress: printProgress,
    });
  } catch (e) {
    if (e instanceof LabAlreadyRunningError) {
      err(`hothot lab up: ${e.message}`);
      return 1;
    }
    err(`hothot lab up failed: ${errorMessage(e)}`);
    return 1;
  }

  out();
  out(`lab ready in ${seconds(Date.now() - started)}`);
  printLabSummary(lab);
  if (options.detach === true) {
    out();
    out(
      `running in the background; stop it with: hothot lab down${options.dir !== undefined ? ` --dir ${options.dir}` : ''}`,
    );
    return 0;
  }
  return runForeground(lab);
}

function printLabSummary(lab: Lab): void {
  const { state } = lab;
  if (state.frontDoor !== undefined) {
    const weights = Object.entries(state.frontDoor.weights)
      .map(([r, w]) => `${r}=${w}`)
      .join(',');
    out(
      `  front door      ${state.frontDoor.url}   (HAProxy pid ${state.frontDoor.pid}, balance ${state.frontDoor.balance ?? 'roundrobin'}, weights ${weights})`,
    );
  } else if (state.noFrontDoor !== undefined) {
    out(`  front door      none: ${state.noFrontDoor.reason}`);
  }
  for (const name of state.regionNames) {
    const r = state.regions[name]!;
    out(`  region ${name.padEnd(8)} ${r.url}   (pid ${r.pid}, Kafka ${r.kafkaBrokers.join(',')})`);
  }
  for (const name of state.regionNames) {
    const pg = state.postgres[name]!;
    out(`  postgres ${name.padEnd(6)} ${pg.databaseUrl}   (pid ${pg.pid})`);
  }
  if (state.kafka !== undefined) {
    const listeners = state.kafka.listeners.map((l) => `${l.name}=127.0.0.1:${l.port}`).join(' ');
    out(`  kafka           ${listeners}   (pid ${state.kafka.pid})`);
  }
  if (state.toxiproxy !== undefined) {
    const proxies = Object.entries(state.toxiproxy.proxies)
      .map(([r, p]) => `${r}=${p.listen}→${p.upstream}`)
      .join(' ');
    out(`  toxiproxy       ${state.toxiproxy.url}   ${proxies}   (pid ${state.toxiproxy.pid})`);
  }
  out(`  logs            ${join(lab.dir, 'logs')}`);
  if (state.secretsDir !== undefined)
    out(`  credentials     ${state.secretsDir}   (0700: Kafka CA and SCRAM passwords, PostgreSQL passwords)`);
  out(`  state           ${labStatePath(state.root)}`);
  // Printed here, once, for whoever started the lab; lab.json and `lab status` name only the file.
  const keyFile = relative(process.cwd(), lab.adminKey.file);
  out(
    `  admin key       ${lab.adminKey.token}   (also in ${keyFile.startsWith('..') || isAbsolute(keyFile) ? lab.adminKey.file : keyFile}; send it as Authorization: Bearer …)`,
  );
  if (state.noFrontDoor?.fix !== undefined) {
    out();
    warn(
      `running WITHOUT the front door: ${state.noFrontDoor.reason}. Use the region URLs above`,
      `${state.noFrontDoor.fix}, then restart the lab`,
    );
  }
}

async function runForeground(lab: Lab): Promise<number> {
  out();
  out('streaming region logs; Ctrl-C stops the lab');
  const width = Math.max(...lab.state.regionNames.map((r) => r.length));
  const followers = lab.state.regionNames.map((name, i) => {
    const region = lab.region(name);
    const label = name.padEnd(width);
    const prefix = COLOR ? `${REGION_COLORS[i % REGION_COLORS.length]}${label}${RESET} | ` : `${label} | `;
    void region.waitForExit().then((exit) => {
      if (!stopping) {
        const how =
          exit.signal !== null ? `killed by ${exit.signal}` : `exited with code ${String(exit.code)}`;
        out(`${prefix}region process ${how} (log: ${region.logFile})`);
      }
    });
    return followFile(region.logFile, (line) => out(prefix + formatLogLine(line, { color: COLOR })), {
      fromOffset: region.logStartOffset,
    });
  });

  let stopping = false;
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        err(`\n${signal} again: leaving the rest running; clean up with \`hothot lab down\``);
        process.exit(130);
      }
      stopping = true;
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
  });

  out('\nstopping the lab…');
  await Promise.all(followers.map((stop) => stop()));
  const started = Date.now();
  try {
    await lab.down();
  } catch (e) {
    err(`hothot lab: stopping failed: ${errorMessage(e)}; run \`hothot lab down\` to finish`);
    return 1;
  }
  out(`lab stopped (${seconds(Date.now() - started)})`);
  return 0;
}

async function down(options: { dir?: string }): Promise<number> {
  const root = resolveLabRoot(options.dir);
  const result = await labDown(root, { onProgress: printProgress });
  if (!result.hadState) {
    out(
      `no lab running in ${root} (no ${labStatePath(root)})${result.actions.length > 0 ? '; stopped strays above' : ''}`,
    );
    return 0;
  }
  out(`lab in ${root} is down; removed ${labStatePath(root)}`);
  return 0;
}

async function status(options: { dir?: string; json?: boolean }): Promise<number> {
  const root = resolveLabRoot(options.dir);
  const result = await labStatus(root);
  if (result === undefined) {
    if (options.json === true) out(JSON.stringify({ running: false, root }));
    else out(`no lab in ${root} (no ${labStatePath(root)})`);
    return 1;
  }
  const allHealthy = result.components.every((c) => c.healthy);
  // Broker links as Toxiproxy has them: whether a region is cut (a cut link is not unhealthy).
  const links =
    result.state.toxiproxy !== undefined
      ? await new BrokerLinkProxies(result.state.toxiproxy.url).states().catch(() => undefined)
      : undefined;
  if (options.json === true) {
    out(
      JSON.stringify(
        {
          running: true,
          healthy: allHealthy,
          root,
          state: result.state,
          components: result.components,
          links,
        },
        null,
        2,
      ),
    );
    return allHealthy ? 0 : 1;
  }
  const { state } = result;
  const owner =
    state.detached || state.ownerPid === undefined
      ? 'detached'
      : `foreground, pid ${state.ownerPid}${isPidAlive(state.ownerPid) ? '' : ' — gone'}`;
  out(`lab in ${root}: ${state.status}, started ${state.startedAt} (${owner})`);
  for (const c of result.components) {
    const health = !c.alive ? 'DEAD' : c.healthy ? 'ok' : 'NOT ANSWERING';
    out(`  ${c.component.padEnd(16)} pid ${String(c.pid).padEnd(8)} ${health.padEnd(14)} ${c.address}`);
  }
  if (state.noFrontDoor !== undefined) {
    const fix = state.noFrontDoor.fix !== undefined ? ` (fix: ${state.noFrontDoor.fix})` : '';
    out(
      `  ${'front door'.padEnd(16)} ${'-'.padEnd(12)} ${'none'.padEnd(14)} ${state.noFrontDoor.reason}${fix}`,
    );
  }
  for (const l of links ?? []) {
    const state = l.state === 'up' ? 'linked' : `CUT (${l.state})`;
    const latency = l.latencyMs > 0 ? `, +${l.latencyMs} ms` : '';
    out(
      `  ${`broker link ${l.region}`.padEnd(16)} ${`${state}${latency}`.padEnd(29)} ${l.listen} → ${l.upstream}`,
    );
  }
  return allHealthy ? 0 : 1;
}

async function fetchJars(options: { force?: boolean }): Promise<number> {
  const need: Prerequisite[] = options.force === true ? ['java', 'maven', 'go'] : [];
  if (!(await prerequisites('fetch', need, out))) return 1;
  let started = Date.now();
  const cached = options.force !== true && hasKafkaJars();
  const jars = await ensureKafkaJars({ force: options.force === true, onFetchStart: (m) => out(m) });
  const how = cached ? 'already cached' : `fetched in ${seconds(Date.now() - started)}`;
  out(`Kafka ${jars.version}: ${countJars(jars.libsDir)} jars in ${jars.libsDir} (${how})`);
  started = Date.now();
  const built = options.force !== true && hasToxiproxy();
  const binary = await ensureToxiproxy({ force: options.force === true, onBuildStart: (m) => out(m) });
  out(
    `Toxiproxy ${TOXIPROXY_VERSION}: ${binary} (${built ? 'already cached' : `ready in ${seconds(Date.now() - started)}`})`,
  );
  return 0;
}

/** The broker links of the lab in `dir`, or an error message when there is no lab with Toxiproxy. */
function labLinks(dir: string | undefined): { links: BrokerLinkProxies; regions: string[] } | string {
  const root = resolveLabRoot(dir);
  const state = readLabState(root);
  if (state === undefined)
    return `no lab in ${root} (no ${labStatePath(root)}): start one with \`hothot lab up\``;
  if (state.toxiproxy === undefined)
    return `the lab in ${root} runs without Toxiproxy: restart it with this version`;
  return { links: new BrokerLinkProxies(state.toxiproxy.url), regions: state.regionNames };
}

async function linkCommand(
  command: string,
  region: string,
  dir: string | undefined,
  action: (links: BrokerLinkProxies) => Promise<string>,
): Promise<number> {
  const lab = labLinks(dir);
  if (typeof lab === 'string') {
    err(`hothot lab ${command}: ${lab}`);
    return 1;
  }
  if (!lab.regions.includes(region)) {
    err(`hothot lab ${command}: the lab has no region ${region}; it has ${lab.regions.join(', ')}`);
    return 1;
  }
  try {
    out(await action(lab.links));
  } catch (e) {
    err(`hothot lab ${command}: ${errorMessage(e)}`);
    return 1;
  }
  return 0;
}

/** `kill` / `restart`: act on a region of the lab in `dir`, print the outcome. */
async function regionCommand(
  command: string,
  region: string,
  dir: string | undefined,
  action: (root: string) => Promise<string>,
): Promise<number> {
  try {
    out(await action(resolveLabRoot(dir)));
    return 0;
  } catch (e) {
    err(`hothot lab ${command}: ${errorMessage(e)}`);
    return 1;
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function buildCli(): Command {
  const program = new Command('hothot')
    .description('hothot: active-active multi-region data service — developer tools')
    .showHelpAfterError()
    .configureHelp({ sortSubcommands: false });

  const lab = program
    .command('lab')
    .description(
      'native lab: PostgreSQL per region, one Kafka, one region process per region, from local binaries',
    )
    .addHelpText(
      'after',
      `
Data lives in <dir>/lab (reused between runs; --fresh wipes it), the state of a running lab in
<dir>/lab.json. Kafka ${safeKafkaVersion()} jars are fetched once with Maven into ${kafkaLibsDirSafe()},
Toxiproxy ${TOXIPROXY_VERSION} is built once with \`go install\` into ${toxiproxyBinarySafe()}
(HOTHOT_CACHE_DIR overrides the cache). As root, PostgreSQL runs as the "postgres" user.
Kafka runs over TLS with SCRAM-SHA-512 and ACLs, PostgreSQL with password authentication: the
credentials are made once (openssl) in <dir>/lab/secrets and never printed.
Each region reaches Kafka only through its own Toxiproxy proxy: \`partition\`, \`heal\` and
\`latency\` act on it. HAProxy (Debian package haproxy) is the front door over all regions.
\`up\` and \`fetch\` first check the prerequisites with ${PREREQUISITES_SCRIPT} (see \`up --help\`).`,
    );

  lab
    .command('up')
    .description('start the lab, wait until every region is ready, print its URLs')
    .addOption(
      new Option('--regions <list>', 'comma-separated region ids')
        .argParser(parseRegions)
        .default([...DEFAULT_REGIONS], DEFAULT_REGIONS.join(',')),
    )
    .option(
      '-d, --detach',
      'return once ready and leave the lab running in the background (logs in <dir>/lab/logs)',
    )
    .addOption(
      new Option(
        '--processes <n>',
        `processes per region (API_PROCESSES: node:cluster workers on one port, one leading; default ${LAB_REGION_PROCESSES})`,
      ).argParser(parseProcesses),
    )
    .addOption(
      new Option(
        '--base-port <port>',
        `ports: regions base+i, PostgreSQL base+100+i, Kafka base+200.. (default ${DEFAULT_BASE_PORT}, busy ports replaced by free ones; an explicit base must be free)`,
      ).argParser(parsePort),
    )
    .addOption(dirOption())
    .option('--fresh', 'delete the lab data from earlier runs first')
    .addOption(
      new Option(
        '--balance <mode>',
        'how the front door spreads requests: roundrobin (each region in turn; the default), random (a random region per request, weighted if --weights), weighted (in turn, in proportion to --weights; the default when --weights is given)',
      ).choices([...BALANCE_MODES]),
    )
    .addOption(
      new Option(
        '--weights <list>',
        'front door weights, e.g. us=3,eu=1 (0-256; default 100 each): with --balance weighted or random',
      ).argParser((v: string) => {
        try {
          return parseWeights(v);
        } catch (e) {
          throw new InvalidArgumentError(errorMessage(e));
        }
      }),
    )
    .option(
      '--no-front-door',
      'do not start HAProxy in front of the regions (without HAProxy installed, the lab starts without it anyway, and warns)',
    )
    .addOption(
      new Option('--log-level <level>', 'LOG_LEVEL of the region processes').choices([
        'trace',
        'debug',
        'info',
        'warn',
        'error',
      ]),
    )
    .addHelpText(
      'after',
      `
Prerequisites, checked first by infra/prerequisites.sh (the script .ci/run uses): Node >= 20.19,
Java, the PostgreSQL server binaries (and, as root, the "postgres" user), HAProxy, and while the cache
lacks them Maven (Kafka jars) and Go >= 1.21 (Toxiproxy). What is missing is installed when this runs
as root with apt-get (apt-get update, then apt-get install -y --no-install-recommends <packages>; set
HOTHOT_PREREQS_NO_INSTALL=1 to forbid it); otherwise the exact command to run is printed. Anything
missing but HAProxy stops here. Without HAProxy the lab still starts the regions, without the front
door: a WARNING line says so with the command that installs it, \`lab status\` shows "front door none"
and lab.json has "noFrontDoor" instead of "frontDoor".

Without --detach the lab runs in the foreground, streaming the region logs, until Ctrl-C or SIGTERM;
it then stops the regions, Kafka and PostgreSQL in that order. Exits non-zero if a lab is already
running in the same directory.`,
    )
    .action(async (options: UpOptions) => {
      process.exitCode = await up(options);
    });

  lab
    .command('down')
    .description(
      'stop the lab recorded in lab.json (regions, then Kafka, then PostgreSQL) and remove lab.json',
    )
    .addOption(dirOption())
    .action(async (options: { dir?: string }) => {
      process.exitCode = await down(options);
    });

  lab
    .command('status')
    .description(
      'show each component, whether its process is alive and whether it answers (exit 1 if not all do)',
    )
    .addOption(dirOption())
    .option('--json', 'machine-readable output')
    .action(async (options: { dir?: string; json?: boolean }) => {
      process.exitCode = await status(options);
    });

  lab
    .command('partition')
    .description("cut a region's link to Kafka (its Toxiproxy proxy); the region keeps serving")
    .argument('<region>', 'region whose broker link to cut')
    .addOption(
      new Option(
        '--mode <mode>',
        'reset: refuse and close connections (fast failure); blackhole: connections stay open, bytes vanish',
      )
        .choices([...PARTITION_MODES])
        .default('reset'),
    )
    .addOption(dirOption())
    .action(async (region: string, options: { mode: PartitionMode; dir?: string }) => {
      process.exitCode = await linkCommand('partition', region, options.dir, async (links) => {
        await links.partition(region, options.mode);
        return `broker link of ${region} cut (${options.mode}); heal it with: hothot lab heal ${region}`;
      });
    });

  lab
    .command('heal')
    .description("restore a region's link to Kafka (added latency stays; `latency <region> 0` removes it)")
    .argument('<region>', 'region whose broker link to restore')
    .addOption(dirOption())
    .action(async (region: string, options: { dir?: string }) => {
      process.exitCode = await linkCommand('heal', region, options.dir, async (links) => {
        await links.heal(region);
        return `broker link of ${region} restored`;
      });
    });

  lab
    .command('latency')
    .description("add round-trip latency to a region's link to Kafka (WAN simulation; 0 removes it)")
    .argument('<region>', 'region whose broker link to slow down')
    .argument('<ms>', 'added round-trip time in ms (half each way)', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 60_000) throw new InvalidArgumentError('expected 0 to 60000');
      return n;
    })
    .option('--jitter <ms>', 'random variation each way, in ms', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 60_000) throw new InvalidArgumentError('expected 0 to 60000');
      return n;
    })
    .addOption(dirOption())
    .action(async (region: string, ms: number, options: { jitter?: number; dir?: string }) => {
      process.exitCode = await linkCommand('latency', region, options.dir, async (links) => {
        await links.latency(region, ms, options.jitter ?? 0);
        return ms === 0
          ? `added latency of ${region}'s broker link removed`
          : `broker link of ${region}: +${ms} ms round trip${options.jitter ? ` (±${options.jitter} ms each way)` : ''}`;
      });
    });

  lab
    .command('kill')
    .description(
      "SIGKILL a region's process (a crash: its database, outbox and broker link stay as they are)",
    )
    .argument('<region>', 'region whose process to kill')
    .addOption(dirOption())
    .action(async (region: string, options: { dir?: string }) => {
      process.exitCode = await regionCommand('kill', region, options.dir, (root) =>
        Promise.resolve(
          killLabRegion(root, region)
            ? `region ${region} killed (SIGKILL); start it again with: hothot lab restart ${region}`
            : `region ${region} was not running; start it with: hothot lab restart ${region}`,
        ),
      );
    });

  lab
    .command('restart')
    .description(
      'start a region process again as `lab up` did (stopping it first if it runs); waits for /readyz',
    )
    .argument('<region>', 'region whose process to (re)start')
    .addOption(dirOption())
    .action(async (region: string, options: { dir?: string }) => {
      const started = Date.now();
      process.exitCode = await regionCommand('restart', region, options.dir, async (root) => {
        const info = await restartLabRegion(root, region);
        return `region ${region} ready at ${info.url} (pid ${info.pid}) in ${seconds(Date.now() - started)}`;
      });
    });

  addConsoleCommand(lab);
  addAvailabilityCommand(lab);
  addMembershipCommands(lab);

  lab
    .command('compose-secrets')
    .description(
      'make (once) the credentials docker-compose.yml mounts: Kafka CA, certificate and SCRAM passwords, PostgreSQL passwords, event-signing keys',
    )
    .option('--dir <path>', 'where to write them', COMPOSE_SECRETS_DIR)
    .action((options: { dir: string }) => {
      const result = writeComposeSecrets(options.dir);
      out(
        `${result.created ? 'made' : 'kept'} the compose credentials in ${result.dir} (directory 0700; ` +
          `${result.files.length} files mounted read-only by their own containers; values are never printed)`,
      );
      out('next: docker compose up --build');
    });

  lab
    .command('fetch')
    .description(
      'only prepare the cache: the Kafka jars (with Maven) and the Toxiproxy server (with go install); CI runs this',
    )
    .option('--force', 'fetch again even if the cache is complete')
    .action(async (options: { force?: boolean }) => {
      process.exitCode = await fetchJars(options);
    });

  addOutboxCommands(program);
  addKeysCommands(program);
  addRepairCommands(program);
  return program;
}

function safeKafkaVersion(): string {
  try {
    return kafkaVersion();
  } catch {
    return '(unknown version)';
  }
}

function toxiproxyBinarySafe(): string {
  try {
    return toxiproxyBinary();
  } catch {
    return '~/.cache/hothot';
  }
}

function kafkaLibsDirSafe(): string {
  try {
    return kafkaLibsDir();
  } catch {
    return '~/.cache/hothot';
  }
}

try {
  await buildCli().parseAsync(process.argv);
} catch (e) {
  err(`hothot: ${errorMessage(e)}`);
  process.exitCode = 1;
}
