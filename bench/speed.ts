/**
 * `deno task speed`: training throughput on this machine, on either engine, optionally side by side with
 * a PyTorch twin of the same method.
 *
 *   deno task speed [--method vit|capi|mae|simmim] [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend blas|...]
 *                   [--steps 10] [--warmup 3] [--batch 64] [--rounds R] [--threads N] [--vs-torch]
 *                   [--no-profile] [--profile-steps 2] [--grads lean|tfjs] [--blocks fused|nn]
 *                   [--spin] [--fresh-memory] [--copy-cost]
 *
 * `--method vit` trains the reference ViT of issue 8 (model/ops/vit_step_spec.ts: 32x32, patch 4, width 192,
 * depth 6, 3 heads, Adam); `capi`, `mae`, `simmim` the method's `tiny` preset (bench/speed_subject.ts). Each
 * round builds a fresh engine (`--engine tfjs` on `--backend`, default blas; `--engine ort` on onnxruntime's
 * provider `--ep`, default cpu), trains `--warmup` steps, then times `--steps`. Printed for every method and engine:
 *   ours: <img/s> img/s, <ms> ms/step, peak RSS <MiB> MiB, <ms> CPU-ms/step
 * (best of `--rounds`; CPU time of all threads of this process, steadier than wall time on a shared machine),
 * then a profile of a separate pass: tfjs's time per kernel, or onnxruntime's time per operator type.
 *
 * `--vs-torch` alternates ours and bench/speed_torch.py (the same method, config, weights, batch, float32,
 * torch.optim.AdamW with the official parameter groups; `--threads` for both, default every core), checks
 * that both compute the same thing (bench/speed_twin_check.ts: the first two steps' losses and parameter
 * updates on the same weights and draws; exit 1 if not), and ends with
 *   speed: train img per CPU-second ours=<a> torch=<b> ratio=<a/b>
 *   speed: train img/s ours=<a> torch=<b> ratio=<a/b>
 * The ort-only `--spin`, `--fresh-memory` and `--copy-cost` time onnxruntime settings (model/ops/README.md).
 * On a GPU provider model/ops/ort_speed.ts (what bench/gpu_check.sh runs) also reports the bytes a step moves.
 * Runtime: about 1 min per round and side for CAPI and SimMIM on 2 cores. Measured numbers: model/ops/README.md;
 * `bash bench/speed_suite.sh` runs the whole comparison.
 *
 * @module
 */
import { activeBlas } from "../model/kernels/blas_backend.ts";
import { KernelProfile } from "../model/kernels/kernel_profile.ts";
import { tf } from "../model/engine.ts";
import { ENGINE_FLAG_HELP, parseEngineChoice, startEngine } from "../model/engine_choice.ts";
import { defaultThreads } from "../model/ops/ort_program.ts";
import { OrtTrainEngine } from "../model/ops/ort_train_engine.ts";
import { tfEngineFactory } from "../model/tf_train_engine.ts";
import type { EngineFactory } from "../model/train_engine.ts";
import { choiceFlag, type CliSpec, intFlag, type ParsedArgs, runCli, UsageError } from "./cli.ts";
import { ortCopyCost, ortProfile } from "./speed_ort.ts";
import { type RoundResult, timeRound } from "./speed_round.ts";
import { SPEED_METHODS, type SpeedSubject, speedSubject } from "./speed_subject.ts";
import { runTorchSpeed, type TorchSpeed, writeTorchInputs } from "./speed_torch_runner.ts";
import { compareTwin } from "./speed_twin_check.ts";

