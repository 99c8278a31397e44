/** Memory and CPU of processes from /proc (Linux). */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/** A `kB` field of /proc/<pid>/status in MiB, or NaN. */
function statusMiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set size (VmHWM) in MiB since start or the last {@link resetPeakRss}. */
export function peakRssMiB(pid: number): number {
  return statusMiB(pid, 'VmHWM');
}

export function rssMiB(pid: number): number {
  return statusMiB(pid, 'VmRSS');
}

/** Reset VmHWM to the current RSS (`echo 5 > /proc/<pid>/clear_refs`); false when not allowed. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

interface StatTimes {
  ppid: number;
  own: number;
  reapedChildren: number;
}

function statTimes(pid: number): StatTimes | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] = state (field 3); utime = field 14, stime 15, cutime 16, cstime 17
    const f = (n: number) => Number(fields[n - 3]);
    return { ppid: f(4), own: f(14) + f(15), reapedChildren: f(16) + f(17) };
  } catch {
    return undefined;
  }
}

/**
 * CPU time in ms used so far by `pid` and, with `children`, by its direct children alive now or
 * already reaped (PostgreSQL: the postmaster plus every backend, including ones that exited).
 */
export function cpuMs(pid: number, children = false): number {
  const self = statTimes(pid);
  if (!self) return Number.NaN;
  let ticks = self.own;
  if (children) {
    ticks += self.reapedChildren;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const t = statTimes(Number(entry));
      if (t && t.ppid === pid) ticks += t.own + t.reapedChildren;
    }
  }
  return (ticks * 1000) / CLOCK_TICKS_PER_S;
}

/** Samples RSS of some pids every `intervalMs` and keeps the maximum (a cross-check of VmHWM). */
export class RssSampler {
  private readonly max = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pids: readonly number[],
    intervalMs = 250,
  ) {
    for (const pid of pids) resetPeakRss(pid);
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    for (const pid of this.pids) {
      const v = rssMiB(pid);
      if (Number.isFinite(v)) this.max.set(pid, Math.max(this.max.get(pid) ?? 0, v));
    }
  }

  /** Stop; per pid the larger of VmHWM and the sampled maximum, in MiB. */
  stop(): Map<number, number> {
    clearInterval(this.timer);
    this.sample();
    const out = new Map<number, number>();
    for (const pid of this.pids) {
      const hwm = peakRssMiB(pid);
      out.set(pid, Math.max(Number.isFinite(hwm) ? hwm : 0, this.max.get(pid) ?? 0));
    }
    return out;
  }
}
