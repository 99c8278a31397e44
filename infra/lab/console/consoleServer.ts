/**
 * `hothot lab console`: a page for the running lab — topology, per-peer state and lag, outbox backlog,
 * latest conflicts and dead letters — with buttons for the lab's fault commands (cut, heal, latency,
 * kill, restart), which call the same functions as `hothot lab partition|heal|latency|kill|restart`.
 *
 * Who may use it: the server binds 127.0.0.1 only and requires a token of its own (random, 32 bytes,
 * made at each start, printed once in the URL it prints). Opening that URL sets an HttpOnly,
 * SameSite=Strict cookie and redirects to the page without the token. Every other request needs the
 * cookie; actions (POST) also need the header `x-hothot-console: 1` (a cross-site form cannot send
 * it) and a Host of 127.0.0.1 / localhost at this port (no DNS rebinding). The lab's admin API key
 * stays in this process: it talks to the regions, the page only to this server.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { killLabRegion, restartLabRegion } from '../lab.js';
import { readLabState } from '../labState.js';
import { LOOPBACK } from '../ports.js';
import { BrokerLinkProxies, PARTITION_MODES, type PartitionMode } from '../brokerLinkProxies.js';
import { LabMonitor, type LabSnapshot } from './labMonitor.js';

const PAGE_FILE = join(import.meta.dirname, 'consolePage.html');
const COOKIE = 'hothot_console';
const ACTION_HEADER = 'x-hothot-console';
const MAX_BODY_BYTES = 4_096;
const ACTIONS = ['cut', 'heal', 'latency', 'kill', 'restart'] as const;
type Action = (typeof ACTIONS)[number];

export interface ConsoleServerOptions {
  /** Directory of the lab's lab.json. */
  readonly root: string;
  /** 0: any free port. */
  readonly port: number;
  readonly pollIntervalMs?: number;
  /** Each action taken, and how it ended (the CLI prints these). */
  readonly onAction?: (entry: ActionEntry) => void;
}

