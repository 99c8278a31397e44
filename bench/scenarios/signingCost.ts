/**
 * #8 What authenticated replication costs (shared/security/eventAuth.ts).
 *
 * - CPU per event, in this process: the relay's signing (`EventSigner.headers`: the next sequence
 *   number, an Ed25519 signature over domain + origin + key id + sequence + value, base64) and the
 *   applier's check (`checkSignedMessage`: headers parsed, signature verified), each over ≥ 10,000
 *   change events shaped like the bench's writes (~90-byte values, ~300-byte events) and over 4 KiB
 *   values — on the event loop, and as the relay and applier run them (the `…Async` variants: on
 *   libuv's thread pool, 1,000 at once); the event decoder (`decodeEvent`, zod) on the same events
 *   for scale. CPU time is `process.cpuUsage()` (user + system, every thread) over the whole loop,
 *   median of 5 rounds after a warm-up.
 * - Replication lag (us → eu) at fixed write rates with both regions signing and verifying, against
 *   the same regions restarted without event keys (SECURITY_MODE=insecure-dev), same run, same lab:
 *   lag per row from PostgreSQL commit timestamps (measure/commitTimes.ts).
 */
import { join } from 'node:path';
import { decodeEvent, encodeEvent, type ChangeEvent } from '../../shared/kafka/envelope.js';
import { checkSignedMessage, checkSignedMessageAsync, EventSigner } from '../../shared/security/eventAuth.js';
import { eventKeyEnv, loadEventKeys, provisionEventKeys } from '../../shared/security/eventKeys.js';
import { commitPairs, commitTimes, lagsOf } from '../measure/commitTimes.js';
import { distribution, round, roundDistribution } from '../measure/stats.js';
import { REGIONS } from '../lab/benchLab.js';
import { waitForQuiet, waitForResponsive, waitForRows, type BenchContext } from './benchContext.js';
import { writeToUs } from './replicationLag.js';

export interface CpuPerEvent {
  /** Value size of the events measured (bytes of the item's JSON value). */
  readonly valueBytes: number;
  /** Mean encoded event size, bytes. */
  readonly eventBytes: number;
  readonly events: number;
  /** CPU µs per event (user + system), median of the rounds: on the event loop (sync). */
  readonly signUs: number;
  readonly verifyUs: number;
  /**
   * What the relay and the applier run: signatures made / checked on libuv's thread pool, 1,000 at
   * once (a relay pass, an applier batch): CPU µs per event, and wall µs per event.
   */
  readonly signAsyncUs: number;
  readonly verifyAsyncUs: number;
  readonly signAsyncWallUs: number;
  readonly verifyAsyncWallUs: number;
  /** The decoder on the same events, for scale (every applied event pays it, signed or not). */
  readonly decodeUs: number;
}

export interface LagComparison {
  readonly rate: number;
  readonly signed: {
    readonly p50: number;
    readonly p99: number;
    readonly delivered: number;
    readonly written: number;
  };
  readonly unsigned: {
    readonly p50: number;
    readonly p99: number;
    readonly delivered: number;
    readonly written: number;
  };
  /** signed − unsigned, ms. */
  readonly p50DeltaMs: number;
  readonly p99DeltaMs: number;
}

export interface SigningResult {
  readonly cpu: readonly CpuPerEvent[];
  readonly lag: readonly LagComparison[];
  readonly lagDurationS: number;
  /** The modes in the order they ran (the rows of each mode pooled). */
  readonly lagOrder?: readonly string[];
}

const ROUNDS = 5;

/** CPU per event only (no lab): also what `--only signing` prints first. */
export async function signingCpu(events = 10_000): Promise<CpuPerEvent[]> {
  const dir = join(process.env.TMPDIR ?? '/tmp', `hothot-bench-keys-${process.pid}`);
  const files = provisionEventKeys(dir, ['us', 'eu']);
  const keys = loadEventKeys(files.us!, 'us');
  const out: CpuPerEvent[] = [];
  for (const valueBytes of [90, 4096]) {
    const now = Date.now();
    const values = Array.from({ length: events }, (_, i) => {
      const event: ChangeEvent = {
        v: 1,
        type: 'change',
        origin: 'us',
        collection: 'bench',
        key: `key-${i}`,
        value: { n: i, pad: 'x'.repeat(Math.max(0, valueBytes - 20)) },
        deleted: false,
        hlc: { wall: now + i, logical: 0, region: 'us' },
        vv: { us: 1 + (i % 7), eu: i % 3 === 0 ? 2 : 1 },
        writtenAt: now + i,
      };
      return encodeEvent(event);
    });
    const signer = new EventSigner(keys.signing, 'us');
    const headers = values.map((v, i) => signer.headers(v, i % 3)); // warm-up, and what is verified
    for (let i = 0; i < 2000; i++) checkSignedMessage(keys.keyring, 'us', headers[i]!, values[i]!);
    for (let i = 0; i < 2000; i++) decodeEvent(values[i]!, 'us');
    const median = (xs: number[]) => round(xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
    const perEvent = async (work: () => void | Promise<void>) => {
      const cpu: number[] = [];
      const wall: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = process.cpuUsage();
        const w0 = performance.now();
        await work();
        wall.push(((performance.now() - w0) * 1000) / values.length);
        const d = process.cpuUsage(t0);
        cpu.push((d.user + d.system) / values.length);
      }
      return { cpu: median(cpu), wall: median(wall) };
    };
    /** `each` over the events, 1,000 at once. */
    const inThousands = async (each: (i: number) => Promise<unknown>) => {
      for (let from = 0; from < values.length; from += 1000)
        await Promise.all(
          Array.from({ length: Math.min(1000, values.length - from) }, (_, k) => each(from + k)),
        );
    };
    const signUs = await perEvent(() => {
      for (let i = 0; i < values.length; i++) signer.headers(values[i]!, i % 3);
    });
    let failed = 0;
    const verifyUs = await perEvent(() => {
      for (let i = 0; i < values.length; i++)
        if (!checkSignedMessage(keys.keyring, 'us', headers[i]!, values[i]!).ok) failed++;
    });
    const signAsync = await perEvent(() => inThousands((i) => signer.headersAsync(values[i]!, i % 3)));
    const verifyAsync = await perEvent(() =>
      inThousands(async (i) => {
        if (!(await checkSignedMessageAsync(keys.keyring, 'us', headers[i]!, values[i]!)).ok) failed++;
      }),
    );
    if (failed > 0) throw new Error(`${failed} genuine events failed verification`);
    const decodeUs = await perEvent(() => {
      for (const v of values) decodeEvent(v, 'us');
    });
    out.push({
      valueBytes,
      eventBytes: Math.round(values.reduce((n, v) => n + v.length, 0) / values.length),
      events: values.length,
      signUs: signUs.cpu,
      verifyUs: verifyUs.cpu,
      signAsyncUs: signAsync.cpu,
      verifyAsyncUs: verifyAsync.cpu,
      signAsyncWallUs: signAsync.wall,
      verifyAsyncWallUs: verifyAsync.wall,
      decodeUs: decodeUs.cpu,
    });
  }
  return out;
}

