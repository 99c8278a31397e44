/**
 * The bench's reading of the machine's CPU (bench/measure/hostCpu.ts): /proc/stat's aggregate line,
 * the busy and stolen shares between two readings, and the report's row that shows them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hostCpuShare, parseProcStat, readHostCpu } from '../../bench/measure/hostCpu.js';
import { writeReport, type BenchResults } from '../../bench/report/benchReport.js';
import type { LagSide } from '../../bench/scenarios/replicationLag.js';
import type { FloorPoint } from '../../bench/scenarios/transportFloor.js';

// user nice system idle iowait irq softirq steal guest guest_nice
const stat = (fields: string) => `cpu  ${fields}\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\n`;

describe('host CPU from /proc/stat', () => {
  it('reads the aggregate line: busy, idle (with iowait) and steal, guest time already in user', () => {
    expect(parseProcStat(stat('100 20 30 400 50 6 4 90 10 0'))).toEqual({ busy: 160, idle: 450, steal: 90 });
  });

  it('refuses a text without the aggregate line, or with fewer than eight fields or bad numbers', () => {
    expect(parseProcStat('cpu0 1 2 3 4 5 6 7 8\n')).toBeUndefined();
    expect(parseProcStat(stat('1 2 3 4 5 6 7'))).toBeUndefined();
    expect(parseProcStat(stat('1 2 3 4 x 6 7 8'))).toBeUndefined();
    expect(parseProcStat(stat('1 2 3 4 -5 6 7 8'))).toBeUndefined();
  });

  it('gives the busy and stolen shares of the time between two readings', () => {
    const before = { busy: 1000, idle: 5000, steal: 200 };
    // 600 ticks busy, 300 idle, 100 stolen: 60 % busy, 10 % stolen.
    expect(hostCpuShare(before, { busy: 1600, idle: 5300, steal: 300 })).toEqual({
      busyPct: 60,
      stealPct: 10,
    });
    // Half the machine's time stolen (what `top` showed on a slow hour of the lab's host).
    expect(hostCpuShare(before, { busy: 1500, idle: 5000, steal: 700 })).toEqual({
      busyPct: 50,
      stealPct: 50,
    });
  });

  it('gives nothing for readings without time between them, or going backwards', () => {
    const r = { busy: 10, idle: 10, steal: 10 };
    expect(hostCpuShare(r, r)).toBeUndefined();
    expect(hostCpuShare(r, { ...r, busy: 20, steal: 5 })).toBeUndefined();
  });

  it.runIf(process.platform === 'linux')('reads this machine (Linux)', () => {
    const now = readHostCpu();
    expect(now).toBeDefined();
    expect(now!.busy + now!.idle).toBeGreaterThan(0);
  });
});

describe('bench report: the machine CPU row', () => {
  const base: BenchResults = {
    id: 'hostcpu',
    startedAt: '2026-12-02T00:00:00.000Z',
    finishedAt: '2026-12-02T00:01:00.000Z',
    durationS: 60,
    mode: 'quick',
    scenarios: ['lag'],
    regionEnv: {},
    machine: {} as BenchResults['machine'],
    loadAverage: { lag: 1.5 },
    errors: [],
    targets: [],
  };

  const report = (r: BenchResults): string => {
    const dir = mkdtempSync(join(tmpdir(), 'hothot-report-'));
    try {
      return readFileSync(writeReport(r, dir).markdown, 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const machineSection = (r: BenchResults): string => {
    const md = report(r);
    return md.slice(md.indexOf('## Machine'), md.indexOf('## Setup'));
  };

  it('shows each scenario busy / stolen, and nothing for a run recorded before it was measured', () => {
    const shown = machineSection({
      ...base,
      hostCpu: { lag: { busyPct: 48.5, stealPct: 31.2 }, catchup: { busyPct: 70, stealPct: 2 } },
    });
    expect(shown).toContain(
      '| machine CPU busy / stolen during each scenario | lag 48.5 / 31.2 %, catchup 70 / 2 % |',
    );
    expect(machineSection(base)).not.toContain('stolen');
  });

  const dist = { count: 100, min: 1, mean: 3, p50: 2, p90: 4, p99: 5, p999: 6, max: 7 };
  const curve = [
    [0, 1],
    [50, 2],
    [100, 7],
  ] as const;
  const lagSide = (host?: LagSide['host']): LagSide => ({
    ...dist,
    achievedPerS: 100,
    delivered: 100,
    written: 100,
    curve,
    ...(host === undefined ? {} : { host }),
  });

  it('shows the machine busy / stolen while each side of #3 and each floor point ran, – where not recorded', () => {
    const floorPoint: FloorPoint = {
      ...dist,
      rate: 100,
      sent: 100,
      received: 100,
      curve,
      host: { busyPct: 40, stealPct: 9.5 },
    };
    const md = report({
      ...base,
      scenarios: ['floor', 'lag'],
      lag: {
        durationS: 5,
        points: [
          {
            rate: 100,
            hothot: lagSide({ busyPct: 61.2, stealPct: 3.8 }),
            logical: lagSide(),
            p50Ratio: 1,
            p99Ratio: 1,
            debezium: lagSide({ busyPct: 70, stealPct: 14.9 }),
            p50RatioDebezium: 1,
            p99RatioDebezium: 1,
          },
        ],
      },
      floor: { durationS: 5, points: [floorPoint] },
    });
    const lag = md.slice(md.indexOf('## #3'), md.indexOf('## #5'));
    expect(lag).toContain('| machine busy / stolen |');
    expect(lag).toMatch(/\| 100\/s \| hothot \|.*\| 61\.2 \/ 3\.8 % \|/);
    expect(lag).toMatch(/\| logical \|.*\| – \|/);
    expect(lag).toMatch(/\| Debezium \|.*\| 70 \/ 14\.9 % \|/);
    const floor = md.slice(md.indexOf('## #5'));
    expect(floor).toMatch(/\| kafkajs \| 100\/s \|.*\| 40 \/ 9\.5 % \|/);
  });
});
