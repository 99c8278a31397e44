/**
 * The availability study's report: `<id>-availability.json` (every figure), `.md` (a table per point
 * and the comparison with both formulas) and `.svg` (measured availability against A = 1 − P^N and
 * A = (1 − P)^N for each N).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { esc } from '../../../bench/report/svgCharts.js';
import type { AvailabilityPoint, Distribution } from './availabilityPoint.js';

export interface AvailabilityStudy {
  readonly id: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly seed: number;
  readonly quick: boolean;
  /** Region processes from the compiled build (else through tsx). */
  readonly compiled: boolean;
  readonly writesPerS: number;
  readonly readsPerS: number;
  readonly machine: string;
  readonly points: readonly AvailabilityPoint[];
}

const N_COLORS: Readonly<Record<number, string>> = { 2: '#d1495b', 3: '#2e6fba', 4: '#1f9d55', 5: '#8e44ad' };
const color = (n: number) => N_COLORS[n] ?? '#374151';
const pct = (v: number, digits = 2) => `${(v * 100).toFixed(digits)} %`;
const ms = (d: Distribution, key: 'p50' | 'p99' | 'max') => (d[key] === null ? '–' : `${Math.round(d[key])}`);

export function writeAvailabilityReport(
  study: AvailabilityStudy,
  outDir: string,
): { json: string; markdown: string; chart: string } {
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${study.id}-availability`);
  const files = { json: `${base}.json`, markdown: `${base}.md`, chart: `${base}.svg` };
  writeFileSync(files.json, `${JSON.stringify(study, null, 2)}\n`);
  writeFileSync(files.chart, availabilityChart(study.points));
  writeFileSync(files.markdown, markdown(study, `${study.id}-availability.svg`));
  return files;
}

function markdown(study: AvailabilityStudy, chartFile: string): string {
  const rows = study.points.map((p) =>
    [
      p.n,
      p.p.toFixed(2),
      `${Math.round(p.durationMs / 1000)} s`,
      `${pct(p.realized.meanDownFraction, 1)}`,
      `${pct(p.realized.allDownFraction, 1)} (${pct(p.scheduled.allDownFraction, 1)})`,
      `**${pct(p.servedFraction)}**`,
      pct(p.model.anyUp),
      pct(p.model.allUp),
      pct(p.model.outagesAllow),
      `${p.unservedWhileSomeUp} / ${p.unservedWhileAllDown}`,
      `${ms(p.failoverMs, 'p50')} / ${ms(p.failoverMs, 'p99')} / ${ms(p.failoverMs, 'max')} (${p.failoverMs.count})`,
      `${ms(p.returnMs, 'p50')} / ${ms(p.returnMs, 'max')} (${p.returnMs.count})`,
      `${ms(p.restartMs, 'p50')} / ${ms(p.restartMs, 'max')}`,
      `${p.writes.acked} / ${p.writes.sent}`,
      `**${p.writesLost}**`,
    ].join(' | '),
  );
  return `# Availability study ${study.id}

${study.quick ? 'Quick' : 'Full'} run, ${study.startedAt} → ${study.finishedAt}, seed ${study.seed} (point i uses seed + i),
${study.writesPerS} writes/s + ${study.readsPerS} reads/s through the front door (HAProxy), open loop; region processes
${study.compiled ? 'from the compiled build (dist/)' : 'through tsx'}. Machine: ${study.machine}.
Each region's process is SIGKILLed and restarted on a seeded schedule so that it is down a fraction P of
the time, independently of the others. See docs/availability.md for the method and what the numbers mean.

![measured availability against both formulas](${chartFile})

| N | P | run | realized P (mean) | all down: realized (scheduled) | **served** | 1 − P^N | (1 − P)^N | 1 − all-down | unserved: some up / all down | failover ms p50 / p99 / max (kills) | back after total outage ms p50 / max (n) | restart ms p50 / max | writes acked / sent | **writes lost** |
| - | - | --- | ----------------- | ------------------------------ | ---------- | ------- | --------- | ------------ | ---------------------------- | ----------------------------------- | ---------------------------------------- | -------------------- | ------------------- | --------------- |
${rows.map((r) => `| ${r} |`).join('\n')}

- **served**: requests answered below 500 within 3 s, of all sent (reads answered 404 count as served:
  ${study.points.reduce((s, p) => s + p.reads.notFound, 0)} in all).
- **1 − all-down**: what these very outages allow with instant failover: 1 − the fraction of the run
  during which no region process was up (kill → ready again, for every region at once).
- **not served, by cause**: ${study.points
    .map(
      (p) =>
        `N=${p.n} P=${p.p}: ${
          Object.entries(p.unservedBy)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ') || 'none'
        }`,
    )
    .join('; ')}.
- **failover**: per kill while another region was up, from the kill to the end of the last request
  that failed because of it (0 when none did).
- **back after total outage**: from the first region ready again to the first request served.
- **restart**: from starting a killed region's process again to its \`/readyz\` answering 200.
- **writes lost**: acknowledged writes missing (or with another value) in any region after every
  region was restarted and had time to catch up.
`;
}

/** Measured availability (points; hollow at the realized P) and both formulas (lines), per N. */
export function availabilityChart(points: readonly AvailabilityPoint[]): string {
  const width = 720;
  const height = 460;
  const pad = { l: 70, r: 190, t: 50, b: 50 };
  const ns = [...new Set(points.map((p) => p.n))].sort();
  const xMax = Math.max(0.5, ...points.map((p) => Math.max(p.p, p.realized.meanDownFraction)));
  const lows = points.flatMap((p) => [p.servedFraction, p.model.allUp, p.model.allUpRealized]);
  const yMin = Math.max(0, Math.floor(Math.min(0.9, ...lows, ...ns.map((n) => (1 - xMax) ** n)) * 10) / 10);
  const x = (v: number) => pad.l + (v / xMax) * (width - pad.l - pad.r);
  const y = (v: number) => pad.t + ((1 - v) / (1 - yMin)) * (height - pad.t - pad.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${pad.l}" y="22" font-size="15" font-weight="bold">Availability: measured vs the two formulas</text>`,
    `<text x="${pad.l}" y="38" fill="#6b7280">each of N regions down a fraction P of the time (killed, restarted); requests through the front door</text>`,
  ];
  const yStep = 1 - yMin > 0.5 ? 0.1 : 0.05;
  for (let v = yMin; v <= 1.0001; v += yStep) {
    out.push(
      `<line x1="${pad.l}" x2="${width - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/>`,
      `<text x="${pad.l - 8}" y="${y(v) + 4}" text-anchor="end" fill="#374151">${(v * 100).toFixed(0)} %</text>`,
    );
  }
  for (let v = 0; v <= xMax + 1e-9; v += 0.1) {
    out.push(
      `<line x1="${x(v)}" x2="${x(v)}" y1="${pad.t}" y2="${height - pad.b}" stroke="#f1f2f4"/>`,
      `<text x="${x(v)}" y="${height - pad.b + 18}" text-anchor="middle" fill="#374151">${v.toFixed(1)}</text>`,
    );
  }
  out.push(
    `<text x="${(pad.l + width - pad.r) / 2}" y="${height - 10}" text-anchor="middle">P: fraction of the time each region is down</text>`,
    `<text transform="translate(18 ${(pad.t + height - pad.b) / 2}) rotate(-90)" text-anchor="middle">A: fraction of requests served</text>`,
  );
  const curve = (f: (p: number) => number) => {
    const steps = 60;
    return Array.from({ length: steps + 1 }, (_, i) => {
      const p = (xMax * i) / steps;
      return `${i === 0 ? 'M' : 'L'}${x(p).toFixed(1)},${y(Math.max(yMin, f(p))).toFixed(1)}`;
    }).join('');
  };
  let legendY = pad.t + 4;
  const legend = (draw: string, label: string) => {
    out.push(
      draw.replaceAll('LY', String(legendY)),
      `<text x="${width - pad.r + 34}" y="${legendY + 4}">${esc(label)}</text>`,
    );
    legendY += 20;
  };
  const lx = width - pad.r + 8;
  for (const n of ns) {
    const c = color(n);
    out.push(`<path d="${curve((p) => 1 - p ** n)}" fill="none" stroke="${c}" stroke-width="2"/>`);
    out.push(
      `<path d="${curve((p) => (1 - p) ** n)}" fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="6 4"/>`,
    );
    legend(
      `<line x1="${lx}" x2="${lx + 22}" y1="LY" y2="LY" stroke="${c}" stroke-width="2"/>`,
      `1 − P^${n} (N=${n})`,
    );
    legend(
      `<line x1="${lx}" x2="${lx + 22}" y1="LY" y2="LY" stroke="${c}" stroke-width="2" stroke-dasharray="6 4"/>`,
      `(1 − P)^${n} (N=${n})`,
    );
    legend(`<circle cx="${lx + 11}" cy="LY" r="5" fill="${c}"/>`, `measured, N=${n}`);
  }
  legend(
    `<circle cx="${lx + 11}" cy="LY" r="5" fill="#fff" stroke="#374151" stroke-width="1.5"/>`,
    'same, at the realized P',
  );
  for (const p of points) {
    const c = color(p.n);
    const xa = x(p.p);
    const xr = x(p.realized.meanDownFraction);
    const yv = y(Math.max(yMin, p.servedFraction));
    out.push(
      `<line x1="${xa}" x2="${xr}" y1="${yv}" y2="${yv}" stroke="${c}" stroke-width="1" stroke-dasharray="2 2"/>`,
      `<circle cx="${xr}" cy="${yv}" r="5" fill="#fff" stroke="${c}" stroke-width="1.5"/>`,
      `<circle cx="${xa}" cy="${yv}" r="5" fill="${c}"><title>N=${p.n} P=${p.p}: ${pct(p.servedFraction)} served</title></circle>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
