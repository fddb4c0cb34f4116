/**
 * `deno task bench [--suite NAME] [--shard i/n] [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME]
 *   [--list | --plan]
 *   [--allow-missing] [--reuse-from COMMIT]` (`--help` lists every flag)
 *
 * Runs the cells of a suite (default: `default`, the embedded synthetic data on 2 CPU cores):
 * for each cell, pretrain (or reuse a finished checkpoint with the same pretraining identity, or
 * resume an interrupted one), extract features, run the probes and write one run record to
 * `results/runs/<suite>/`. A finished cell is skipped when its record was computed by the same
 * result-computing code, engine and libraries; otherwise it re-runs and the log says why
 * (`--plan` only says it; `--reuse-from COMMIT` keeps such records, recorded as reused). Data is
 * read strictly: problems stop the run naming their paths unless `--allow-missing`. Killing it
 * loses nothing already written. Prints one line per cell (plus the trainer's bar) and a final
 * summary table, then rebuilds `results/leaderboard.{json,html}` and `results/LEADERBOARD.md`
 * from every record (with `--shard`, the merge job does that: `deno task leaderboard`).
 *
 * Exit status: 0 when every cell of the shard is done, 1 when any failed (the others still ran)
 * or the data has problems, 2 on a refused command line (one line and the usage, nothing run).
 *
 * @module
 */
