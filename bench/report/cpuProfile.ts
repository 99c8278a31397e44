/**
 * Summaries of a V8 `.cpuprofile` (from `node --cpu-prof`): where the sampled time went, by
 * package/area (self time) and by function (self and inclusive time).
 */
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from '../../infra/lab/paths.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Share {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy (non-idle) time, %. */
  readonly pct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly wallMs: number;
  readonly busyMs: number;
  readonly idleMs: number;
  readonly byArea: readonly Share[];
  readonly topSelf: readonly Share[];
  readonly topInclusive: readonly Share[];
}

/** Where a frame's code lives: an npm package, a Node.js area, a hothot file, or a V8 pseudo-frame. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (idle) (program) (garbage collector)
    // Native bindings of Node's stream handles: the socket syscalls (and, on a busy machine, the
    // time the thread waits to run again after waking the process at the other end).
    if (/^(writev|writeBuffer|write\w*String|readStart|readStop|shutdown|close)$/.test(functionName))
      return 'native socket I/O (writev, writeBuffer…)';
    return 'V8 builtins and other native code';
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) {
    const rest = url.slice(5);
    const parts = rest.split('/');
    const area = parts[0] === 'internal' ? (parts[1] ?? 'internal') : rest;
    return `node:${area.replace(/\.js$/, '').replace(/^_/, '')}`;
  }
  const local = url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '');
  const top = /^(services\/[^/]+|shared\/[^/]+)/.exec(local);
  return top ? `hothot ${top[1]}` : local;
}

function frameName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url.replace(/^file:\/\//, '').replace(`${REPO_ROOT}/`, '').replace(/^.*node_modules\//, '');
  return `${functionName || '(anonymous)'} ${file ? `${file}:${lineNumber + 1}` : ''}`.trim();
}

export function summarizeProfile(file: string, top = 20): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const area = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let idle = 0;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    const node = byId.get(id);
    if (!node) return;
    const a = areaOf(node.callFrame.url, node.callFrame.functionName);
    if (a === '(idle)') {
      idle += dt;
      return;
    }
    area.set(a, (area.get(a) ?? 0) + dt);
    const name = frameName(node);
    self.set(name, (self.get(name) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      const fn = frameName(n);
      if (fn === '(root)' || seen.has(fn)) continue;
      seen.add(fn);
      inclusive.set(fn, (inclusive.get(fn) ?? 0) + dt);
    }
  });
  const busy = total - idle;
  const shares = (m: Map<string, number>, n: number): Share[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), pct: Math.round((ms / busy) * 1000) / 10 }));
  return {
    file,
    wallMs: Math.round((profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busy),
    idleMs: Math.round(idle),
    byArea: shares(area, 25),
    topSelf: shares(self, top),
    topInclusive: shares(inclusive, top * 2),
  };
}
