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
import { BACKENDS, initBackend, parseBackend } from "../model/engine.ts";
import { benchPhases } from "./bench_phases.ts";
import { type CellReport, runCells } from "./cell_runner.ts";
import { type CliSpec, type ParsedArgs, runCli } from "./cli.ts";
import { RESULTS_DIR, writeLeaderboard } from "./leaderboard.ts";
import { expandSuite, parseShard, selectShard } from "./suite.ts";
import { loadSuite, SUITES } from "./suites/mod.ts";

export const BENCH_CLI = {
  name: "bench",
  synopsis: "deno task bench [--suite NAME] [--shard i/n] [--backend NAME] [--list]",
  summary: "Run a suite's cells (skipping finished ones) and rebuild the leaderboard from every record.",
  flags: {
    suite: {
      type: "string",
      arg: "NAME",
      default: "default",
      help: `${Object.keys(SUITES).join(", ")} (default default)`,
    },
    shard: { type: "string", arg: "i/n", help: "run every n-th cell starting at the i-th (1-based), for CI matrices" },
    backend: { type: "string", arg: BACKENDS.join("|"), help: "tensor backend (default: the suite's)" },
    records: { type: "string", arg: "DIR", help: "where run records go (default results/runs)" },
    out: { type: "string", arg: "DIR", help: "where the leaderboard files go (default results)" },
    checkpoints: {
      type: "string",
      arg: "DIR",
      help: "pretraining checkpoints, one folder per identity (default .cache/bench/pretrain)",
    },
    list: { type: "boolean", help: "print the cells and exit" },
    "allow-missing": {
      type: "boolean",
      help: "skip (and record) unlabelled images, unknown classes, missing annotations, unreadable files",
    },
  },
} as const satisfies CliSpec;

function checkArgs({ values }: ParsedArgs<typeof BENCH_CLI>) {
  const suite = loadSuite(values.suite);
  if (values.backend) suite.runtime.backend = parseBackend(values.backend);
  return {
    suite,
    shard: values.shard ? parseShard(values.shard) : null,
    list: values.list ?? false,
    allowMissing: values["allow-missing"] ?? false,
    recordsDir: values.records ?? `${RESULTS_DIR}/runs`,
    outDir: values.out ?? RESULTS_DIR,
    checkpointsDir: values.checkpoints ?? ".cache/bench/pretrain",
  };
}

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

async function benchMain(o: ReturnType<typeof checkArgs>): Promise<number> {
  const t0 = performance.now();
  const { suite, shard } = o;
  const all = expandSuite(suite);
  const cells = shard ? selectShard(all, shard) : all;
  const shardText = shard ? ` in shard ${shard.index}/${shard.count}` : "";
  console.log(
    `bench: suite '${suite.name}' (${suite.description}): ${cells.length} of ${all.length} cells${shardText}, ` +
      `backend ${suite.runtime.backend}`,
  );
  if (o.list) {
    for (const c of cells) console.log(`  ${c.name} ${c.model.preset} seed ${c.seed}`);
    return 0;
  }
  await initBackend(suite.runtime.backend);
  const phases = benchPhases({ allowMissing: o.allowMissing, workers: suite.runtime.workers });
  const reports = await runCells(cells, phases, {
    recordsDir: `${o.recordsDir}/${suite.name}`,
    checkpointsDir: o.checkpointsDir,
  });
  console.log(`\n${summaryTable(reports)}\n`);
  if (!shard) {
    const lb = await writeLeaderboard(o.recordsDir, o.outDir);
    console.log(
      `leaderboard: ${lb.rows.length} rows -> ${o.outDir}/leaderboard.{json,html}, ${o.outDir}/LEADERBOARD.md`,
    );
    for (const n of lb.notes.slice(1)) console.log(`  ${n}`);
  }
  const failed = reports.filter((r) => r.status === "failed").length;
  console.log(
    `bench: ${reports.length - failed} of ${reports.length} cells done, ${failed} failed, ` +
      `wall ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await runCli(BENCH_CLI, Deno.args, { check: checkArgs, run: benchMain }));