export async function signingCost(ctx: BenchContext, rates: readonly number[]): Promise<SigningResult> {
  const { lab, quick, log } = ctx;
  const cpu = await signingCpu();
  for (const c of cpu)
    log(
      `CPU per event (${c.eventBytes}-byte events, ${c.events} × ${ROUNDS}): sign ${c.signUs} µs, ` +
        `verify ${c.verifyUs} µs on the event loop; on the thread pool, 1,000 at once, sign ${c.signAsyncUs} µs ` +
        `(wall ${c.signAsyncWallUs} µs), verify ${c.verifyAsyncUs} µs (wall ${c.verifyAsyncWallUs} µs); decode ${c.decodeUs} µs`,
    );
  const durationS = quick ? 5 : 10;
  const files = provisionEventKeys(join(lab.dir, 'event-keys'), REGIONS);
  const unsignedEnv = {
    SECURITY_MODE: 'insecure-dev',
    EVENT_SIGNING_KEY_FILE: '',
    EVENT_SIGNING_KEY_ID: '',
    EVENT_PUBLIC_KEYS_FILE: '',
  };
  // ABBA (full) or AB (quick): a drift of the shared machine's load over the minutes does not all
  // land on one side.
  const order = quick
    ? (['unsigned', 'signed'] as const)
    : (['unsigned', 'signed', 'signed', 'unsigned'] as const);
  const lag: LagComparison[] = [];
  try {
    // Lags of every row, per mode and rate, over the runs of that mode.
    const sides: Record<
      'signed' | 'unsigned',
      Map<number, { lags: number[]; delivered: number; written: number }>
    > = {
      signed: new Map(),
      unsigned: new Map(),
    };
    for (const [run, mode] of order.entries()) {
      log(`restarting us and eu ${mode === 'signed' ? 'with event keys' : 'without event keys'}`);
      await lab.restartRegions((r) => (mode === 'signed' ? eventKeyEnv(files[r]!) : unsignedEnv));
      for (const rate of rates) {
        const collection = `sig${mode === 'signed' ? 's' : 'u'}${run}r${rate}`;
        await writeToUs(lab, collection, rate, durationS);
        await waitForResponsive(lab, 'us');
        await waitForRows(lab, 'us', 'eu', collection, 60_000);
        const [o, t] = await Promise.all([
          commitTimes(lab.db('us'), collection, lab.landedClock('us')),
          commitTimes(lab.db('eu'), collection, lab.landedClock('eu')),
        ]);
        const pairs = commitPairs(o, t);
        const lags = lagsOf(pairs);
        const d = roundDistribution(distribution(lags));
        const side = sides[mode].get(rate) ?? { lags: [], delivered: 0, written: 0 };
        sides[mode].set(rate, {
          lags: [...side.lags, ...lags],
          delivered: side.delivered + pairs.length,
          written: side.written + o.size,
        });
        log(`${mode} ${rate}/s: lag p50 ${d.p50} p99 ${d.p99} ms (${pairs.length}/${o.size} rows)`);
        await waitForQuiet(lab, 60_000);
      }
    }
    const summary = (side: { lags: number[]; delivered: number; written: number }) => {
      const d = roundDistribution(distribution(side.lags));
      return { p50: d.p50, p99: d.p99, delivered: side.delivered, written: side.written };
    };
    for (const rate of rates) {
      const signed = summary(sides.signed.get(rate)!);
      const unsigned = summary(sides.unsigned.get(rate)!);
      log(
        `${rate}/s over every run: unsigned p50 ${unsigned.p50} p99 ${unsigned.p99}, signed p50 ${signed.p50} p99 ${signed.p99} ms`,
      );
      lag.push({
        rate,
        signed,
        unsigned,
        p50DeltaMs: round(signed.p50 - unsigned.p50),
        p99DeltaMs: round(signed.p99 - unsigned.p99),
      });
    }
  } finally {
    log('restarting us and eu with the run’s own environment');
    await lab.restartRegions(() => ({}));
  }
  return { cpu, lag, lagDurationS: durationS, lagOrder: [...order] };
}
