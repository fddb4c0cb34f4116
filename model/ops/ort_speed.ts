/**
 * Training speed of the one-graph step on onnxruntime's CPU provider, on the reference ViT of
 * issue 8 (vit_step_spec.ts: 32x32, patch 4, width 192, depth 6, 3 heads, batch 64, Adam).
 *
 *   deno run -A model/ops/ort_speed.ts [--batch 64] [--steps 8] [--warmup 3] [--threads N]
 *                                      [--rounds R] [--spin] [--fresh-memory] [--profile] [--copy-cost]
 *
 * Prints, per round, images/s, wall ms per step, CPU ms per step (all threads of this process:
 * steadier than wall time on a shared machine), and at the end the compile time, the peak RSS and
 * what onnxruntime-node spends outside the graph per step (feeding the state, copying every output
 * into a new JS buffer). `--profile` runs two more steps with onnxruntime's profiler and prints
 * the time per operator type; `--copy-cost` measures onnxruntime-node's output conversion alone
 * (with `--fresh-memory`: without host_memory.ts's tuning and early release). Compare with `deno task speed --backend blas` (same model, batch and
 * optimizer on tfjs) and `python3 bench/speed_torch.py` (PyTorch). Measured numbers: README.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { REFERENCE_VIT, VIT_HYPER, vitDraws, vitStepSpec } from "./vit_step_spec.ts";
import { defaultThreads, type Feed, ORT_VERSION, OrtProgram } from "./ort_program.ts";
import { GraphOps } from "./graph_ops.ts";
import { lowerToOnnx } from "./onnx_lower.ts";
import { release as releaseArray } from "./host_memory.ts";
import type { TrainStepSpec } from "../train_step.ts";

function peakRssMb(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : Deno.memoryUsage().rss / 2 ** 20;
}

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/** Time per operator type over the profiled steps, and the session-run total per step. */
function summarise(events: ProfileEvent[], steps: number): void {
  const byOp = new Map<string, number>();
  let kernels = 0, runs = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") runs += e.dur;
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
    const op = e.args?.op_name ?? "?";
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    kernels += e.dur;
  }
  console.log(
    `profile: session run ${(runs / steps / 1000).toFixed(1)} ms/step, kernels ${
      (kernels / steps / 1000).toFixed(1)
    } ms/step`,
  );
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 16)) {
    console.log(
      `  ${op.padEnd(28)} ${(us / steps / 1000).toFixed(1).padStart(8)} ms  ${(100 * us / kernels).toFixed(1)}%`,
    );
  }
}

/**
 * What onnxruntime-node's output conversion costs per step, alone: a graph whose outputs are the
 * step's state outputs (each trainable parameter and its two moments, `x * c` of the parameter so
 * the graph itself costs next to nothing), run 12 times, each run's outputs released after the
 * next as the engine does. CPU ms per run, mean of the last 8: allocating a fresh JS buffer
 * per output and copying into it.
 */
async function copyCost(spec: TrainStepSpec, threads: number, release: boolean) {
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      batch: { type: "string", default: "64" },
      steps: { type: "string", default: "8" },
      warmup: { type: "string", default: "3" },
      rounds: { type: "string", default: "1" },
      threads: { type: "string" },
      profile: { type: "boolean", default: false },
      "copy-cost": { type: "boolean", default: false },
      // host_memory.ts's glibc tuning (on by default in the engine); --fresh-memory turns it off.
      "fresh-memory": { type: "boolean", default: false },
      // --spin: onnxruntime's pool threads spin between operators (its default; off in the engine).
      spin: { type: "boolean", default: false },
    },
  });
  const int = (key: string, v: string, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${key}: expected an integer >= ${min}, got '${v}'`);
    return n;
  };
  const batch = int("batch", values.batch, 1), steps = int("steps", values.steps, 1);
  const warmup = int("warmup", values.warmup, 1), rounds = int("rounds", values.rounds, 1);
  const threads = values.threads === undefined ? defaultThreads() : int("threads", values.threads, 1);
  const spin = values.spin, keepFreedMemory = !values["fresh-memory"];
  const cfg = REFERENCE_VIT;
  const spec = vitStepSpec(cfg, 0);
  const draws = vitDraws(cfg, batch);
  console.log(
    `ort-speed: reference ViT ${
      JSON.stringify(cfg)
    }, batch ${batch}, onnxruntime-node ${ORT_VERSION} CPU, ${threads} threads${spin ? ", spinning" : ""}${
      keepFreedMemory ? "" : ", fresh output memory"
    }`,
  );

  const profileDir = values.profile ? await Deno.makeTempDir({ prefix: "ort_profile" }) : null;
  const engine = new OrtTrainEngine(spec, {
    threads,
    spin,
    profilePrefix: profileDir ? `${profileDir}/step` : undefined,
  });
  try {
    const t0 = performance.now();
    const first = await engine.step(draws, VIT_HYPER);
    const compileMs = performance.now() - t0;
    let loss = (await first.read()).loss;
    for (let i = 1; i < warmup; i++) await engine.step(draws, VIT_HYPER);
    let runMs = 0;
    for (let r = 0; r < rounds; r++) {
      const w0 = performance.now(), c0 = process.cpuUsage();
      for (let i = 0; i < steps; i++) loss = (await (await engine.step(draws, VIT_HYPER)).read()).loss;
      const ms = (performance.now() - w0) / steps, cpu = process.cpuUsage(c0);
      runMs = runMs ? Math.min(runMs, ms) : ms;
      console.log(
        `round ${r + 1}: ${(batch / (ms / 1000)).toFixed(1)} img/s, ${ms.toFixed(0)} ms/step, ` +
          `CPU ${((cpu.user + cpu.system) / 1000 / steps).toFixed(0)} ms/step, loss ${loss.toFixed(5)}`,
      );
    }
    if (!Number.isFinite(loss)) throw new Error(`ort-speed: loss is ${loss}`);
    console.log(
      `first step (record, differentiate, lower, compile, run) ${compileMs.toFixed(0)} ms; peak RSS ${
        peakRssMb().toFixed(0)
      } MiB`,
    );
    console.log(`speed: train img/s ours=${(batch / (runMs / 1000)).toFixed(1)} (best round)`);
    if (values["copy-cost"]) await copyCost(spec, threads, keepFreedMemory);
    if (profileDir) {
      const p0 = performance.now();
      for (let i = 0; i < 2; i++) await engine.step(draws, VIT_HYPER);
      const wallPerStep = (performance.now() - p0) / 2;
      await engine.endProfiling();
      const file = [...Deno.readDirSync(profileDir)].find((f) => f.name.endsWith(".json"))!;
      const events = JSON.parse(Deno.readTextFileSync(`${profileDir}/${file.name}`)) as ProfileEvent[];
      const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
      const last2 = runs.slice(-2).reduce((s, e) => s + e.dur, 0) / 2 / 1000;
      console.log(`outside the graph (feeds, output copies, JS): ${(wallPerStep - last2).toFixed(1)} ms/step`);
      summarise(events.filter((e) => runs.slice(-2).some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur)), 2);
      await Deno.remove(profileDir, { recursive: true });
    }
  } finally {
    engine.dispose();
  }
}

if (import.meta.main) await main();