import {
  describeChoice,
  ENGINE_FLAG_HELP,
  type EngineChoice,
  parseEngineChoice,
  type StartedEngine,
  startEngine,
} from "../model/engine_choice.ts";
import { tfEngineDescription } from "../model/tf_train_engine.ts";
import { benchPhases } from "./bench_phases.ts";
import { type CellReport, runCells, type RunContext } from "./cell_runner.ts";
import { type CliSpec, intFlag, type ParsedArgs, runCli, UsageError } from "./cli.ts";
import { codeVersion } from "./code_version.ts";
import { decoderVersions } from "./provenance.ts";
import { RESULTS_DIR, writeLeaderboard } from "./leaderboard.ts";
import { ciMatrix, expandSuite, parseShard, selectShard } from "./suite.ts";
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
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default: the suite's)` },
    records: { type: "string", arg: "DIR", help: "where run records go (default results/runs)" },
    out: { type: "string", arg: "DIR", help: "where the leaderboard files go (default results)" },
    checkpoints: {
      type: "string",
      arg: "DIR",
      help: "pretraining checkpoints, one folder per identity (default .cache/bench/pretrain)",
    },
    "limit-train": {
      type: "string",
      arg: "N",
      help: "smoke runs: at most N probe-training images (part of the identity)",
    },
    "limit-val": { type: "string", arg: "N", help: "smoke runs: at most N evaluation images (part of the identity)" },
    "hub-cache": { type: "string", arg: "DIR", help: "download cache of released weights (default .cache/hub)" },
    list: { type: "boolean", help: "print the cells and exit" },
    "allow-missing": {
      type: "boolean",
      help: "skip (and record) unlabelled images, unknown classes, missing annotations, unreadable files",
    },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default: the suite's)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: `${ENGINE_FLAG_HELP.ep}; default: the suite's` },
    plan: {
      type: "boolean",
      help: "resolve data and identities, say what each cell would do (run, re-run and why, skip, reuse), exit",
    },
    json: { type: "boolean", help: "with --plan or --ci-matrix: JSON on stdout, everything else on stderr" },
    "reuse-from": {
      type: "string",
      arg: "COMMIT",
      help: "keep finished cells computed by COMMIT although code or engine differ (recorded as reused)",
    },
    "ci-matrix": { type: "boolean", help: "print the suite's GitHub Actions shard matrix (JSON) and exit" },
  },
  notes: [
    "A finished cell is skipped only when its record was computed by the same result-computing sources,",
    "engine and library versions as this run; otherwise it re-runs (see --plan, --reuse-from).",
  ],
} as const satisfies CliSpec;

function checkArgs({ values }: ParsedArgs<typeof BENCH_CLI>) {
  const suite = loadSuite(values.suite);
  const limitTrain = intFlag("limit-train", values["limit-train"], { min: 1 });
  const limitVal = intFlag("limit-val", values["limit-val"], { min: 1 });
  if (limitTrain !== undefined) suite.runtime.limitTrain = limitTrain;
  if (limitVal !== undefined) suite.runtime.limitVal = limitVal;
  if (values["hub-cache"]) suite.runtime.hubCache = values["hub-cache"];
  // The suite's engine unless the flags say otherwise; an --ep alone implies --engine ort.
  const choice = parseEngineChoice(
    { engine: values.engine ?? (values.ep ? "ort" : undefined), ep: values.ep, backend: values.backend },
    { engine: suite.runtime.engine, ep: suite.runtime.ep, backend: suite.runtime.backend },
  );
  suite.runtime.engine = choice.engine;
  if (choice.engine === "ort") suite.runtime.ep = choice.ep;
  suite.runtime.backend = choice.backend;
  const reuseFrom = values["reuse-from"];
  if (reuseFrom !== undefined && !/^[0-9a-f]{7,40}$/.test(reuseFrom)) {
    throw new UsageError(`--reuse-from: expected a commit hash (7 to 40 hex digits), got '${reuseFrom}'`);
  }
  if (values.json && !values.plan && !values["ci-matrix"]) {
    throw new UsageError("--json goes with --plan or --ci-matrix");
  }
  return {
    plan: values.plan ?? false,
    json: values.json ?? false,
    ciMatrix: values["ci-matrix"] ?? false,
    reuseFrom: reuseFrom ?? null,
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

/** The engine a suite's runtime asks for. */
function runtimeChoice(r: ReturnType<typeof checkArgs>["suite"]["runtime"]): EngineChoice {
  return r.engine === "ort"
    ? { engine: "ort", ep: r.ep, backend: r.backend, threads: r.workers }
    : { engine: "tfjs", backend: r.backend };
}

/** What computes this run's numbers, measured once the engine started. */
async function runContext(started: StartedEngine): Promise<RunContext> {
  return {
    code: { pretraining: await codeVersion("pretraining"), evaluation: await codeVersion("evaluation") },
    trainEngine: started.description,
    engine: tfEngineDescription(),
    featureEngine: started.description,
    decoder: await decoderVersions(),
  };
}

async function benchMain(o: ReturnType<typeof checkArgs>): Promise<number> {
  const t0 = performance.now();
  const { suite, shard } = o;
  // With --json, stdout carries the JSON only.
  const log = o.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  if (o.ciMatrix) {
    const matrix = ciMatrix(suite);
    if (o.json) console.log(JSON.stringify(matrix));
    else for (const m of matrix.include) log(`shard ${m.shard}: ${m.cells.join(", ")}`);
    return 0;
  }
  const all = expandSuite(suite);
  const cells = shard ? selectShard(all, shard) : all;
  const shardText = shard ? ` in shard ${shard.index}/${shard.count}` : "";
  log(
    `bench: suite '${suite.name}' (${suite.description}): ${cells.length} of ${all.length} cells${shardText}, ` +
      `${describeChoice(runtimeChoice(suite.runtime))}`,
  );
  if (o.list) {
    for (const c of cells) log(`  ${c.name} ${c.model.preset} seed ${c.seed}`);
    return 0;
  }
  const started = await startEngine(runtimeChoice(suite.runtime));
  const context = await runContext(started);
  if (context.engine.fallbackFrom) {
    log(
      `bench: backend '${context.engine.fallbackFrom}' is not available here, '${context.engine.device}' runs (records say so)`,
    );
  }
  const phases = benchPhases({ allowMissing: o.allowMissing, engine: started, workers: suite.runtime.workers, log });
  const reports = await runCells(cells, phases, {
    recordsDir: `${o.recordsDir}/${suite.name}`,
    checkpointsDir: o.checkpointsDir,
    context,
    reuseFrom: o.reuseFrom,
    plan: o.plan,
    log,
  });
  if (o.plan) {
    const plans = reports.map((r) => planEntry(r));
    if (o.json) {
      const pretrainHashes = [...new Set(plans.flatMap((p) => (p.pretrainHash ? [p.pretrainHash] : [])))].sort();
      console.log(
        JSON.stringify({
          suite: suite.name,
          shard: shard ? `${shard.index}/${shard.count}` : null,
          cells: plans,
          pretrainHashes,
        }),
      );
    }
    const count = (k: string) => plans.filter((p) => p.decision === k).length;
    log(
      `bench --plan: ${count("run")} to run, ${count("re-run")} to re-run, ${count("skip")} to skip, ${
        count("reuse")
      } to reuse`,
    );
    return reports.some((r) => r.status === "failed") ? 1 : 0;
  }
  log(`\n${summaryTable(reports)}\n`);
  if (!shard) {
    const lb = await writeLeaderboard(o.recordsDir, o.outDir);
    log(`leaderboard: ${lb.rows.length} rows -> ${o.outDir}/leaderboard.{json,html}, ${o.outDir}/LEADERBOARD.md`);
    for (const n of lb.notes.slice(1)) log(`  ${n}`);
  }
  const failed = reports.filter((r) => r.status === "failed").length;
  log(
    `bench: ${reports.length - failed} of ${reports.length} cells done, ${failed} failed, ` +
      `wall ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  return failed ? 1 : 0;
}

/** One cell of `--plan --json`. */
function planEntry(r: CellReport) {
  const d = r.decision;
  return {
    cell: `${r.cell.name} ${r.cell.model.preset} seed ${r.cell.seed}`,
    identity: r.identity?.hash ?? null,
    pretrainHash: r.identity?.pretrainHash ?? null,
    decision: !d ? "failed" : d.kind === "run" ? (d.previous ? "re-run" : "run") : d.kind,
    reasons: d && d.kind !== "skip" ? d.reasons : [],
    error: r.error ?? null,
  };
}

if (import.meta.main) Deno.exit(await runCli(BENCH_CLI, Deno.args, { check: checkArgs, run: benchMain }));
