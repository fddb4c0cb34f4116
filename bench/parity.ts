/**
 * `deno task parity [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME] [--verbose] FILE.json ...`
 *
 * For each `mim-fixture-v1` fixture: build the model from the manifest's `config`, load its
 * `param.*` tensors, run the method's training step on the chosen engine (tfjs on `--backend`, or
 * the one-graph onnxruntime engine on `--ep`) and compare every reference
 * tensor by two errors (model/parity.ts): `err = max |ours - ref| / max(1, |ref|)` must be <= 1e-4
 * and `scale = max |ours - ref| / max |ref|` <= 1e-2 (except tensors the manifest's notes call
 * noise). Prints a table (failing rows; every row with --verbose), then one line per fixture,
 * `PASS <path> compared=<n> skipped=<m> maxRelErr=<x> maxScaleErr=<y>` or `FAIL ...`, and exits 0
 * only if every fixture passed.
 *
 * A `mim-trajectory-v1` fixture (model/testdata/trajectories/) is replayed for its T steps on a
 * `TrainEngine` (model/trajectory.ts): every step's logged scalars and the final parameters and
 * AdamW moments, at the tolerance the fixture states (it grows with the step). Its line reads
 * `PASS <path> (trajectory, T steps) compared=<n> skipped=<m> worst err/tol=<x>`.
 *
 * @module
 */
import { describeChoice, ENGINE_FLAG_HELP, parseEngineChoice, startEngine } from "../model/engine_choice.ts";
import { type Fixture, loadFixture } from "../model/fixture.ts";
import { ParityReport, type ParityRow } from "../model/parity.ts";
import { createTfTrainEngine } from "../model/tf_train_engine.ts";
import type { EngineFactory } from "../model/train_engine.ts";
import { detectFixtureKind, PARITY_RUNNERS } from "./parity_runners.ts";
import { type CliSpec, runCli } from "./cli.ts";
import { replayTrajectory, type TrajectoryRow } from "../model/trajectory.ts";
import { trajectoryAdapter } from "../model/trajectory_adapters.ts";

const TABLE_HEADER = `  ${"status".padEnd(7)} ${"err".padStart(9)} ${"scale".padStart(9)}  tensor`;

function formatTrajectoryRow(r: TrajectoryRow): string {
  const err = r.err === undefined ? "" : `${r.err.toExponential(2)}/${r.tol!.toExponential(1)}`;
  return `  ${r.status.padEnd(7)} ${err.padStart(17)}  ${r.name}${r.note ? `  (${r.note})` : ""}`;
}

/** Replay a trajectory fixture on the engine `engine` builds; print its table, return its summary line. */
async function runTrajectory(path: string, fx: Fixture, engine: EngineFactory, verbose: boolean): Promise<string> {
  const report = await replayTrajectory(fx, trajectoryAdapter(fx), engine);
  console.log(`${path} (trajectory of ${fx.manifest.method})`);
  for (const r of report.rows()) {
    if (verbose || r.status === "fail" || r.status === "skip") console.log(formatTrajectoryRow(r));
  }
  const s = report.summary();
  return `${s.passed ? "PASS" : "FAIL"} ${path} (trajectory, ${report.tr.num_steps} steps) compared=${s.compared} ` +
    `skipped=${s.skipped} worst err/tol=${s.worstRatio.toFixed(3)}${s.failed ? ` failed=${s.failed}` : ""}`;
}

function formatRow(r: ParityRow): string {
  const num = (x: number | undefined) => (x === undefined ? "" : x.toExponential(2)).padStart(9);
  return `  ${r.status.padEnd(7)} ${num(r.err)} ${num(r.scaleErr)}  ${r.name}${r.note ? `  (${r.note})` : ""}`;
}

/**
 * Run the fixtures at `paths` on the engine `opts.engine` builds (default tfjs); print the tables and one line
 * each; true if every fixture passed.
 */
export async function runParity(
  paths: string[],
  opts: {
    verbose?: boolean;
    engine?: EngineFactory;
    onSummary?: (path: string, summary: ReturnType<ParityReport["summary"]>) => void;
  } = {},
): Promise<boolean> {
  let allPassed = true;
  const lines: string[] = [];
  for (const path of paths) {
    try {
      const fx = await loadFixture(path);
      if (fx.trajectory) {
        const line = await runTrajectory(path, fx, opts.engine ?? createTfTrainEngine, opts.verbose ?? false);
        allPassed &&= line.startsWith("PASS");
        lines.push(line);
        continue;
      }
      const kind = detectFixtureKind(fx);
      const report = new ParityReport(fx);
      await PARITY_RUNNERS[kind](fx, report, opts.engine ?? createTfTrainEngine);
      const rows = report.rows();
      console.log(`${path} (${kind})`);
      const shown = rows.filter((r) => opts.verbose || r.status !== "pass");
      if (shown.length) console.log(TABLE_HEADER);
      for (const r of shown) console.log(formatRow(r));
      const s = report.summary();
      opts.onSummary?.(path, s);
      allPassed &&= s.passed;
      lines.push(
        `${s.passed ? "PASS" : "FAIL"} ${path} compared=${s.compared} skipped=${s.skipped} maxRelErr=${
          s.maxRelErr.toExponential(2)
        } maxScaleErr=${s.maxScaleErr.toExponential(2)}${
          Number.isNaN(s.vsTorchF32) ? "" : ` vsTorchF32=${s.vsTorchF32.toFixed(2)}`
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

export const PARITY_CLI = {
  name: "parity",
  synopsis: "deno task parity [--engine tfjs|ort] [--ep EP] [--backend NAME] [--verbose] FILE.json [FILE.json ...]",
  summary: "Golden-tensor parity: run every step a fixture describes and compare every reference tensor.",
  flags: {
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default wasm)` },
    verbose: { type: "boolean", short: "v", help: "print passing tensors too" },
  },
  positionals: { min: 1 },
  notes: [
    "  FILE.json  mim-fixture-v1 or mim-trajectory-v1 manifests, e.g. model/testdata/*.json",
    "             model/testdata/variants/*.json model/testdata/trajectories/*.json",
  ],
} as const satisfies CliSpec;

if (import.meta.main) {
  Deno.exit(
    await runCli(PARITY_CLI, Deno.args, {
      check: ({ values, positionals }) => ({
        choice: parseEngineChoice(values),
        verbose: values.verbose ?? false,
        paths: positionals,
      }),
      run: async ({ choice, verbose, paths }) => {
        const engine = await startEngine(choice);
        console.log(`parity on ${describeChoice(choice)}`);
        return (await runParity(paths, { verbose, engine: engine.factory })) ? 0 : 1;
      },
    }),
  );
}
