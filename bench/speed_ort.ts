/**
 * The onnxruntime side of `deno task speed --engine ort`: the per-operator profile of the step graph
 * (onnxruntime's own profiler), and `--copy-cost`: what onnxruntime-node's output conversion costs per step
 * alone. Both moved here from model/ops/ort_speed.ts, which timed the reference ViT only.
 *
 * @module
 */
import process from "node:process";
import { GraphOps } from "../model/ops/graph_ops.ts";
import { release as releaseArray } from "../model/ops/host_memory.ts";
import { lowerToOnnx } from "../model/ops/onnx_lower.ts";
import { type Feed, OrtProgram } from "../model/ops/ort_program.ts";
import { OrtTrainEngine, type OrtTrainEngineOptions } from "../model/ops/ort_train_engine.ts";
import type { TrainStepSpec } from "../model/train_step.ts";
import { timeRound } from "./speed_round.ts";
import type { SpeedSubject } from "./speed_subject.ts";

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/**
 * Train `steps` steps after one warm-up on a fresh engine with onnxruntime's profiler on, and print the
 * session time per step, the time outside the graph (feeds, output copies, JS) and the kernel time per
 * operator type, largest first.
 */
export async function ortProfile(subject: SpeedSubject, opts: OrtTrainEngineOptions, steps: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ort_profile" });
  try {
    let made: OrtTrainEngine | null = null;
    const engine = (spec: TrainStepSpec) =>
      Promise.resolve(made = new OrtTrainEngine(spec, { ...opts, profilePrefix: `${dir}/step` }));
    const finish = () => made!.endProfiling();
    const r = await timeRound(subject, engine, { steps, warmup: 1, finish });
    const file = [...Deno.readDirSync(dir)].find((f) => f.name.endsWith(".json"));
    if (!file) throw new Error(`ort profile: onnxruntime wrote no profile into ${dir}`);
    const events = JSON.parse(Deno.readTextFileSync(`${dir}/${file.name}`)) as ProfileEvent[];
    const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").slice(-steps);
    const sessionMs = runs.reduce((s, e) => s + e.dur, 0) / runs.length / 1000;
    const byOp = new Map<string, number>();
    let kernels = 0;
    for (const e of events) {
      if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
      if (!runs.some((run) => e.ts >= run.ts && e.ts <= run.ts + run.dur)) continue;
      const op = e.args?.op_name ?? "?";
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      kernels += e.dur;
    }
    console.log(
      `onnxruntime profile (${steps} steps, ${r.msPerStep.toFixed(0)} ms/step with the profiler on): session run ` +
        `${sessionMs.toFixed(1)} ms/step, kernels ${(kernels / steps / 1000).toFixed(1)} ms/step, outside the graph ` +
        `(feeds, output copies, JS) ${(r.msPerStep - sessionMs).toFixed(1)} ms/step`,
    );
    for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 16)) {
      console.log(
        `  ${op.padEnd(28)} ${(us / steps / 1000).toFixed(1).padStart(8)} ms  ${(100 * us / kernels).toFixed(1)}%`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * What onnxruntime-node's output conversion costs per step, alone: a graph whose outputs are the step's
 * state outputs (each trainable parameter and its two moments, `x * c` of the parameter so the graph itself
 * costs next to nothing), run 12 times, each run's outputs released after the next as the engine does
 * (`release`: false keeps host_memory.ts's early release off). Prints CPU ms per run, mean of the last 8:
 * allocating a fresh JS buffer per output and copying into it.
 */
export async function ortCopyCost(spec: TrainStepSpec, threads: number, release: boolean): Promise<void> {
  const o = new GraphOps();
  const feeds: Record<string, Feed> = {};
  let bytes = 0;
  for (const [name, p] of spec.params) {
    if (!p.trainable) continue;
    const x = o.input(name, p.value);
    feeds[name] = p.value;
    for (const k of ["new.param.", "new.exp_avg.", "new.exp_avg_sq."]) o.output(k + name, o.mul(x, k.length));
    bytes += 12 * p.value.data.length;
  }
  const program = await OrtProgram.create(lowerToOnnx(o.graph), { threads, spin: false });
  const cpu: number[] = [];
  let previous: Record<string, { data: unknown }> | null = null;
  for (let i = 0; i < 12; i++) {
    const c0 = process.cpuUsage();
    const out = await program.run(feeds);
    if (previous && release) { for (const t of Object.values(previous)) releaseArray(t.data as Float32Array); }
    previous = out;
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  await program.release();
  const last = cpu.slice(4), mean = last.reduce((a, b) => a + b, 0) / last.length;
  console.log(
    `output conversion alone: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${program.outputNames.length} outputs, ` +
      `${mean.toFixed(1)} CPU-ms per step (mean of the last 8; all: ${cpu.map((c) => c.toFixed(0)).join(" ")})`,
  );
}
