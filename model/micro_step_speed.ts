/**
 * What micro-batching costs: CPU time and peak memory per training step of a method at its tiny
 * preset, one-shot against `--per-device` micro-batches (and, for CAPI, keeping the teacher's
 * features between the Sinkhorn passes against recomputing the teacher in each), alternated
 * round by round so that a shared machine's load falls on every variant alike.
 *
 *   deno run -A model/micro_step_speed.ts [--engine tfjs|ort] [--backend wasm] [--method capi]
 *     [--batch 32] [--per-device 8] [--steps 3] [--rounds 2] [--threads 1] [--variant N]
 *
 * Prints, per variant and round: CPU-ms per step (user + system of this process, the steadier
 * figure under load), wall img/s, and the step's peak tensor bytes as the engine accounts them;
 * with `--variant N` (0 one-shot, 1 micro, 2 micro recomputing CAPI's teacher) only that one, and
 * the process's peak RSS, which then belongs to it alone.
 * Results of a run are in model/ops/README.md ("Micro-batches").
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { initBackend } from "./engine.ts";
import { METHOD_NAMES, type MethodName, type MimMethod } from "./method.ts";
import { createMethod, methodPreset } from "./methods.ts";
import { CapiMethod } from "./capi/method.ts";
import { capiConfig } from "./capi/config.ts";
import { Rng } from "./rng.ts";
import { TfTrainEngine } from "./tf_train_engine.ts";
import { OrtTrainEngine } from "./ops/ort_train_engine.ts";
import type { TrainEngine } from "./train_engine.ts";

const { values: a } = parseArgs({
  options: {
    engine: { type: "string", default: "tfjs" },
    backend: { type: "string", default: "wasm" },
    method: { type: "string", default: "capi" },
    batch: { type: "string", default: "32" },
    "per-device": { type: "string", default: "8" },
    steps: { type: "string", default: "3" },
    rounds: { type: "string", default: "2" },
    threads: { type: "string", default: "1" },
    variant: { type: "string" },
  },
});
const name = a.method as MethodName;
if (!METHOD_NAMES.includes(name)) throw new Error(`--method: expected one of ${METHOD_NAMES.join(", ")}`);
if (a.engine !== "tfjs" && a.engine !== "ort") throw new Error(`--engine: expected tfjs or ort, got '${a.engine}'`);
const batch = Number(a.batch), perDevice = Number(a["per-device"]), steps = Number(a.steps);
if (a.engine === "tfjs") await initBackend(a.backend as Parameters<typeof initBackend>[0]);

interface Variant {
  label: string;
  method: MimMethod;
  perDevice: number;
}
const method = (keepTeacher: boolean): MimMethod =>
  name === "capi"
    ? new CapiMethod(capiConfig("tiny"), 0, { keepTeacher })
    : createMethod(name, methodPreset(name, "tiny"), 0, { batchSize: batch });
const variants: Variant[] = [
  { label: "one-shot", method: method(true), perDevice: batch },
  { label: `micro ${perDevice}${name === "capi" ? ", teacher kept" : ""}`, method: method(true), perDevice },
];
if (name === "capi") {
  variants.push({ label: `micro ${perDevice}, teacher recomputed`, method: method(false), perDevice });
}

const engineFor = (m: MimMethod): TrainEngine =>
  a.engine === "ort"
    ? new OrtTrainEngine(m.stepSpec(), { threads: Number(a.threads) })
    : new TfTrainEngine(m.stepSpec());
const [h, w] = variants[0].method.encoderInfo.imageSize;
const images = { shape: [batch, 3, h, w], data: Rng.from(1).fillNormal(new Float32Array(batch * 3 * h * w)) };

async function timeVariant(v: Variant): Promise<{ cpuMs: number; imgPerSec: number; peak: number }> {
  const engine = engineFor(v.method);
  try {
    const run = async (it: number) => {
      const rng = Rng.from(2, it);
      const r = v.perDevice < batch
        ? await engine.stepMicro(v.method.drawMicroBatches(images, rng, v.perDevice), v.method.hyper(it))
        : await engine.step(v.method.draw(images, rng), v.method.hyper(it));
      await r.read();
      r.dispose();
      return r.peakTensorBytes ?? 0;
    };
    await run(0); // compile / warm up
    const cpu0 = process.cpuUsage(), t0 = performance.now();
    let peak = 0;
    for (let it = 1; it <= steps; it++) peak = Math.max(peak, await run(it));
    const cpu = process.cpuUsage(cpu0), dt = (performance.now() - t0) / 1000;
    return { cpuMs: (cpu.user + cpu.system) / 1000 / steps, imgPerSec: batch * steps / dt, peak };
  } finally {
    engine.dispose();
  }
}

const load = () => Deno.loadavg()[0].toFixed(1);
console.log(`${a.engine}${a.engine === "tfjs" ? `/${a.backend}` : ""} ${name} tiny, batch ${batch}, ${steps} steps`);
const chosen = a.variant === undefined ? variants : [variants[Number(a.variant)]];
if (chosen.some((v) => !v)) throw new Error(`--variant: expected 0..${variants.length - 1}, got '${a.variant}'`);
for (let round = 0; round < Number(a.rounds); round++) {
  for (const v of chosen) {
    const r = await timeVariant(v);
    console.log(
      `round ${round} ${v.label.padEnd(28)} ${r.cpuMs.toFixed(0).padStart(6)} CPU-ms/step ` +
        `${r.imgPerSec.toFixed(1).padStart(6)} img/s  peak tensors ${
          (r.peak / 2 ** 20).toFixed(1)
        } MiB  load ${load()}`,
    );
  }
}
if (a.variant !== undefined) {
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
  console.log(`peak RSS of the process: ${hwm ? (Number(hwm[1]) / 1024).toFixed(0) : "?"} MiB`);
}