/** One action taken through the console, shown on the page. */
export interface ActionEntry {
  readonly at: string;
  readonly region: string;
  readonly action: Action;
  readonly detail: string;
  readonly outcome: 'started' | 'done' | 'failed';
  readonly message: string;
  readonly ms: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class ConsoleServer {
  readonly monitor: LabMonitor;
  private readonly token = randomBytes(32).toString('base64url');
  private readonly server: Server;
  private readonly streams = new Set<ServerResponse>();
  private readonly actions: ActionEntry[] = [];
  private readonly busy = new Set<string>();
  private boundPort = 0;

  private constructor(private readonly options: ConsoleServerOptions) {
    this.monitor = new LabMonitor({
      root: options.root,
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
    });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => this.sendError(res, e));
    });
  }

  /** Start polling the lab and listening on 127.0.0.1. */
  static async start(options: ConsoleServerOptions): Promise<ConsoleServer> {
    const console = new ConsoleServer(options);
    await console.monitor.start();
    console.monitor.onSnapshot((s) => console.broadcast('snapshot', s));
    await new Promise<void>((resolve, reject) => {
      console.server.once('error', reject);
      console.server.listen(options.port, LOOPBACK, () => resolve());
    });
    const address = console.server.address();
    console.boundPort = typeof address === 'object' && address !== null ? address.port : options.port;
    return console;
  }

  get port(): number {
    return this.boundPort;
  }

  /** The page's address without the token. */
  get url(): string {
    return `http://${LOOPBACK}:${this.boundPort}/`;
  }

  /** The address to open once: it carries the token (print it only to whoever started the console). */
  get loginUrl(): string {
    return `${this.url}?token=${this.token}`;
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.end();
    this.streams.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await this.monitor.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    const host = req.headers.host ?? '';
    if (host !== `${LOOPBACK}:${this.boundPort}` && host !== `localhost:${this.boundPort}`)
      throw new HttpError(421, 'wrong_host', `open the console at ${this.url}`);
    const url = new URL(req.url ?? '/', this.url);

    if (req.method === 'GET' && url.pathname === '/' && url.searchParams.has('token')) {
      if (!this.isToken(url.searchParams.get('token') ?? ''))
        throw new HttpError(401, 'bad_token', 'this is not the token the console printed');
      res.setHeader('set-cookie', `${COOKIE}=${this.token}; HttpOnly; SameSite=Strict; Path=/`);
      res.writeHead(303, { location: '/' }).end();
      return;
    }
    if (!this.isToken(cookieOf(req, COOKIE) ?? '')) {
      throw new HttpError(
        401,
        'unauthenticated',
        'open the URL `hothot lab console` printed (it carries a token), not the bare address',
      );
    }

    if (url.pathname === '/') {
      allow(req, 'GET');
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        // Everything is in the page itself: no other origin, no inline event handlers needed by others.
        'content-security-policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
      });
      res.end(readFileSync(PAGE_FILE));
      return;
    }
    if (url.pathname === '/api/snapshot') {
      allow(req, 'GET');
      sendJson(res, 200, this.state());
      return;
    }
    if (url.pathname === '/api/events') {
      allow(req, 'GET');
      res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write(`event: state\ndata: ${JSON.stringify(this.state())}\n\n`);
      this.streams.add(res);
      req.on('close', () => this.streams.delete(res));
      return;
    }
    const m = /^\/api\/regions\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (m !== null) {
      allow(req, 'POST');
      if (req.headers[ACTION_HEADER] !== '1')
        throw new HttpError(403, 'missing_header', `actions need the header ${ACTION_HEADER}: 1`);
      const body = await readJsonBody(req);
      const entry = await this.act(decodeURIComponent(m[1]!), m[2]!, body);
      sendJson(res, entry.outcome === 'failed' ? 502 : 200, entry);
      return;
    }
    throw new HttpError(404, 'not_found', `no such page: ${url.pathname}`);
  }

  /** Everything the page needs at once: snapshot, history, actions. */
  private state() {
    return {
      snapshot: this.monitor.latest ?? null,
      history: this.monitor.history,
      actions: this.actions.slice(-30),
      busy: [...this.busy],
    };
  }

  private async act(region: string, actionName: string, body: Record<string, unknown>): Promise<ActionEntry> {
    if (!(ACTIONS as readonly string[]).includes(actionName))
      throw new HttpError(404, 'unknown_action', `unknown action ${actionName}: use ${ACTIONS.join(', ')}`);
    const action = actionName as Action;
    const state = readLabState(this.options.root);
    if (state === undefined) throw new HttpError(409, 'no_lab', `no lab is running in ${this.options.root}`);
    if (!state.regionNames.includes(region))
      throw new HttpError(
        404,
        'unknown_region',
        `the lab has no region ${region}; it has ${state.regionNames.join(', ')}`,
      );
    const links = () => {
      if (state.toxiproxy === undefined)
        throw new HttpError(409, 'no_toxiproxy', 'the lab runs without Toxiproxy: restart it');
      return new BrokerLinkProxies(state.toxiproxy.url);
    };
    let detail = '';
    let run: () => Promise<string>;
    switch (action) {
      case 'cut': {
        const mode = body.mode ?? 'reset';
        if (typeof mode !== 'string' || !(PARTITION_MODES as readonly string[]).includes(mode))
          throw new HttpError(400, 'bad_mode', `mode must be one of ${PARTITION_MODES.join(', ')}`);
        detail = mode;
        run = async () => {
          await links().partition(region, mode as PartitionMode);
          return `broker link of ${region} cut (${mode})`;
        };
        break;
      }
      case 'heal':
        run = async () => {
          await links().heal(region);
          return `broker link of ${region} restored`;
        };
        break;
      case 'latency': {
        const ms = body.ms;
        const jitter = body.jitterMs ?? 0;
        if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > 60_000)
          throw new HttpError(400, 'bad_latency', 'ms must be an integer from 0 to 60000');
        if (typeof jitter !== 'number' || !Number.isInteger(jitter) || jitter < 0 || jitter > 60_000)
          throw new HttpError(400, 'bad_latency', 'jitterMs must be an integer from 0 to 60000');
        detail = `${ms} ms`;
        run = async () => {
          await links().latency(region, ms, jitter);
          return ms === 0 ? `added latency of ${region} removed` : `broker link of ${region}: +${ms} ms`;
        };
        break;
      }
      case 'kill':
        detail = 'SIGKILL';
        run = () =>
          Promise.resolve(
            killLabRegion(this.options.root, region, 'SIGKILL')
              ? `region ${region} killed (SIGKILL)`
              : `region ${region} was not running`,
          );
        break;
      case 'restart':
        run = async () => {
          const info = await restartLabRegion(this.options.root, region);
          return `region ${region} ready again (pid ${info.pid})`;
        };
        break;
    }
    if (this.busy.has(region))
      throw new HttpError(409, 'busy', `an action on ${region} is still running: wait for it`);
    this.busy.add(region);
    const started = Date.now();
    const record = (outcome: ActionEntry['outcome'], message: string): ActionEntry => {
      const entry: ActionEntry = {
        at: new Date().toISOString(),
        region,
        action,
        detail,
        outcome,
        message,
        ms: Date.now() - started,
      };
      this.actions.push(entry);
      if (this.actions.length > 100) this.actions.shift();
      this.options.onAction?.(entry);
      this.broadcast('actions', { actions: this.actions.slice(-30), busy: [...this.busy] });
      return entry;
    };
    if (action === 'restart') record('started', `restarting region ${region} …`);
    let entry: ActionEntry;
    try {
      entry = record('done', await run());
    } catch (e) {
      entry = record('failed', e instanceof Error ? e.message.split('\n')[0]! : String(e));
    } finally {
      this.busy.delete(region);
    }
    this.broadcast('actions', { actions: this.actions.slice(-30), busy: [...this.busy] });
    // The page sees the effect at once, not a poll later.
    void this.monitor.pollNow();
    return entry;
  }

  private broadcast(event: string, data: LabSnapshot | object): void {
    const text = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const s of this.streams) s.write(text);
  }

  private isToken(candidate: string): boolean {
    const a = Buffer.from(candidate);
    const b = Buffer.from(this.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private sendError(res: ServerResponse, e: unknown): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    if (e instanceof HttpError) sendJson(res, e.status, { error: { code: e.code, message: e.message } });
    else sendJson(res, 500, { error: { code: 'internal', message: 'the console failed; see its output' } });
  }
}

function allow(req: IncomingMessage, method: string): void {
  if (req.method !== method) throw new HttpError(405, 'method_not_allowed', `use ${method}`);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(413, 'too_large', `bodies are at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'bad_json', 'the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new HttpError(400, 'bad_json', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}
