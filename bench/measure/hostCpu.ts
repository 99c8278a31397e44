/**
 * The whole machine's CPU time from /proc/stat (Linux): how busy it was during a scenario, and how
 * much of its time the hypervisor gave to other guests (steal). On a shared virtual machine the
 * steal moves from hour to hour, and with it every figure of a run: a run's report says how much
 * there was, so that two runs can be told apart from two versions of the code.
 */
import { readFileSync } from 'node:fs';

/** The aggregate `cpu` line of /proc/stat, in clock ticks since boot. */
export interface HostCpuTimes {
  /** user + nice + system + irq + softirq (guest time is already inside user and nice). */
  readonly busy: number;
  /** idle + iowait. */
  readonly idle: number;
  readonly steal: number;
}

/** CPU use between two readings, in % of the machine's time (all cores), one decimal. */
export interface HostCpuShare {
  /** Running this guest's processes (any of them: the bench's, the lab's, anyone's). */
  readonly busyPct: number;
  /** Taken by the hypervisor for other guests while this one had work or waited. */
  readonly stealPct: number;
}

/**
 * The aggregate `cpu` line of a /proc/stat text, or undefined when there is none or it has fewer
 * than the eight fields (user … steal) Linux has given since 2.6.11.
 */
export function parseProcStat(text: string): HostCpuTimes | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) return undefined;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 8 || f.slice(0, 8).some((n) => !Number.isFinite(n) || n < 0)) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
}

/** This machine's CPU times now, or undefined where /proc/stat cannot be read (not Linux). */
export function readHostCpu(): HostCpuTimes | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** The share of the machine's time between two readings that was busy and stolen. */
export function hostCpuShare(before: HostCpuTimes, after: HostCpuTimes): HostCpuShare | undefined {
  const busy = after.busy - before.busy;
  const idle = after.idle - before.idle;
  const steal = after.steal - before.steal;
  const total = busy + idle + steal;
  if (!(total > 0) || busy < 0 || idle < 0 || steal < 0) return undefined;
  const pct = (n: number) => Math.round((n / total) * 1000) / 10;
  return { busyPct: pct(busy), stealPct: pct(steal) };
}

/** The share since `before` (a {@link readHostCpu} reading), or undefined without one. */
export function sideHostCpu(before: HostCpuTimes | undefined): HostCpuShare | undefined {
  const after = readHostCpu();
  return before === undefined || after === undefined ? undefined : hostCpuShare(before, after);
}
