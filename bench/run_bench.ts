/**
 * `deno task bench [--suite NAME] [--shard i/n] [--backend wasm|cpu|tensorflow|...] [--list]`
 *
 * Runs the cells of a suite (default: `default`, the embedded synthetic data on 2 CPU cores):
 * for each cell, pretrain (or reuse a finished checkpoint with the same identity, or resume an
 * interrupted one), extract features, run the probes and write one run record to
 * `results/runs/<suite>/`. Finished cells are skipped, so re-running costs seconds; killing it
 * loses nothing already written. Prints one line per cell (plus the trainer's bar) and a final
 * summary table, then rebuilds `results/leaderboard.{json,html}` and `results/LEADERBOARD.md`
 * from every record (with `--shard`, the merge job does that: `deno task leaderboard`).
 *
 * Exit status: 0 when every cell of the shard is done, 1 when any failed (the others still ran).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend, parseBackend } from "../model/engine.ts";
import { BENCH_PHASES } from "./bench_phases.ts";
import { type CellReport, runCells } from "./cell_runner.ts";
import { RESULTS_DIR, writeLeaderboard } from "./leaderboard.ts";
import { expandSuite, parseShard, selectShard } from "./suite.ts";
import { loadSuite, SUITES } from "./suites/mod.ts";

const USAGE = `usage: deno task bench [--suite NAME] [--shard i/n] [--backend wasm|cpu|tensorflow] [--list]
  --suite      one of ${Object.keys(SUITES).join(", ")} (default: default)
  --shard      run every n-th cell starting at the i-th (1-based), for CI matrices
  --backend    tensor backend (a runtime knob: not part of any identity)
  --records    where run records go (default results/runs)
  --out        where the leaderboard files go (default results)
  --checkpoints  pretraining checkpoints, one folder per identity (default .cache/bench/pretrain)
  --limit-train N, --limit-val N
               smoke runs: at most N probe-training / evaluation images (part of the identity)
  --hub-cache  download cache of released weights (suite 'released'; default .cache/hub)
  --list       print the cells and exit`;

function summaryTable(reports: CellReport[]): string {
  const rows = reports.map((r) => {
    const rec = r.record;
    const mains = rec ? rec.results.map((p) => `${p.mainScore}=${(100 * p.metrics[p.mainScore]).toFixed(1)}`) : [];
    return [
      r.cell.name,
      String(r.cell.seed),
      r.status,
      rec?.pretraining?.imagesPerSec ? rec.pretraining.imagesPerSec.toFixed(1) : "-",
      rec ? rec.timings.totalSec.toFixed(0) : "-",
      r.status === "failed" ? (r.error ?? "").split("\n")[0].slice(0, 100) : mains.join(" "),
    ];
  });
  const head = ["subject", "seed", "status", "img/s", "sec", "main metrics (%)"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join("  ");
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...rows.map(fmt)].join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      suite: { type: "string", default: "default" },
      shard: { type: "string" },
      backend: { type: "string" },
      records: { type: "string" },
      out: { type: "string" },
      checkpoints: { type: "string" },
      "limit-train": { type: "string" },
      "limit-val": { type: "string" },
      "hub-cache": { type: "string" },
      list: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const t0 = performance.now();
  try {
    const suite = loadSuite(values.suite!);
    if (values.backend) suite.runtime.backend = parseBackend(values.backend) as typeof suite.runtime.backend;
    for (const [flag, key] of [["limit-train", "limitTrain"], ["limit-val", "limitVal"]] as const) {
      const v = values[flag];
      if (v === undefined) continue;
      if (!/^[1-9]\d*$/.test(v)) throw new Error(`--${flag}: expected a positive integer, got '${v}'`);
      suite.runtime[key] = Number(v);
    }
    if (values["hub-cache"]) suite.runtime.hubCache = values["hub-cache"];
    const all = expandSuite(suite);
    const cells = values.shard ? selectShard(all, parseShard(values.shard)) : all;
    console.log(
      `bench: suite '${suite.name}' (${suite.description}): ${cells.length} of ${all.length} cells` +
        `${values.shard ? ` in shard ${values.shard}` : ""}, backend ${suite.runtime.backend}`,
    );
    if (values.list) {
      for (const c of cells) console.log(`  ${c.name} ${c.model.preset} seed ${c.seed}`);
      Deno.exit(0);
    }
    await initBackend(suite.runtime.backend);
    const recordsDir = values.records ?? `${RESULTS_DIR}/runs`;
    const reports = await runCells(cells, BENCH_PHASES, {
      recordsDir: `${recordsDir}/${suite.name}`,
      checkpointsDir: values.checkpoints ?? ".cache/bench/pretrain",
    });
    console.log(`\n${summaryTable(reports)}\n`);
    if (!values.shard) {
      const out = values.out ?? RESULTS_DIR;
      const lb = await writeLeaderboard(recordsDir, out);
      console.log(`leaderboard: ${lb.rows.length} rows -> ${out}/leaderboard.{json,html}, ${out}/LEADERBOARD.md`);
      for (const n of lb.notes.slice(1)) console.log(`  ${n}`);
    }
    const failed = reports.filter((r) => r.status === "failed").length;
    console.log(
      `bench: ${reports.length - failed} of ${reports.length} cells done, ${failed} failed, ` +
        `wall ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    Deno.exit(failed ? 1 : 0);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
