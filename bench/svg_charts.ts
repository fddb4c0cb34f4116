/**
 * Minimal inline-SVG charts for the self-contained HTML leaderboard: a dot-and-whisker bar
 * chart (mean bar, one dot per seed, min-max whisker) and a line chart with optional bands.
 * No scripts, no external assets: the page renders offline and in headless browsers.
 *
 * @module
 */

const W = 640, H = 280, M = { left: 56, right: 16, top: 28, bottom: 64 };
export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

/** Escape text for HTML and SVG content and attributes. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A stable colour per series name (same name, same colour on every chart). */
export function colorFor(label: string): string {
  const name = label.split(" ")[0];
  if (name.startsWith("random_init")) return "#999999";
  if (name === "raw_pixels") return "#444444";
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function niceRange(lo: number, hi: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi - lo < 1e-12) return [lo - 0.5 * (Math.abs(lo) || 1), hi + 0.5 * (Math.abs(hi) || 1)];
  const pad = 0.05 * (hi - lo);
  return [lo - pad, hi + pad];
}

function axes(title: string, yLo: number, yHi: number, yLabel: string, xLabel: string): string[] {
  const parts = [
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text x="14" y="${(M.top + H - M.bottom) / 2}" font-size="11" text-anchor="middle" ` +
    `transform="rotate(-90 14 ${(M.top + H - M.bottom) / 2})">${esc(yLabel)}</text>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 6}" font-size="11" text-anchor="middle">${esc(xLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = yLo + (i / 4) * (yHi - yLo);
    const y = H - M.bottom - (i / 4) * (H - M.top - M.bottom);
    parts.push(
      `<line x1="${M.left - 4}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${y + 4}" font-size="10" text-anchor="end">${v.toPrecision(3)}</text>`,
    );
  }
  return parts;
}

export interface BarDatum {
  label: string;
  mean: number;
  min: number;
  max: number;
  values: number[];
  note?: string;
}

/** Mean bars with every seed as a dot and the min-max range as a whisker. */
export function barChart(title: string, data: BarDatum[], yLabel: string): string {
  const [yLo, yHi] = niceRange(Math.min(0, ...data.map((d) => d.min)), Math.max(...data.map((d) => d.max), 0));
  const y = (v: number) => H - M.bottom - ((v - yLo) / (yHi - yLo)) * (H - M.top - M.bottom);
  const slot = (W - M.left - M.right) / Math.max(1, data.length);
  const parts = axes(title, yLo, yHi, yLabel, "");
  data.forEach((d, i) => {
    const cx = M.left + slot * (i + 0.5), bw = Math.min(40, slot * 0.6), c = colorFor(d.label);
    parts.push(
      `<rect x="${cx - bw / 2}" y="${Math.min(y(d.mean), y(0))}" width="${bw}" height="${
        Math.abs(y(0) - y(d.mean))
      }" fill="${c}" fill-opacity="0.35"><title>${esc(`${d.label}: ${d.mean.toFixed(4)}`)}</title></rect>`,
      `<line x1="${cx}" y1="${y(d.min)}" x2="${cx}" y2="${y(d.max)}" stroke="${c}" stroke-width="2"/>`,
      ...d.values.map((v, j) =>
        `<circle cx="${cx + (j - (d.values.length - 1) / 2) * 5}" cy="${y(v)}" r="3" fill="${c}"/>`
      ),
      `<text x="${cx}" y="${H - M.bottom + 14}" font-size="10" text-anchor="end" ` +
        `transform="rotate(-25 ${cx} ${H - M.bottom + 14})">${esc(d.label + (d.note ? ` ${d.note}` : ""))}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${
    parts.join("")
  }</svg>`;
}

export interface Series {
  label: string;
  points: { x: number; y: number; lo?: number; hi?: number }[];
  dashed?: boolean;
  /** Overrides the per-name colour (series of one method in one chart, e.g. its budgets). */
  color?: string;
}

/** Lines (with a shaded lo-hi band where given) and a legend. */
export function lineChart(title: string, series: Series[], xLabel: string, yLabel: string): string {
  const all = series.flatMap((s) => s.points);
  const [xLo, xHi] = niceRange(Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x)));
  const [yLo, yHi] = niceRange(Math.min(...all.map((p) => p.lo ?? p.y)), Math.max(...all.map((p) => p.hi ?? p.y)));
  const x = (v: number) => M.left + ((v - xLo) / (xHi - xLo)) * (W - M.left - M.right);
  const y = (v: number) => H - M.bottom - ((v - yLo) / (yHi - yLo)) * (H - M.top - M.bottom);
  const parts = axes(title, yLo, yHi, yLabel, xLabel);
  for (let i = 0; i <= 4; i++) {
    const v = xLo + (i / 4) * (xHi - xLo);
    parts.push(
      `<text x="${x(v)}" y="${H - M.bottom + 14}" font-size="10" text-anchor="middle">${Math.round(v)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const c = s.color ?? colorFor(s.label);
    if (s.points.some((p) => p.lo !== undefined)) {
      const upper = s.points.map((p) => `${x(p.x)},${y(p.hi ?? p.y)}`);
      const lower = s.points.map((p) => `${x(p.x)},${y(p.lo ?? p.y)}`).reverse();
      parts.push(`<polygon points="${[...upper, ...lower].join(" ")}" fill="${c}" fill-opacity="0.15"/>`);
    }
    parts.push(
      `<polyline points="${s.points.map((p) => `${x(p.x)},${y(p.y)}`).join(" ")}" fill="none" stroke="${c}" ` +
        `stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5 3"' : ""}/>`,
      `<rect x="${W - M.right - 150}" y="${M.top + 4 + i * 14}" width="10" height="3" fill="${c}"/>`,
      `<text x="${W - M.right - 136}" y="${M.top + 8 + i * 14}" font-size="10">${esc(s.label)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${
    parts.join("")
  }</svg>`;
}
