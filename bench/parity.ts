/**
 * `deno task parity [--backend wasm|cpu|tensorflow] [--engine tfjs|ort] [--verbose] FILE.json [FILE.json ...]`
 *
 * For each `mim-fixture-v1` fixture: build the model from the manifest's `config`, load its
 * `param.*` tensors, run every step the manifest describes and compare every reference
 * tensor (error = max |ours - ref| / max(1, |ref|), pass at <= 1e-4). Prints a table, then
 * one line per fixture, `PASS <path> compared=<n> skipped=<m> maxRelErr=<x>` or `FAIL ...`,
 * and exits 0 only if every fixture passed.
 *
 * A `mim-trajectory-v1` fixture (model/testdata/trajectories/) is replayed for its T steps on a
 * `TrainEngine` (model/trajectory.ts): every step's logged scalars and the final parameters and
 * AdamW moments, at the tolerance the fixture states (it grows with the step). Its line reads
 * `PASS <path> (trajectory, T steps) compared=<n> skipped=<m> worst err/tol=<x>`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend, parseBackend } from "../model/engine.ts";
import { loadFixture } from "../model/fixture.ts";
import { ParityReport, type ParityRow } from "../model/parity.ts";
import { detectFixtureKind, PARITY_RUNNERS } from "./parity_runners.ts";
import type { Fixture } from "../model/fixture.ts";
import type { TrainEngine } from "../model/train_engine.ts";
import type { TrainStepSpec } from "../model/train_step.ts";
import { replayTrajectory, type TrajectoryAdapter, type TrajectoryRow } from "../model/trajectory.ts";

export const ENGINES = ["tfjs", "ort"] as const;
export type EngineName = typeof ENGINES[number];

/**
 * What replays trajectories: per method, its `TrajectoryAdapter` (the method's `TrainStepSpec` and step
 * draws from a fixture), and per engine, how to build one for a spec. Empty until the methods implement
 * `TrainStepSpec` (model/train_step.ts); a trajectory fixture names what is missing.
 */
export const TRAJECTORY_ADAPTERS: Partial<Record<string, TrajectoryAdapter>> = {};
export const ENGINE_FACTORIES: Partial<Record<EngineName, (spec: TrainStepSpec) => Promise<TrainEngine>>> = {};

function formatTrajectoryRow(r: TrajectoryRow): string {
  const err = r.err === undefined ? "" : `${r.err.toExponential(2)}/${r.tol!.toExponential(1)}`;
  return `  ${r.status.padEnd(7)} ${err.padStart(17)}  ${r.name}${r.note ? `  (${r.note})` : ""}`;
}

async function runTrajectory(path: string, fx: Fixture, engine: EngineName, verbose: boolean): Promise<string> {
  const method = String(fx.manifest.method ?? "");
  const adapter = TRAJECTORY_ADAPTERS[method], makeEngine = ENGINE_FACTORIES[engine];
  if (!adapter || !makeEngine) {
    throw new Error(
      `trajectory replay of '${method}' on the ${engine} engine is not wired yet: it needs ` +
        (adapter ? "" : `a TrajectoryAdapter for '${method}' (its TrainStepSpec, model/trajectory.ts)`) +
        (!adapter && !makeEngine ? " and " : "") +
        (makeEngine ? "" : `a ${engine} TrainEngine (model/train_engine.ts)`) +
        " registered in bench/parity.ts",
    );
  }
  const report = await replayTrajectory(fx, adapter, makeEngine);
  console.log(`${path} (trajectory of ${method}, ${engine} engine)`);
  for (const r of report.rows()) {
    if (verbose || r.status === "fail" || r.status === "skip") console.log(formatTrajectoryRow(r));
  }
  const s = report.summary();
  return `${s.passed ? "PASS" : "FAIL"} ${path} (trajectory, ${report.tr.num_steps} steps) compared=${s.compared} ` +
    `skipped=${s.skipped} worst err/tol=${s.worstRatio.toFixed(3)}${s.failed ? ` failed=${s.failed}` : ""}`;
}

function formatRow(r: ParityRow): string {
  const err = r.err === undefined ? "" : r.err.toExponential(2);
  return `  ${r.status.padEnd(7)} ${err.padStart(9)}  ${r.name}${r.note ? `  (${r.note})` : ""}`;
}

/** Run the fixtures at `paths`; returns the summary lines (and prints the tables). */
export async function runParity(
  paths: string[],
  opts: { verbose?: boolean; engine?: EngineName } = {},
): Promise<boolean> {
  let allPassed = true;
  const lines: string[] = [];
  for (const path of paths) {
    try {
      const fx = await loadFixture(path);
      if (fx.trajectory) {
        const line = await runTrajectory(path, fx, opts.engine ?? "tfjs", opts.verbose ?? false);
        allPassed &&= line.startsWith("PASS");
        lines.push(line);
        continue;
      }
      const kind = detectFixtureKind(fx);
      const report = new ParityReport(fx);
      await PARITY_RUNNERS[kind](fx, report);
      const rows = report.rows();
      console.log(`${path} (${kind})`);
      for (const r of rows) if (opts.verbose || r.status !== "pass") console.log(formatRow(r));
      const s = report.summary();
      allPassed &&= s.passed;
      lines.push(
        `${s.passed ? "PASS" : "FAIL"} ${path} compared=${s.compared} skipped=${s.skipped} maxRelErr=${
          s.maxRelErr.toExponential(2)
        }${s.failed ? ` failed=${s.failed}` : ""}`,
      );
    } catch (e) {
      allPassed = false;
      lines.push(`FAIL ${path} error: ${(e as Error).message}`);
    }
  }
  for (const l of lines) console.log(l);
  return allPassed;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { backend: { type: "string" }, engine: { type: "string" }, verbose: { type: "boolean", short: "v" } },
  });
  if (positionals.length === 0) {
    console.error(
      "usage: deno task parity [--backend wasm|cpu|tensorflow] [--engine tfjs|ort] [--verbose] FILE.json [FILE.json ...]",
    );
    Deno.exit(2);
  }
  const engine = (values.engine ?? "tfjs") as EngineName;
  if (!ENGINES.includes(engine)) {
    console.error(`--engine: expected one of ${ENGINES.join(", ")}, got '${values.engine}'`);
    Deno.exit(2);
  }
  await initBackend(parseBackend(values.backend));
  const ok = await runParity(positionals, { verbose: values.verbose, engine });
  Deno.exit(ok ? 0 : 1);
}
