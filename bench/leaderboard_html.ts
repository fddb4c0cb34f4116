/**
 * `results/leaderboard.html`: one self-contained page (inline CSS and SVG, no scripts) with,
 * per group, the Markdown table's numbers, the pretraining curves of every logged loss component
 * (CAPI: loss, loss_capi, loss_clustering, target_entropy; MAE, SimMIM: loss; mean ± std over seeds),
 * every main metric per subject with each seed shown, and budget vs. main metric when the
 * group holds several budgets (baselines as dashed lines).
 *
 * @module
 */
import { formatMetric } from "./leaderboard_markdown.ts";
import type { Leaderboard, LeaderboardRow } from "./leaderboard_schema.ts";
import { barChart, esc, lineChart, PALETTE, type Series } from "./svg_charts.ts";

function table(rows: LeaderboardRow[], mains: string[]): string {
  const head = ["subject", "pretraining", "seeds", ...mains].map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((r) => {
    const budget = r.budget.steps ? `${r.budget.steps} × ${r.budget.batchSize}` : "none";
    const cells = mains.map((m) => `<td>${esc(formatMetric(r.metrics[m]).replaceAll("**", ""))}</td>`).join("");
    const cls = mains.some((m) => r.metrics[m]?.mark === "best") ? ' class="best"' : "";
    return `<tr${cls}><td>${esc(r.subject)}</td><td>${budget}</td><td>${r.seeds.join(", ")}</td>${cells}</tr>`;
  }).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** The loss components the rows logged: `loss` first, then the others by name. */
export function curveComponents(rows: LeaderboardRow[]): string[] {
  const names = new Set(rows.flatMap((r) => Object.keys(r.curves)));
  if (rows.some((r) => r.lossCurve.length > 0)) names.add("loss");
  return [...names].sort((a, b) => (a === "loss" ? -1 : b === "loss" ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

function groupSection(lb: Leaderboard, group: string): string {
  const rows = lb.rows.filter((r) => r.group === group);
  const mains = [...new Set(rows.flatMap((r) => r.mainScores))];
  const verdict = lb.notes.filter((n) => n.startsWith(`${group}:`)).map((n) => n.slice(group.length + 2)).join(" ");
  const parts = [`<section><h2>${esc(group)}</h2><p class="verdict">${esc(verdict)}</p>`, table(rows, mains)];

  // One chart per method and logged loss component (their scales are unrelated), one line per
  // budget: mean over seeds with a ± std band. Rows from records without component curves show `loss`.
  const pre = rows.filter((r) => r.lossCurve.length > 0 || Object.keys(r.curves).length > 0);
  for (const subject of [...new Set(pre.map((r) => r.subject))]) {
    const mine = pre.filter((r) => r.subject === subject);
    for (const component of curveComponents(mine)) {
      const series: Series[] = mine.map((r, i) => ({
        label: `${subject} ${r.budget.steps}×${r.budget.batchSize}`,
        color: mine.length > 1 ? PALETTE[i % PALETTE.length] : undefined, // budgets of one method apart
        points: (r.curves[component] ?? (component === "loss" ? r.lossCurve : []))
          .map((p) => ({ x: p.step, y: p.mean, lo: p.mean - p.std, hi: p.mean + p.std })),
      })).filter((s) => s.points.length > 0);
      parts.push(
        lineChart(`pretraining ${component}: ${subject} (mean ± std over seeds)`, series, "step", component),
      );
    }
  }

  // Charts show measurements only: a flagged metric (not converged, constant prediction) is left out.
  const measured = (r: LeaderboardRow, m: string) => r.metrics[m] && r.metrics[m].mark !== "not_measured";
  for (const m of mains) {
    const data = rows.filter((r) => measured(r, m)).map((r) => ({
      label: r.subject,
      note: r.budget.steps ? `(${r.budget.steps}×${r.budget.batchSize})` : "",
      ...r.metrics[m],
    }));
    if (data.length) parts.push(barChart(`${m} per subject (bar: mean, dots: seeds, line: min–max)`, data, m));
  }

  const budgets = new Set(rows.filter((r) => r.subjectKind === "pretrained").map((r) => r.budget.imagesSeen));
  if (budgets.size > 1) {
    for (const m of mains) {
      const series: Series[] = [];
      const pre = rows.filter((r) => r.subjectKind === "pretrained" && measured(r, m));
      const xs = [...budgets].sort((a, b) => a - b);
      for (const name of [...new Set(pre.map((r) => r.subject))]) {
        series.push({
          label: name,
          points: pre.filter((r) => r.subject === name).map((r) => ({
            x: r.budget.imagesSeen,
            y: r.metrics[m].mean,
            lo: r.metrics[m].min,
            hi: r.metrics[m].max,
          })),
        });
      }
      for (const b of rows.filter((r) => r.subjectKind !== "pretrained" && measured(r, m))) {
        series.push({
          label: b.subject,
          dashed: true,
          points: [xs[0], xs.at(-1)!].map((x) => ({ x, y: b.metrics[m].mean })),
        });
      }
      parts.push(lineChart(`${m} vs pretraining budget`, series, "images seen", m));
    }
  }
  parts.push("</section>");
  return parts.join("\n");
}

/** Render the page. */
export function leaderboardHtml(lb: Leaderboard): string {
  const groups = [...new Set(lb.rows.map((r) => r.group))];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MIM benchmark leaderboard</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
tr.best td{background:#f3f8ff}.verdict{background:#fff8e6;padding:.5em;border-left:4px solid #e0a800}
svg.chart{display:block;margin:1em 0;border:1px solid #eee}
</style></head><body>
<h1>MIM benchmark leaderboard</h1>
<p>Generated by <code>deno task leaderboard</code> from run records; percentages are mean ± std [min–max] over
seeds. ${esc(lb.notes[0])}</p>
${groups.map((g) => groupSection(lb, g)).join("\n")}
${groups.length ? "" : "<p>No run records yet: run <code>deno task bench</code>.</p>"}
</body></html>
`;
}
