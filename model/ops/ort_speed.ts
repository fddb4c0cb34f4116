/**
 * The one-graph step on an onnxruntime provider, as bench/gpu_check.sh times it on a lent GPU machine:
 * the reference ViT of issue 8 (vit_step_spec.ts: 32x32, patch 4, width 192, depth 6, 3 heads, batch 64,
 * Adam), a ViT of another size (`--vit s16`: ViT-S/16 at 224 px), or a method's `tiny` preset (`--method`),
 * on the CPU, WebGPU or CUDA execution provider.
 *
 *   deno run -A model/ops/ort_speed.ts [--method vit|capi|mae|simmim] [--ep cpu|webgpu|cuda] [--vit s16]
 *       [--batch 64] [--per-device N] [--steps 8] [--warmup 3] [--threads N] [--rounds R] [--spin]
 *       [--fresh-memory] [--check]
 *
 * `--per-device N` (a method only) runs each iteration as micro-batches of N (`stepMicro`).
 *
 * Prints, per round, images/s, wall ms per step, CPU ms per step (all threads of this process:
 * steadier than wall time on a shared machine), and at the end the compile time, the peak RSS,
 * `speed: train img/s ours=N` (best round; bench/gpu_check.sh reads it) and, off the CPU provider,
 * what a step still moves between host and device (bytes each way, counted by the engine, and the
 * time of identity runs moving the same bytes) and the device bytes the engine holds. `--check` only
 * starts the provider and says whether it could (exit 3 and the one-line reason when not).
 *
 * The CPU comparison (ort against tfjs `blas` and the PyTorch twins) and onnxruntime's per-operator
 * profile are `deno task speed` (bench/speed.ts: `--engine ort --ep EP`, `--vs-torch`, `--copy-cost`). This
 * file adds `--check`, ViT-S/16, micro-batches and the bytes moved, with few imports (no tfjs backends,
 * no sharp) so that gpu_check.sh's trimmed node_modules runs it offline. Measured numbers: README.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import process from "node:process";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { REFERENCE_VIT, VIT_HYPER, type VitConfig, vitDraws, vitImages, vitStepSpec } from "./vit_step_spec.ts";
import {
  checkExecutionProvider,
  defaultThreads,
  type ExecutionProvider,
  ORT_VERSION,
  parseExecutionProvider,
} from "./ort_program.ts";
import { DeviceState } from "./ort_device.ts";
import type { MicroBatch, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import { METHOD_NAMES, type MethodName } from "../method.ts";
import { createMethod, methodPreset } from "../methods.ts";
import { Rng } from "../rng.ts";

/** ViT sizes beside the reference one: `s16` is ViT-S/16 at 224 px (issue 13's GPU comparison). */
const VIT_SIZES: Record<string, VitConfig> = {
  reference: REFERENCE_VIT,
  s16: { img: 224, patch: 16, dim: 384, depth: 12, heads: 6, mlpRatio: 4 },
};

/** What is timed: a step spec, and each iteration's draws and schedule values. */
interface Workload {
  label: string;
  spec: TrainStepSpec;
  draw(it: number): StepDraws;
  hyper(it: number): StepHyper;
  /** With `--per-device`: the iteration as micro-batches. */
  micro?(it: number): MicroBatch[];
}

function workload(method: "vit" | MethodName, vit: string, batch: number, perDevice?: number): Workload {
  if (method === "vit") {
    const cfg = VIT_SIZES[vit];
    const draws = vitDraws(cfg, vitImages(cfg, batch));
    return {
      label: `ViT ${JSON.stringify(cfg)}`,
      spec: vitStepSpec(cfg, 0),
      draw: () => draws,
      hyper: () => VIT_HYPER,
    };
  }
  // A method's tiny preset as the trainer runs it: fresh draws (masks, indices) on the host every step.
  const config = methodPreset(method, "tiny");
  const size = config.imageSize as number | [number, number];
  const [h, w] = typeof size === "number" ? [size, size] : size;
  const m = createMethod(method, config, 0, { batchSize: batch });
  const images = {
    shape: [batch, 3, h, w],
    data: Rng.from(0, "speed", "images").fillNormal(new Float32Array(batch * 3 * h * w)),
  };
  return {
    label: `${method} tiny ${h}x${w}`,
    spec: m.stepSpec(),
    draw: (it) => m.draw(images, Rng.from(0, "speed", it)),
    hyper: (it) => m.hyper(it),
    micro: perDevice ? (it) => m.drawMicroBatches(images, Rng.from(0, "speed", it), perDevice) : undefined,
  };
}

/**
 * Time of moving `up` bytes host -> device and `down` bytes back, as a step does, through identity
 * runs of those sizes on `ep` (median of 10 after 2 warm-up runs each): `DeviceState.upload` and
 * `DeviceState.read`, the same paths the engine uses.
 */
