/**
 * Pretraining curves, from the trainer's log to the page: `curvesFromLog` reads every logged loss
 * component (known answers: resumed steps, non-finite values, schedule values left out), records
 * validate them, the leaderboard averages each component over seeds, and the HTML draws one chart
 * per method and component.
 *
 * @module
 */
import assert from "node:assert/strict";
import { curvesFromLog } from "./bench_phases.ts";
import { FAKE_SUITE_TWO_BUDGETS, runFakeCells } from "./fake_phases.ts";
import { buildLeaderboard } from "./leaderboard_build.ts";
import { leaderboardHtml } from "./leaderboard_html.ts";
import { parseRunRecord, readRunRecords } from "./run_record.ts";

const LOG = [
  { step: 10, loss: 9, loss_capi: 4, loss_clustering: 5, target_entropy: 2, lr: 1e-4, momentum: 1, img_per_s: 30 },
  { step: 20, loss: 8, loss_capi: 3.5, loss_clustering: 4.5, target_entropy: null, lr: 2e-4, momentum: 0.99 },
  { step: 30, loss: 7.5, loss_capi: 3.4, loss_clustering: 4.1, target_entropy: 2.2, lr: 3e-4, momentum: 0.99 },
  // a resume re-logs step 20 (identical on deterministic backends): the later line wins
  { step: 20, loss: 8.25, loss_capi: 3.5, loss_clustering: 4.75, target_entropy: 2.1, lr: 2e-4, momentum: 0.99 },
].map((l) => JSON.stringify({ ...l, time: "2026-12-01T00:00:00.000Z" })).join("\n") + "\n";

Deno.test("curvesFromLog: every loss component at every logged step, schedule values and bookkeeping left out", () => {
  const c = curvesFromLog(LOG, ["lr", "momentum"]);
  assert.deepEqual(c.steps, [10, 20, 30]);
  assert.deepEqual(Object.keys(c.components), ["loss", "loss_capi", "loss_clustering", "target_entropy"]);
  assert.deepEqual(c.components.loss, [9, 8.25, 7.5]);
  assert.deepEqual(c.components.loss_clustering, [5, 4.75, 4.1]);
  assert.deepEqual(c.components.target_entropy, [2, 2.1, 2.2]);
  const nan = curvesFromLog(JSON.stringify({ step: 1, loss: null, img_per_s: 1 }) + "\n");
  assert.deepEqual(nan.components, { loss: [null] }, "a non-finite loss (logged as null) stays a gap");
});

Deno.test("records keep the curves; misaligned or unordered curves are refused, naming the key", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_curves_test_" });
  await runFakeCells(root);
  const records = await readRunRecords(`${root}/runs`);
  const capi = records.find((r) => r.record.row.subject === "capi" && r.record.seed === 0)!.record;
  const curves = capi.pretraining!.curves!;
  assert.deepEqual(Object.keys(curves.components), ["loss", "loss_capi", "loss_clustering", "target_entropy"]);
  assert.deepEqual(curves.components.loss, capi.pretraining!.lossCurve.map((p) => p.loss));
  const bad = (c: unknown) => ({ ...capi, pretraining: { ...capi.pretraining, curves: c } });
  assert.throws(
    () => parseRunRecord("r.json", bad({ ...curves, components: { loss: [1] } })),
    /'r\.json' is not a valid run record[\s\S]*1 values for 5 steps[\s\S]*components/,
  );
  assert.throws(() => parseRunRecord("r.json", bad({ ...curves, steps: [1, 3, 2, 4, 5] })), /steps must ascend/);

  // Leaderboard: each component averaged over the two seeds at every logged step.
  const lb = buildLeaderboard(records);
  const row = lb.rows.find((r) => r.subject === "capi")!;
  const seeds = records.filter((r) => r.record.row.subject === "capi").map((r) => r.record.pretraining!.curves!);
  assert.equal(seeds.length, 2);
  row.curves.loss_clustering.forEach((p, i) => {
    const vals = seeds.map((c) => c.components.loss_clustering[i]!);
    assert.equal(p.step, seeds[0].steps[i]);
    assert.ok(Math.abs(p.mean - (vals[0] + vals[1]) / 2) < 1e-12);
    assert.ok(Math.abs(p.std - Math.abs(vals[0] - vals[1]) / Math.SQRT2) < 1e-12);
  });
  assert.deepEqual(Object.keys(lb.rows.find((r) => r.subject === "mae")!.curves), ["loss"]);
  assert.deepEqual(lb.rows.find((r) => r.subject === "raw_pixels")!.curves, {});

  // HTML: one chart per method and component, titled by both.
  const html = leaderboardHtml(lb);
  for (const c of ["loss", "loss_capi", "loss_clustering", "target_entropy"]) {
    assert.match(html, new RegExp(`pretraining ${c}: capi \\(mean ± std over seeds\\)`));
  }
  assert.match(html, /pretraining loss: mae/);
  assert.doesNotMatch(html, /pretraining loss_clustering: mae/);
  assert.equal((html.match(/<svg /g) ?? []).length, 5 + 2, "5 curve charts, 2 metric bar charts");
  await Deno.remove(root, { recursive: true });
});

Deno.test("rows built from records without curves (written before them) still draw their loss", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_curves_test_" });
  await runFakeCells(root);
  const records = (await readRunRecords(`${root}/runs`)).map(({ path, record }) => {
    if (!record.pretraining) return { path, record };
    const { curves: _, ...pretraining } = record.pretraining;
    return { path, record: parseRunRecord(path, { ...record, pretraining }) };
  });
  const lb = buildLeaderboard(records);
  assert.deepEqual(lb.rows.find((r) => r.subject === "capi")!.curves, {});
  const html = leaderboardHtml(lb);
  assert.match(html, /pretraining loss: capi/);
  assert.doesNotMatch(html, /loss_clustering/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("the budgets of one method get distinct colours in its curve charts", async () => {
  const root = await Deno.makeTempDir({ prefix: "bench_curves_test_" });
  await runFakeCells(root, FAKE_SUITE_TWO_BUDGETS);
  const html = leaderboardHtml(buildLeaderboard(await readRunRecords(`${root}/runs`)));
  const chart = html.split("<svg ").find((c) => c.includes("pretraining loss_clustering: capi"))!;
  const strokes = new Set([...chart.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]));
  assert.equal(strokes.size, 2, "capi 5×4 and capi 8×4 are told apart");
  await Deno.remove(root, { recursive: true });
});
