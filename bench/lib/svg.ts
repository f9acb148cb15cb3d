/**
 * A small-multiples line chart as a standalone SVG string (no browser, no dependency): one panel
 * per metric, fleet size on a logarithmic x axis, each panel with its own linear y axis from 0,
 * an optional dashed target line, and the value printed at every point.
 */

export type Panel = {
  title: string;
  unit: string;
  /** One value per x; null = not measured (gap). */
  values: (number | null)[];
  /** A limit from the spec, drawn dashed (e.g. p99 ≤ 50 ms). */
  target?: { value: number; label: string };
};

const W = 300;
const H = 220;
const M = { top: 36, right: 16, bottom: 40, left: 52 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(v: number): string {
  if (v === 0) return "0";
  if (v >= 10_000) return `${Math.round(v / 1000)}k`;
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A "nice" upper bound ≥ max for the y axis. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

function panel(p: Panel, xs: readonly number[], ox: number): string {
  const iw = W - M.left - M.right;
  const ih = H - M.top - M.bottom;
  const lx0 = Math.log10(Math.min(...xs));
  const lx1 = Math.log10(Math.max(...xs));
  const x = (v: number): number => ox + M.left + (lx1 === lx0 ? iw / 2 : ((Math.log10(v) - lx0) / (lx1 - lx0)) * iw);
  const present = p.values.filter((v): v is number => v !== null && Number.isFinite(v));
  const ymax = niceMax(Math.max(...present, p.target?.value ?? 0, 0));
  const y = (v: number): number => M.top + ih - (v / ymax) * ih;
  const out: string[] = [];
  out.push(`<text x="${ox + W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
  out.push(`<text x="${ox + W / 2}" y="31" text-anchor="middle" fill="#555">${esc(p.unit)}</text>`);
  // axes and grid
  for (let k = 0; k <= 4; k++) {
    const v = (ymax * k) / 4;
    out.push(`<line x1="${ox + M.left}" x2="${ox + W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
    out.push(`<text x="${ox + M.left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${fmt(v)}</text>`);
  }
  out.push(`<line x1="${ox + M.left}" x2="${ox + M.left}" y1="${M.top}" y2="${M.top + ih}" stroke="#999"/>`);
  out.push(`<line x1="${ox + M.left}" x2="${ox + W - M.right}" y1="${M.top + ih}" y2="${M.top + ih}" stroke="#999"/>`);
  for (const v of xs) out.push(`<text x="${x(v)}" y="${M.top + ih + 16}" text-anchor="middle" fill="#555">${v.toLocaleString('en-US')}</text>`);
  out.push(`<text x="${ox + M.left + iw / 2}" y="${H - 6}" text-anchor="middle" fill="#555">hosts (log scale)</text>`);
  if (p.target !== undefined) {
    out.push(`<line x1="${ox + M.left}" x2="${ox + W - M.right}" y1="${y(p.target.value)}" y2="${y(p.target.value)}" stroke="#c33" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${ox + W - M.right}" y="${y(p.target.value) - 4}" text-anchor="end" fill="#c33">${esc(p.target.label)}</text>`);
  }
  // series
  const pts = xs.map((xv, i) => ({ xv, v: p.values[i] ?? null })).filter((q): q is { xv: number; v: number } => q.v !== null && Number.isFinite(q.v));
  if (pts.length > 1) out.push(`<polyline fill="none" stroke="#2563eb" stroke-width="2" points="${pts.map((q) => `${x(q.xv)},${y(q.v)}`).join(' ')}"/>`);
  for (const q of pts) {
    out.push(`<circle cx="${x(q.xv)}" cy="${y(q.v)}" r="3.5" fill="#2563eb"/>`);
    out.push(`<text x="${x(q.xv)}" y="${y(q.v) - 8}" text-anchor="middle">${fmt(q.v)}</text>`);
  }
  return out.join('\n');
}

/** The chart: `panels` side by side over the same x values (fleet sizes). */
export function smallMultiplesSvg(title: string, subtitle: string, xs: readonly number[], panels: readonly Panel[]): string {
  const width = W * panels.length;
  const height = H + 44;
  const body = panels.map((p, i) => `<g transform="translate(0,44)">\n${panel(p, xs, i * W)}\n</g>`).join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="12" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="12" y="36" fill="#555">${esc(subtitle)}</text>`,
    body,
    `</svg>`,
    '',
  ].join('\n');
}