async function transferMs(ep: ExecutionProvider, up: number, down: number): Promise<{ upMs: number; downMs: number }> {
  const st = new DeviceState({ ep });
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
  try {
    const ups: number[] = [], downs: number[] = [];
    for (let i = 0; i < 12; i++) {
      st.setHost("up", [Math.max(1, up >> 2)], new Float32Array(Math.max(1, up >> 2)));
      const t0 = performance.now();
      await st.upload();
      if (i >= 2) ups.push(performance.now() - t0);
    }
    st.setHost("down", [Math.max(1, down >> 2)], new Float32Array(Math.max(1, down >> 2)));
    await st.upload();
    for (let i = 0; i < 12; i++) {
      const t0 = performance.now();
      await st.read(["down"]);
      if (i >= 2) downs.push(performance.now() - t0);
    }
    return { upMs: median(ups), downMs: median(downs) };
  } finally {
    await st.dispose();
  }
}

function peakRssMb(): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : Deno.memoryUsage().rss / 2 ** 20;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      method: { type: "string", default: "vit" },
      ep: { type: "string", default: "cpu" },
      vit: { type: "string", default: "reference" },
      batch: { type: "string", default: "64" },
      "per-device": { type: "string" },
      steps: { type: "string", default: "8" },
      warmup: { type: "string", default: "3" },
      rounds: { type: "string", default: "1" },
      threads: { type: "string" },
      // --check: only start the provider (a one-node program) and say whether it started; exit 3 if not.
      check: { type: "boolean", default: false },
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
  const perDevice = values["per-device"] === undefined ? undefined : int("per-device", values["per-device"], 1);
  const warmup = int("warmup", values.warmup, 1), rounds = int("rounds", values.rounds, 1);
  const threads = values.threads === undefined ? defaultThreads() : int("threads", values.threads, 1);
  const spin = values.spin, keepFreedMemory = !values["fresh-memory"];
  const ep = parseExecutionProvider(values.ep);
  const method = values.method as "vit" | MethodName;
  if (method !== "vit" && !(METHOD_NAMES as readonly string[]).includes(method)) {
    throw new Error(`--method: expected vit, ${METHOD_NAMES.join(", ")}; got '${method}'`);
  }
  if (perDevice !== undefined && (method === "vit" || batch % perDevice !== 0)) {
    throw new Error(`--per-device ${perDevice}: needs --method capi|mae|simmim and a divisor of --batch ${batch}`);
  }
  if (!(values.vit in VIT_SIZES)) {
    throw new Error(`--vit: expected ${Object.keys(VIT_SIZES).join(", ")}; got '${values.vit}'`);
  }
  if (values.check) {
    try {
      await checkExecutionProvider(ep);
      console.log(`ort-speed: the ${ep} provider started (onnxruntime-node ${ORT_VERSION})`);
    } catch (e) {
      console.log(`ort-speed: ${(e as Error).message}`);
      Deno.exit(3);
    }
    return;
  }
  await checkExecutionProvider(ep); // a provider that cannot start says why, in one line, before any work
  const work = workload(method, values.vit, batch, perDevice);
  const spec = work.spec;
  console.log(
    `ort-speed: ${work.label}, batch ${batch}${
      perDevice ? ` as micro-batches of ${perDevice}` : ""
    }, onnxruntime-node ${ORT_VERSION} ${ep} provider, ${threads} threads${spin ? ", spinning" : ""}${
      keepFreedMemory ? "" : ", fresh output memory"
    }, load ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  const engine = new OrtTrainEngine(spec, { ep, threads, spin, keepFreedMemory });
  try {
    let it = 0;
    const step = () =>
      work.micro ? engine.stepMicro(work.micro(it), work.hyper(it++)) : engine.step(work.draw(it), work.hyper(it++));
    const t0 = performance.now();
    const first = await step();
    const compileMs = performance.now() - t0;
    let loss = (await first.read()).loss;
    for (let i = 1; i < warmup; i++) await step();
    let runMs = 0;
    for (let r = 0; r < rounds; r++) {
      const w0 = performance.now(), c0 = process.cpuUsage();
      for (let i = 0; i < steps; i++) loss = (await (await step()).read()).loss;
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
    if (ep !== "cpu") {
      const st = engine.deviceStats(), mib = (b: number) => (b / 2 ** 20).toFixed(2);
      const { upMs, downMs } = await transferMs(ep, st.lastStep.toDeviceBytes, st.lastStep.toHostBytes);
      console.log(
        `transfers per step: ${st.lastStep.toDeviceBytes} B host->device (${upMs.toFixed(2)} ms), ` +
          `${st.lastStep.toHostBytes} B device->host (${
            downMs.toFixed(2)
          } ms) [times: identity runs of the same sizes]`,
      );
      console.log(
        `device state: ${st.resident ? "resident" : "copied every step"}, ${mib(st.liveBytes)} MiB held, ` +
          `peak ${mib(st.peakBytes)} MiB (parameters and moments; onnxruntime's activations not counted)`,
      );
    }
  } finally {
    engine.dispose();
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    // Errors here are meant for the person running it (a bad flag, a provider that cannot start): no stack.
    console.error(`ort-speed: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