/** Peak resident set size of this process in MiB (Linux `VmHWM`; current RSS elsewhere). */
export function peakRssMb(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

function wasmHeapMb(): number | null {
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
  return heap ? heap.length / 2 ** 20 : null;
}

export const SPEED_CLI = {
  name: "speed",
  synopsis: "deno task speed [--method vit|capi|mae|simmim] [--engine tfjs|ort] [--vs-torch [--rounds R]] [flags]",
  summary: "Training throughput on this machine (img/s, ms/step, peak RSS, CPU-ms/step, profile), optionally " +
    "beside a PyTorch twin of the same method.",
  flags: {
    method: { type: "string", arg: SPEED_METHODS.join("|"), default: "vit", help: "what to train (default vit)" },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default blas)` },
    steps: { type: "string", arg: "N", default: "10", help: "timed steps (default 10)" },
    warmup: { type: "string", arg: "N", default: "3", help: "untimed steps first (default 3)" },
    batch: { type: "string", arg: "N", default: "64", help: "images per step (default 64)" },
    "profile-steps": { type: "string", arg: "N", default: "2", help: "steps of the profile pass (default 2)" },
    // On a machine shared with other jobs, --threads 1 gives the steadier comparison.
    threads: {
      type: "string",
      arg: "N",
      help: "threads of ours (BLAS or onnxruntime) and torch alike (default: every core)",
    },
    rounds: {
      type: "string",
      arg: "R",
      default: "1",
      help: "rounds (alternating with torch), best of each (default 1)",
    },
    "no-profile": { type: "boolean", help: "skip the profile pass" },
    "vs-torch": { type: "boolean", help: "time bench/speed_torch.py on the same method, config and batch" },
    // lean: model/kernels/lean_grads.ts frees saved tensors and gradients during the backward
    // pass (same values, about half the peak heap: what lets batch 128 fit); tfjs: tf.variableGrads.
    grads: { type: "string", arg: "lean|tfjs", help: "tfjs engine: gradient implementation (default lean)" },
    // fused: GELU and LayerNorm from model/kernels/fused_*.ts (one kernel each way on blas, the tfjs
    // compositions elsewhere); nn: the compositions everywhere.
    blocks: { type: "string", arg: "fused|nn", help: "tfjs engine: GELU/LayerNorm kernels (default fused)" },
    spin: { type: "boolean", help: "ort engine: pool threads spin between operators (onnxruntime's default)" },
    "fresh-memory": { type: "boolean", help: "ort engine: without host_memory.ts's reuse of freed memory" },
    "copy-cost": { type: "boolean", help: "ort engine: also time onnxruntime-node's output conversion alone" },
  },
} as const satisfies CliSpec;

function checkArgs({ values }: ParsedArgs<typeof SPEED_CLI>) {
  const int = (key: string, v: string, min: number) => intFlag(key, v, { min, fallback: min });
  const choice = parseEngineChoice(values, { engine: "tfjs", backend: values.engine === "ort" ? "cpu" : "blas" });
  const only = (engine: "tfjs" | "ort", flags: string[]) => {
    const given = flags.filter((f) => values[f as keyof typeof values] !== undefined);
    if (choice.engine !== engine && given.length) {
      throw new UsageError(`--${given[0]} is an option of --engine ${engine}; this run uses --engine ${choice.engine}`);
    }
  };
  only("tfjs", ["grads", "blocks"]);
  only("ort", ["spin", "fresh-memory", "copy-cost"]);
  return {
    method: choiceFlag("method", values.method, SPEED_METHODS),
    choice,
    steps: int("steps", values.steps, 1),
    warmup: int("warmup", values.warmup, 1),
    batch: int("batch", values.batch, 1),
    profileSteps: values["no-profile"] ? 0 : int("profile-steps", values["profile-steps"], 0),
    threads: intFlag("threads", values.threads, { min: 1 }),
    rounds: int("rounds", values.rounds, 1),
    vsTorch: values["vs-torch"] ?? false,
    grads: choiceFlag("grads", values.grads ?? "lean", ["lean", "tfjs"] as const),
    blocks: choiceFlag("blocks", values.blocks ?? "fused", ["fused", "nn"] as const),
    spin: values.spin ?? false,
    freshMemory: values["fresh-memory"] ?? false,
    copyCost: values["copy-cost"] ?? false,
  };
}
type SpeedOptions = ReturnType<typeof checkArgs>;

const fmt = (x: number, digits = 1) => x.toFixed(digits);
const best = (xs: number[]) => Math.max(...xs);

/** The kernel profile of the tfjs engine over `steps` steps after one warm-up, time per kind and top kernels. */
async function tfProfile(subject: SpeedSubject, engine: EngineFactory, steps: number): Promise<void> {
  const profile = new KernelProfile(tf.getBackend());
  let p0 = 0;
  const each = (it: number) => {
    if (it === 0) {
      profile.reset(); // the counters cover the timed steps (the last of which reads the loss)
      p0 = performance.now();
    }
  };
  await timeRound(subject, engine, { steps, warmup: 1, each });
  const total = (performance.now() - p0) / steps;
  profile.stop();
  const kinds = profile.kinds();
  const kernelMs = kinds.reduce((s, k) => s + k.ms, 0) / steps;
  const share = (ms: number) => `${(100 * ms / total).toFixed(1)}%`;
  console.log(`time per kind (profiled pass, ${total.toFixed(0)} ms/step):`);
  for (const k of kinds) {
    console.log(`  ${k.kind.padEnd(12)} ${fmt(k.ms / steps).padStart(8)} ms  ${share(k.ms / steps)}`);
  }
  console.log(`  ${"js/other".padEnd(12)} ${fmt(total - kernelMs).padStart(8)} ms  ${share(total - kernelMs)}`);
  console.log("top kernels:");
  for (const t of profile.kernels().slice(0, 12)) {
    console.log(
      `  ${t.kernel.padEnd(16)} ${fmt(t.ms / steps).padStart(8)} ms  ${share(t.ms / steps)}  ${t.calls / steps} calls`,
    );
  }
}

async function main(o: SpeedOptions): Promise<number> {
  const { choice } = o;
  if (o.threads !== undefined) {
    Deno.env.set("BLAS_THREADS", String(o.threads));
    if (choice.engine === "ort") choice.threads = o.threads;
  }
  const started = await startEngine(choice);
  const subject = speedSubject(o.method, o.batch);
  let engine: EngineFactory, threads: number, ranOn: string;
  const ortOpts = {
    ep: choice.engine === "ort" ? choice.ep : "cpu" as const,
    threads: o.threads ?? defaultThreads(),
    spin: o.spin,
    keepFreedMemory: !o.freshMemory,
  };
  if (choice.engine === "ort") {
    engine = (spec) => Promise.resolve(new OrtTrainEngine(spec, ortOpts));
    threads = ortOpts.threads;
    ranOn =
      `ort ${choice.ep} (onnxruntime-node ${started.description.versions["onnxruntime-node"]}, ${threads} threads` +
      `${o.spin ? ", spinning" : ""}${o.freshMemory ? ", fresh output memory" : ""})`;
  } else {
    engine = tfEngineFactory({ grads: o.grads, fused: o.blocks === "fused" });
    const blas = activeBlas(), backend = tf.getBackend();
    threads = o.threads ?? blas?.threads ?? navigator.hardwareConcurrency;
    ranOn = `tfjs ${backend}` +
      (started.description.fallbackFrom ? ` (fallback from ${started.description.fallbackFrom})` : "") +
      (backend === "blas" && blas ? ` (${blas.description}, ${blas.threads ?? "?"} threads)` : "") +
      `, ${o.grads} grads, ${o.blocks} blocks`;
  }
  console.log(
    `speed: ${subject.label}, batch ${o.batch}, engine ${ranOn}, ${o.steps} steps after ${o.warmup} warm-up, ` +
      `${navigator.hardwareConcurrency} logical cores, load ${Deno.loadavg().map((l) => fmt(l, 2)).join(" ")}`,
  );
  const checkSteps = o.vsTorch ? Math.min(2, o.warmup) : 0;
  const dir = o.vsTorch ? await Deno.makeTempDir({ prefix: "speed_torch" }) : null;
  const ours: RoundResult[] = [], theirs: TorchSpeed[] = [];
  let skipped = false;
  try {
    if (dir) await writeTorchInputs(`${dir}/inputs.safetensors`, subject, checkSteps);
    for (let r = 0; r < o.rounds; r++) {
      // Alternate ours and torch and keep each side's best round: on a machine shared with other
      // jobs the fastest round is the one least disturbed, for both alike.
      ours.push(await timeRound(subject, engine, { steps: o.steps, warmup: o.warmup, checkSteps }));
      const a = ours[r];
      let line = `round ${r + 1}/${o.rounds}: ours ${fmt(o.batch / (a.msPerStep / 1000))} img/s ` +
        `(${a.cpuMsPerStep.toFixed(0)} CPU-ms/step, first step ${a.firstStepMs.toFixed(0)} ms)`;
      if (dir && !skipped) {
        const inputs = `${dir}/inputs.safetensors`;
        const torch = await runTorchSpeed({ inputs, steps: o.steps, warmup: o.warmup, threads });
        if (torch.ok) {
          const t = torch.result;
          theirs.push(t);
          line += `; torch ${t.torch} (${t.threads} threads, ${torch.python}) ${fmt(t.imgPerSec)} img/s ` +
            `(${t.cpuMsPerStep?.toFixed(0)} CPU-ms/step, peak RSS ${t.peakRssMb.toFixed(0)} MiB)`;
        } else {
          console.log(`speed: torch comparison skipped: ${torch.reason}`);
          skipped = true;
        }
      }
      console.log(`${line}; load ${fmt(Deno.loadavg()[0], 2)}`);
    }
  } finally {
    if (dir) await Deno.remove(dir, { recursive: true });
  }
  const fastest = ours.reduce((a, b) => (b.msPerStep < a.msPerStep ? b : a));
  const heap = wasmHeapMb();
  console.log(
    `ours: ${fmt(o.batch / (fastest.msPerStep / 1000))} img/s, ${fastest.msPerStep.toFixed(0)} ms/step, ` +
      `peak RSS ${peakRssMb().toFixed(0)} MiB` +
      (choice.engine === "tfjs" && heap !== null ? `, wasm heap ${heap.toFixed(0)} MiB (cap 4096)` : "") +
      `, ${Math.min(...ours.map((r) => r.cpuMsPerStep)).toFixed(0)} CPU-ms/step`,
  );
  if (o.profileSteps > 0) {
    if (choice.engine === "ort") await ortProfile(subject, ortOpts, o.profileSteps);
    else await tfProfile(subject, engine, o.profileSteps);
  }
  if (o.copyCost) await ortCopyCost(subject.spec, ortOpts.threads, !o.freshMemory);
  if (theirs.length === 0) return 0;
  const check = compareTwin(ours[0], theirs[0]);
  console.log(`check: ${check.summary}`);
  const a = o.batch / (fastest.msPerStep / 1000), b = best(theirs.map((t) => t.imgPerSec));
  const perCpu = (ms: number[]) => best(ms.map((m) => o.batch / (m / 1000)));
  const ca = perCpu(ours.map((r) => r.cpuMsPerStep)), cb = perCpu(theirs.map((t) => t.cpuMsPerStep ?? NaN));
  // Per CPU-second of each process (all its threads), best round: a second view, less sensitive
  // than wall time to other jobs, more to spinning BLAS/OpenMP threads.
  if (Number.isFinite(cb)) {
    console.log(`speed: train img per CPU-second ours=${fmt(ca)} torch=${fmt(cb)} ratio=${fmt(ca / cb, 2)}`);
  }
  console.log(`speed: train img/s ours=${fmt(a)} torch=${fmt(b)} ratio=${fmt(a / b, 2)}`);
  return check.ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await runCli(SPEED_CLI, Deno.args, { check: checkArgs, run: main }));
