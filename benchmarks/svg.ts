/**
 * Hand-written SVG charts for the report: horizontal bars and a multi-series line chart. Pure
 * functions from data to an SVG string; no dependencies.
 */

const PALETTE = [
  '#d62728', '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22',
  '#17becf', '#393b79', '#637939',
];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export interface Bar {
  label: string;
  value: number;
  /** Drawn in the accent colour (miq). */
  accent?: boolean;
  note?: string;
  /** Spread of the runs behind `value` (a median): drawn as a whisker from min to max. */
  min?: number;
  max?: number;
  /** Bars that share a group are drawn under one heading row (the first bar of a group starts it). */
  group?: string;
}

/** Markers that tell lines apart without colour (print, colour blindness) and overlap less. */
const DASHES = ['', '6 3', '2 3', '8 3 2 3', '1 4', '10 4'];
const MARKS = ['circle', 'square', 'diamond', 'triangle'];

function mark(kind: string, x: number, y: number, color: string, cls = ''): string {
  const c = cls ? ` class="${cls}"` : '';
  if (kind === 'square') return `<rect${c} x="${(x - 3).toFixed(1)}" y="${(y - 3).toFixed(1)}" width="6" height="6" fill="${color}"/>`;
  if (kind === 'diamond') return `<path${c} d="M${x.toFixed(1)},${(y - 4).toFixed(1)} l4,4 l-4,4 l-4,-4 z" fill="${color}"/>`;
  if (kind === 'triangle') return `<path${c} d="M${x.toFixed(1)},${(y - 4).toFixed(1)} l4,7 l-8,0 z" fill="${color}"/>`;
  return `<circle${c} cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`;
}

/** A subtitle broken at its " · " separators into lines of at most `width` pixels (about 6.5 px a
 * character at 12 px sans-serif): a long one ran off the right edge. */
function subtitleLines(sub: string | undefined, width: number): string[] {
  if (!sub) return [];
  const max = Math.floor((width - 16) / 6.5);
  const lines: string[] = [];
  for (const part of sub.split(' · ')) {
    const last = lines.length ? lines[lines.length - 1]! : undefined;
    if (last !== undefined && last.length + 3 + part.length <= max) lines[lines.length - 1] = `${last} · ${part}`;
    else lines.push(part);
  }
  return lines;
}

function subtitleSvg(lines: string[]): string[] {
  return lines.map((l, i) => `<text x="8" y="${38 + i * 16}" fill="#444">${esc(l)}</text>`);
}

/** Ticks from 0 to `hi` at a round step (4 or 5 intervals): "12.5 s" steps read badly. */
function linearTicks(lo: number, hi: number): number[] {
  const span = hi - lo;
  for (const n of [5, 4, 2]) {
    const step = span / n;
    const m = step / 10 ** Math.floor(Math.log10(step));
    if ([1, 2, 5].some((x) => Math.abs(m - x) < 1e-9)) return Array.from({ length: n + 1 }, (_, k) => lo + step * k);
  }
  return Array.from({ length: 5 }, (_, k) => lo + (span * k) / 4);
}

