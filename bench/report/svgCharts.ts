/**
 * Small SVG chart generators for the bench report: grouped bars, percentile (latency distribution)
 * curves, and stacked timeline panels. Plain strings, no dependencies, readable without a browser
 * (rsvg-convert or ImageMagick render them).
 */

export const COLORS = {
  hothot: '#d1495b',
  peer: '#2e6fba',
  /** The Debezium peer (issue 13). */
  debezium: '#3a9d5d',
  floor: '#6b7280',
  us: '#d1495b',
  eu: '#2e6fba',
  grid: '#e5e7eb',
  axis: '#374151',
  text: '#111827',
  muted: '#6b7280',
} as const;

const FONT = `font-family="DejaVu Sans, Helvetica, Arial, sans-serif"`;

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 10_000) return `${Math.round(v / 1000)}k`;
  if (a >= 1000) return `${(v / 1000).toFixed(1).replace(/\.0$/, '')}k`;
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1).replace(/\.?0+$/, '');
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  if (a === 0) return '0';
  return v.toPrecision(2);
}

/** Round tick values covering [0, max] on a linear scale. */
function linearTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Ticks of a log scale covering [min, max] with whole decades: 1-2-5 steps, or decades only when many. */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const ticks: number[] = [];
  for (let e = lo; e < hi; e++) for (const m of [1, 2, 5]) ticks.push(Number((m * 10 ** e).toPrecision(6)));
  ticks.push(Number((10 ** hi).toPrecision(6)));
  return ticks.length > 10 ? ticks.filter((t) => Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9) : ticks;
}

function header(width: number, height: number, title: string, subtitle?: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="16" y="24" font-size="15" font-weight="bold" fill="${COLORS.text}">${esc(title)}</text>`,
    subtitle ? `<text x="16" y="42" font-size="11.5" fill="${COLORS.muted}">${esc(subtitle)}</text>` : '',
  ].join('\n');
}

function legend(x: number, y: number, items: readonly { name: string; color: string; dashed?: boolean }[]): string {
  let cx = x;
  const parts: string[] = [];
  for (const it of items) {
    parts.push(
      `<line x1="${cx}" y1="${y - 4}" x2="${cx + 18}" y2="${y - 4}" stroke="${it.color}" stroke-width="3"${it.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
      `<text x="${cx + 23}" y="${y}" fill="${COLORS.text}">${esc(it.name)}</text>`,
    );
    cx += 23 + it.name.length * 6.8 + 22;
  }
  return parts.join('\n');
}

export interface BarSeries {
  readonly name: string;
  readonly color: string;
  readonly values: readonly number[];
}

export interface BarChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  readonly categories: readonly string[];
  readonly categoryLabel: string;
  readonly series: readonly BarSeries[];
  readonly yLabel: string;
  /** Text under each group (e.g. a ratio). */
  readonly groupNotes?: readonly string[];
  /** Log-scaled values (for values spanning orders of magnitude). @default false */
  readonly logScale?: boolean;
  readonly width?: number;
  readonly height?: number;
}

export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 760;
  const height = spec.height ?? 380;
  const m = { left: 72, right: 20, top: 84, bottom: spec.groupNotes ? 74 : 58 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const finite = spec.series.flatMap((s) => s.values.filter((v) => Number.isFinite(v) && (!spec.logScale || v > 0)));
  const max = Math.max(1e-9, ...finite);
  let ticks: number[];
  let y: (v: number) => number;
  if (spec.logScale) {
    ticks = logTicks(Math.max(1e-3, Math.min(...finite) / 2), max * 2);
    const lo = Math.log10(ticks[0]!);
    const hi = Math.log10(ticks[ticks.length - 1]!);
    y = (v: number) => m.top + ph - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * ph;
  } else {
    ticks = linearTicks(max * 1.12);
    const top = ticks[ticks.length - 1]!;
    y = (v: number) => m.top + ph - (v / top) * ph;
  }
  const base = spec.logScale ? ticks[0]! : 0;
  const out: string[] = [header(width, height, spec.title, spec.subtitle)];
  out.push(legend(m.left, 64, spec.series));
  for (const t of ticks) {
    out.push(
      `<line x1="${m.left}" y1="${y(t)}" x2="${width - m.right}" y2="${y(t)}" stroke="${COLORS.grid}"/>`,
      `<text x="${m.left - 6}" y="${y(t) + 4}" text-anchor="end" fill="${COLORS.muted}">${fmt(t)}</text>`,
    );
  }
  out.push(
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="${COLORS.axis}">${esc(spec.yLabel)}</text>`,
  );
  const groupW = pw / spec.categories.length;
  const barW = Math.min(56, (groupW * 0.72) / spec.series.length);
  spec.categories.forEach((cat, gi) => {
    const gx = m.left + gi * groupW + (groupW - barW * spec.series.length) / 2;
    spec.series.forEach((s, si) => {
      const v = s.values[gi] ?? Number.NaN;
      const x = gx + si * barW;
      if (Number.isFinite(v)) {
        out.push(
          `<rect x="${x + 2}" y="${y(v)}" width="${barW - 4}" height="${Math.max(0, y(base) - y(v))}" fill="${s.color}"/>`,
          `<text x="${x + barW / 2}" y="${y(v) - 5}" text-anchor="middle" font-size="11" fill="${COLORS.text}">${fmt(v)}</text>`,
        );
      }
    });
    out.push(`<text x="${m.left + gi * groupW + groupW / 2}" y="${m.top + ph + 18}" text-anchor="middle" fill="${COLORS.text}">${esc(cat)}</text>`);
    const note = spec.groupNotes?.[gi];
    if (note) {
      out.push(
        `<text x="${m.left + gi * groupW + groupW / 2}" y="${m.top + ph + 36}" text-anchor="middle" font-size="11" fill="${COLORS.muted}">${esc(note)}</text>`,
      );
    }
  });
  out.push(
    `<line x1="${m.left}" y1="${y(base)}" x2="${width - m.right}" y2="${y(base)}" stroke="${COLORS.axis}"/>`,
    `<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle" fill="${COLORS.axis}">${esc(spec.categoryLabel)}</text>`,
    '</svg>',
  );
  return out.join('\n');
}

