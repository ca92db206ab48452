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
}

export function barChart(opts: { title: string; bars: Bar[]; format: (v: number) => string }): string {
  const bars = opts.bars.filter((b) => Number.isFinite(b.value));
  const rowH = 22;
  const labelW = 170;
  const plotW = 480;
  const valueW = 140;
  const top = 34;
  const width = labelW + plotW + valueW + 10;
  const height = top + bars.length * rowH + 12;
  const max = niceMax(Math.max(...bars.map((b) => b.value), 0));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
  );
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, (b.value / max) * plotW);
    parts.push(
      `<text x="${labelW - 6}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${b.accent ? PALETTE[0] : PALETTE[1]}"/>`,
      `<text x="${(labelW + w + 5).toFixed(1)}" y="${y + 15}">${esc(opts.format(b.value))}${b.note ? ` ${esc(b.note)}` : ''}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

export interface Line {
  name: string;
  values: number[];
}

/** One line per tool across steps. `logY` suits added bytes, which span orders of magnitude. */
export function lineChart(opts: {
  title: string;
  xLabels: string[];
  lines: Line[];
  format: (v: number) => string;
  logY?: boolean;
}): string {
  const left = 80;
  const plotW = 560;
  const plotH = 260;
  const top = 34;
  const legendW = 170;
  const bottom = 50;
  const width = left + plotW + legendW;
  const height = top + plotH + bottom;
  const all = opts.lines.flatMap((l) => l.values).filter((v) => Number.isFinite(v) && (!opts.logY || v > 0));
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
  const xOf = (i: number) => left + (n <= 1 ? plotW / 2 : (i / (n - 1)) * plotW);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${esc(opts.title)}</text>`,
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
  );
  const ticks: number[] = [];
  if (opts.logY) for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  else for (let k = 0; k <= 4; k++) ticks.push(lo + ((hi - lo) * k) / 4);
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
  opts.lines.forEach((line, k) => {
    const color = PALETTE[k % PALETTE.length]!;
    const pts = line.values
      .map((v, i) => (Number.isFinite(v) && (!opts.logY || v > 0) ? `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}` : ''))
      .filter(Boolean);
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="${k === 0 ? 3 : 1.5}" points="${pts.join(' ')}"/>`);
    for (const p of pts) {
      const [x, y] = p.split(',');
      parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
    }
    const ly = top + 10 + k * 18;
    parts.push(
      `<rect x="${left + plotW + 12}" y="${ly - 8}" width="12" height="10" fill="${color}"/>`,
      `<text x="${left + plotW + 30}" y="${ly + 1}">${esc(line.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}