/** `subtitle` says how to read it: the operation, "lower is better", what the whiskers are. */
export function barChart(opts: { title: string; subtitle?: string; bars: Bar[]; format: (v: number) => string }): string {
  const bars = opts.bars.filter((b) => Number.isFinite(b.value));
  const rowH = 22;
  // Wide enough for the longest label (about 7 px a character at 12 px sans-serif).
  const labelW = Math.max(170, 12 + 7 * Math.max(0, ...bars.map((b) => b.label.length)));
  const plotW = 480;
  const valueW = 140;
  const width = labelW + plotW + valueW + 10;
  const sub = subtitleLines(opts.subtitle, width);
  const top = 34 + sub.length * 16;
  const groups = bars.filter((b, i) => b.group !== undefined && (i === 0 || bars[i - 1]!.group !== b.group)).length;
  const height = top + (bars.length + groups) * rowH + 12;
  const max = niceMax(Math.max(...bars.map((b) => Math.max(b.value, b.max ?? 0)), 0));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
  );
  parts.push(...subtitleSvg(sub));
  let row = 0;
  bars.forEach((b, i) => {
    if (b.group !== undefined && (i === 0 || bars[i - 1]!.group !== b.group)) {
      parts.push(`<text x="8" y="${top + row * rowH + 15}" font-weight="bold">${esc(b.group)}</text>`);
      row++;
    }
    const y = top + row++ * rowH;
    const w = Math.max(1, (b.value / max) * plotW);
    parts.push(
      `<text x="${labelW - 6}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${b.accent ? PALETTE[0] : PALETTE[1]}"/>`,
    );
    let end = labelW + w;
    if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
      const x0 = labelW + (b.min / max) * plotW;
      const x1 = labelW + (b.max / max) * plotW;
      const cy = y + rowH / 2;
      parts.push(`<path d="M${x0.toFixed(1)},${cy} H${x1.toFixed(1)} M${x0.toFixed(1)},${cy - 5} v10 M${x1.toFixed(1)},${cy - 5} v10" stroke="#222" stroke-width="1.2" fill="none"/>`);
      end = Math.max(end, x1);
    }
    parts.push(`<text x="${(end + 5).toFixed(1)}" y="${y + 15}">${esc(opts.format(b.value))}${b.note ? ` ${esc(b.note)}` : ''}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export interface Line {
  name: string;
  values: number[];
  /** Spread of the runs behind each value (a median): a vertical whisker from min to max. */
  spread?: ({ min: number; max: number } | undefined)[];
}

/** One line per tool across steps. `logY` suits added bytes, which span orders of magnitude. */
export function lineChart(opts: {
  title: string;
  subtitle?: string;
  xLabels: string[];
  /** Numeric positions of the x labels (an axis in proportion, e.g. milliseconds); else evenly spaced. */
  xValues?: number[];
  /** Under the x axis: what it is. */
  xTitle?: string;
  lines: Line[];
  format: (v: number) => string;
  logY?: boolean;
}): string {
  const left = 80;
  const plotW = 560;
  const plotH = 260;
  const legendW = Math.max(170, 44 + 7 * Math.max(0, ...opts.lines.map((l) => l.name.length)));
  const bottom = 50;
  const width = left + plotW + legendW;
  const sub = subtitleLines(opts.subtitle, width);
  const top = 34 + sub.length * 16;
  const height = top + plotH + bottom;
  const all = opts.lines.flatMap((l) => [...l.values, ...(l.spread ?? []).flatMap((sp) => (sp ? [sp.min, sp.max] : []))]).filter((v) => Number.isFinite(v) && (!opts.logY || v > 0));
  let lo = 0;
  let hi = niceMax(Math.max(...all, 0));
  if (opts.logY) {
    lo = 10 ** Math.floor(Math.log10(Math.min(...all, hi)));
    hi = 10 ** Math.ceil(Math.log10(Math.max(...all, lo * 10)));
  }
  const yOf = (v: number) => {
    const f = opts.logY ? (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo);
    return top + plotH - f * plotH;
  };
  const n = opts.xLabels.length;
  const xv = opts.xValues;
  const xSpan = xv ? Math.max(...xv) - Math.min(...xv) || 1 : 1;
  const xOf = (i: number) => left + (xv ? ((xv[i]! - Math.min(...xv)) / xSpan) * plotW : n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
  );
  parts.push(...subtitleSvg(sub));
  const ticks: number[] = [];
  if (opts.logY) for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  else ticks.push(...linearTicks(lo, hi));
  for (const v of ticks) {
    const y = yOf(v);
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/>`,
      `<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${esc(opts.format(v))}</text>`,
    );
  }
  opts.xLabels.forEach((l, i) => {
    parts.push(`<text x="${xOf(i).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(l)}</text>`);
  });
  if (opts.xTitle) parts.push(`<text x="${left + plotW / 2}" y="${top + plotH + 38}" text-anchor="middle" fill="#444">${esc(opts.xTitle)}</text>`);
  opts.lines.forEach((line, k) => {
    const color = PALETTE[k % PALETTE.length]!;
    line.spread?.forEach((sp, i) => {
      if (!sp || !(sp.max > sp.min) || (opts.logY && !(sp.min > 0))) return;
      const x = xOf(i);
      parts.push(`<path d="M${x.toFixed(1)},${yOf(sp.min).toFixed(1)} V${yOf(sp.max).toFixed(1)} M${(x - 4).toFixed(1)},${yOf(sp.min).toFixed(1)} h8 M${(x - 4).toFixed(1)},${yOf(sp.max).toFixed(1)} h8" stroke="${color}" stroke-width="1.2" fill="none"/>`);
    });
    const pts = line.values
      .map((v, i) => (Number.isFinite(v) && (!opts.logY || v > 0) ? `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}` : ''))
      .filter(Boolean);
    const dash = DASHES[k % DASHES.length]!;
    const kind = MARKS[Math.floor(k / DASHES.length + k) % MARKS.length]!;
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${k === 0 ? 3 : 1.8}"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts.join(' ')}"/>`);
    for (const p of pts) {
      const [x, y] = p.split(',');
      parts.push(mark(kind, Number(x), Number(y), color, 'pt'));
    }
    const ly = top + 10 + k * 18;
    parts.push(
      `<line x1="${left + plotW + 8}" x2="${left + plotW + 28}" y1="${ly - 3}" y2="${ly - 3}" stroke="${color}" stroke-width="${k === 0 ? 3 : 1.8}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      mark(kind, left + plotW + 18, ly - 3, color),
      `<text x="${left + plotW + 32}" y="${ly + 1}">${esc(line.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