export interface CurveSeries {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  /** [percentile 0–100, value] */
  readonly curve: readonly (readonly [number, number])[];
}

export interface PercentileChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  readonly series: readonly CurveSeries[];
  readonly yLabel: string;
  readonly width?: number;
  readonly height?: number;
}

/** Value by percentile on a "nines" axis (0, 90, 99, 99.9, 99.99, max), log-scaled values. */
export function percentileChart(spec: PercentileChartSpec): string {
  const width = spec.width ?? 760;
  const height = spec.height ?? 400;
  const m = { left: 72, right: 48, top: 84, bottom: 52 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const MAX_X = 4.6;
  const nines = (p: number) => (p >= 100 ? MAX_X : Math.min(4, -Math.log10(1 - p / 100)));
  const values = spec.series.flatMap((s) => s.curve.map(([, v]) => v)).filter((v) => Number.isFinite(v) && v > 0);
  const vmin = Math.max(0.01, Math.min(...values) / 1.3);
  const vmax = Math.max(vmin * 10, Math.max(...values) * 1.3);
  const ticks = logTicks(vmin, vmax);
  const lo = Math.log10(Math.min(vmin, ticks[0]!));
  const hi = Math.log10(Math.max(vmax, ticks[ticks.length - 1]!));
  const x = (p: number) => m.left + (nines(p) / MAX_X) * pw;
  const y = (v: number) => m.top + ph - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * ph;
  const out: string[] = [header(width, height, spec.title, spec.subtitle)];
  out.push(legend(m.left, 64, spec.series));
  for (const t of ticks) {
    out.push(
      `<line x1="${m.left}" y1="${y(t)}" x2="${width - m.right}" y2="${y(t)}" stroke="${COLORS.grid}"/>`,
      `<text x="${m.left - 6}" y="${y(t) + 4}" text-anchor="end" fill="${COLORS.muted}">${fmt(t)}</text>`,
    );
  }
  const xTicks: [number, string][] = [
    [0, '0%'],
    [50, 'p50'],
    [90, 'p90'],
    [99, 'p99'],
    [99.9, 'p99.9'],
    [99.99, 'p99.99'],
    [100, 'max'],
  ];
  for (const [p, label] of xTicks) {
    out.push(
      `<line x1="${x(p)}" y1="${m.top}" x2="${x(p)}" y2="${m.top + ph}" stroke="${COLORS.grid}"/>`,
      `<text x="${x(p)}" y="${m.top + ph + 18}" text-anchor="middle" fill="${COLORS.text}">${label}</text>`,
    );
  }
  const placed: { x: number; y: number }[] = []; // value labels already drawn, to avoid overlaps
  for (const s of spec.series) {
    const pts = s.curve.filter(([, v]) => Number.isFinite(v)).map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`);
    if (pts.length === 0) continue;
    out.push(
      `<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`,
    );
    for (const [p, v] of s.curve) {
      if ([50, 99, 99.9, 100].includes(p) && Number.isFinite(v)) {
        // Above the point, or below it when another label sits there already.
        const clash = placed.some((l) => Math.abs(l.x - x(p)) < 1 && Math.abs(l.y - (y(v) - 6)) < 13);
        const ly = clash ? y(v) + 16 : y(v) - 6;
        placed.push({ x: x(p), y: ly });
        out.push(
          `<circle cx="${x(p)}" cy="${y(v)}" r="3.5" fill="${s.color}"/>`,
          `<text x="${p === 100 ? x(p) - 6 : x(p) + 6}" y="${ly}"${p === 100 ? ' text-anchor="end"' : ''} font-size="10.5" font-weight="bold" fill="${s.color}" stroke="#ffffff" stroke-width="3" paint-order="stroke">${fmt(v)}</text>`,
        );
      }
    }
  }
  out.push(
    `<line x1="${m.left}" y1="${m.top + ph}" x2="${width - m.right}" y2="${m.top + ph}" stroke="${COLORS.axis}"/>`,
    `<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="${COLORS.axis}"/>`,
    `<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle" fill="${COLORS.axis}">${esc(spec.yLabel)}</text>`,
    `<text x="${m.left + pw / 2}" y="${height - 10}" text-anchor="middle" fill="${COLORS.axis}">percentile (log scale of nines)</text>`,
    '</svg>',
  );
  return out.join('\n');
}

export interface TimelineSeries {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly values: readonly (number | null)[];
}

export interface TimelinePanel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly TimelineSeries[];
}

export interface TimelineChartSpec {
  readonly title: string;
  readonly subtitle?: string;
  /** x values (seconds), one per value in each series. */
  readonly t: readonly number[];
  readonly panels: readonly TimelinePanel[];
  /** Vertical markers (e.g. cut, heal). */
  readonly markers: readonly { readonly at: number; readonly label: string; readonly color?: string }[];
  /** Shaded span (e.g. the partition). */
  readonly span?: { readonly from: number; readonly to: number; readonly label: string };
  readonly width?: number;
  readonly panelHeight?: number;
  /** @default 'time since start of the scenario, s' */
  readonly xLabel?: string;
}

export function timelineChart(spec: TimelineChartSpec): string {
  const width = spec.width ?? 900;
  const panelH = spec.panelHeight ?? 170;
  const gap = 46;
  const m = { left: 78, right: 24, top: 64, bottom: 44 };
  const height = m.top + spec.panels.length * panelH + (spec.panels.length - 1) * gap + m.bottom;
  const pw = width - m.left - m.right;
  const tMax = Math.max(1, ...spec.t);
  const x = (t: number) => m.left + (t / tMax) * pw;
  const out: string[] = [header(width, height, spec.title, spec.subtitle)];
  spec.panels.forEach((panel, i) => {
    const top = m.top + i * (panelH + gap);
    const max = Math.max(1e-9, ...panel.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v))));
    const ticks = linearTicks(max * 1.1, 4);
    const yTop = ticks[ticks.length - 1]!;
    const y = (v: number) => top + panelH - (v / yTop) * panelH;
    if (spec.span) {
      out.push(
        `<rect x="${x(spec.span.from)}" y="${top}" width="${Math.max(0, x(spec.span.to) - x(spec.span.from))}" height="${panelH}" fill="#fde68a" opacity="0.35"/>`,
      );
    }
    for (const t of ticks) {
      out.push(
        `<line x1="${m.left}" y1="${y(t)}" x2="${width - m.right}" y2="${y(t)}" stroke="${COLORS.grid}"/>`,
        `<text x="${m.left - 6}" y="${y(t) + 4}" text-anchor="end" fill="${COLORS.muted}">${fmt(t)}</text>`,
      );
    }
    out.push(
      `<text x="${m.left}" y="${top - 8}" font-weight="bold" fill="${COLORS.text}">${esc(panel.title)}</text>`,
      legend(width - m.right - panel.series.reduce((w, s) => w + 45 + s.name.length * 6.8, 0), top - 8, panel.series),
      `<text transform="translate(20 ${top + panelH / 2}) rotate(-90)" text-anchor="middle" font-size="11" fill="${COLORS.axis}">${esc(panel.yLabel)}</text>`,
    );
    for (const s of panel.series) {
      // Break the line where a value is missing.
      let path = '';
      let pen = false;
      s.values.forEach((v, k) => {
        const t = spec.t[k]!;
        if (v === null || !Number.isFinite(v)) {
          pen = false;
          return;
        }
        path += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        pen = true;
      });
      out.push(`<path d="${path.trim()}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    }
    for (const mk of spec.markers) {
      out.push(
        `<line x1="${x(mk.at)}" y1="${top}" x2="${x(mk.at)}" y2="${top + panelH}" stroke="${mk.color ?? COLORS.axis}" stroke-width="1.5" stroke-dasharray="4,3"/>`,
      );
      if (i === 0) out.push(`<text x="${x(mk.at) + 4}" y="${top + 12}" font-size="11" fill="${mk.color ?? COLORS.axis}">${esc(mk.label)}</text>`);
    }
    out.push(
      `<line x1="${m.left}" y1="${top + panelH}" x2="${width - m.right}" y2="${top + panelH}" stroke="${COLORS.axis}"/>`,
      `<line x1="${m.left}" y1="${top}" x2="${m.left}" y2="${top + panelH}" stroke="${COLORS.axis}"/>`,
    );
    for (const t of linearTicks(tMax, 10)) {
      if (t > tMax) continue;
      out.push(`<text x="${x(t)}" y="${top + panelH + 15}" text-anchor="middle" font-size="11" fill="${COLORS.muted}">${fmt(t)}</text>`);
    }
  });
  out.push(`<text x="${m.left + pw / 2}" y="${height - 10}" text-anchor="middle" fill="${COLORS.axis}">${esc(spec.xLabel ?? 'time since start of the scenario, s')}</text>`, '</svg>');
  return out.join('\n');
}
