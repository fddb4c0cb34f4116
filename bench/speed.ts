/**
 * `deno task speed`: training throughput on this machine, optionally side by side with PyTorch.
 *
 *   deno task speed [--method vit] [--backend blas|wasm|cpu|...] [--steps 10] [--warmup 3] [--batch 64]
 *                   [--vs-torch [--rounds R]] [--threads N] [--no-profile] [--grads lean|tfjs] [--blocks fused|nn]
 *
 * Trains the reference ViT of issue 8 (model/kernels/speed_vit.ts: 32x32 images, patch 4, width 192, depth 6,
 * 3 heads, MLP 4x, AdamW with weight decay 0) on a fixed random batch, prints images/s, ms/step, peak
 * RSS, the wasm heap size and the share of time per kernel kind (a separate profiled pass, so the
 * timers do not touch the timed steps). With `--vs-torch` it then runs bench/speed_torch.py on the
 * same config with as many threads as the BLAS (`--rounds R`: R alternating rounds, best of each
 * side), prints the same per CPU-second of each process, and ends with
 *   speed: train img/s ours=<a> torch=<b> ratio=<a/b>
 * `--method capi|mae|simmim` times that method's `tiny` preset instead (no torch twin) through the tfjs training
 * engine (`--grads` and `--blocks` apply to it too).
 * Measured 2026-11-27 08:08-08:14 UTC on 2 vCPUs shared with other jobs (load 3.6-6, details in
 * model/kernels/README.md), `--rounds 3 --steps 5 --warmup 2`: `--threads 1` ours 56.3 img/s, torch
 * 78.7 (ratio 0.72); 2 threads ours 54.4, torch 20.4 (2.67; torch's OpenMP collapses under load).
 * With the machine otherwise idle (08:31 UTC, load 0.9-1.9, same command with `--steps 8 --warmup 3`): ours 69.3,
 * torch 70.9 img/s, ratio 0.98. Runtime about 1 min per round.
 *
 * @module
 */
import process from "node:process";
import { BACKENDS, initBackend, parseBackend, tf } from "../model/engine.ts";
import { choiceFlag, type CliSpec, intFlag, type ParsedArgs, runCli } from "./cli.ts";
import { AdamW } from "../model/adamw.ts";
import { Rng } from "../model/rng.ts";
import { KernelProfile } from "../model/kernels/kernel_profile.ts";
import { leanVariableGrads } from "../model/kernels/lean_grads.ts";
import { activeBlas } from "../model/kernels/blas_backend.ts";
import { blasThreadsWanted } from "../model/kernels/blas.ts";
import { patchifyHost, SPEED_VIT, SpeedVit } from "../model/kernels/speed_vit.ts";
import { runTorchSpeed, type TorchSpeed } from "./speed_torch_runner.ts";
import { timeMethod } from "./speed_method.ts";
import { tfEngineFactory } from "../model/tf_train_engine.ts";
import { METHOD_NAMES } from "../model/method.ts";

/** `vit`: the reference ViT (torch twin in speed_torch.py); the others: the method's `tiny` preset. */
const METHODS = ["vit", ...METHOD_NAMES] as const;

/** Throughput of one timed run. */
export interface SpeedResult {
  imgPerSec: number;
  msPerStep: number;
  peakRssMb: number;
  wasmHeapMb: number | null;
  /** CPU time of this process (all threads) per timed step: steadier than wall time on a shared machine. */
  cpuMsPerStep?: number;
}

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

/** Train `steps` steps after `warmup` on the reference ViT; optionally profile `profileSteps` more. */
export async function timeVit(
  batch: number,
  steps: number,
  warmup: number,
  profileSteps: number,
  lean = true,
  blocks: "nn" | "fused" = "fused",
) {
  const cfg = { ...SPEED_VIT, blocks };
  const model = new SpeedVit(cfg, 0);
  const rng = Rng.from(0, "speed", "images");
  const images = rng.fillNormal(new Float32Array(batch * 3 * cfg.img * cfg.img));
  const tokens = (cfg.img / cfg.patch) ** 2;
  const patches = tf.tensor(patchifyHost(images, batch, cfg.img, cfg.patch), [batch, tokens, 3 * cfg.patch ** 2]);
  const adam = new AdamW({ betas: [0.9, 0.999], eps: 1e-8 });
  const vars = model.params.trainable();
  const hyper = () => ({ lr: 1e-4, weightDecay: 0 });
  let last = NaN;
  // The loss of a step marked `read`, read back with `await` (webgpu has no synchronous read). The read also
  // waits for the queued GPU work, so it closes each timed region: without it webgpu times only the submission.
  let pending: tf.Tensor | null = null;
  const readLoss = async () => {
    last = (await pending!.data())[0];
    pending!.dispose();
    pending = null;
  };
  const step = (read: boolean) => {
    const grad = lean ? leanVariableGrads : tf.variableGrads;
    const { value, grads } = grad(() => model.loss(patches), [...vars.values()]);
    const byName = new Map([...vars].map(([n, v]) => [n, grads[v.name]]));
    adam.step(vars, byName, hyper);
    if (read) pending = value;
    tf.dispose([...(read ? [] : [value]), ...Object.values(grads)]);
  };
  for (let i = 0; i < warmup; i++) step(i === warmup - 1);
  await readLoss();
  const t0 = performance.now(), cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) step(i === steps - 1);
  await readLoss();
  const ms = (performance.now() - t0) / steps;
  const cpu = process.cpuUsage(cpu0);
  const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
  if (!Number.isFinite(last)) throw new Error(`speed: loss is ${last} after ${warmup + steps} steps`);
  let profile: KernelProfile | null = null;
  let profiledMs = 0;
  if (profileSteps > 0) {
    profile = new KernelProfile(tf.getBackend());
    const p0 = performance.now();
    for (let i = 0; i < profileSteps; i++) step(i === profileSteps - 1);
    await readLoss();
    profiledMs = (performance.now() - p0) / profileSteps;
    profile.stop();
  }
  const result: SpeedResult = {
    imgPerSec: batch / (ms / 1000),
    msPerStep: ms,
    peakRssMb: peakRssMb(),
    wasmHeapMb: wasmHeapMb(),
    cpuMsPerStep,
  };
  patches.dispose();
  adam.dispose();
  model.dispose();
  return { result, profile, profiledMs, profileSteps, loss: last };
}

function printProfile(profile: KernelProfile, perStepMs: number, steps: number): void {
  const total = perStepMs;
  const kinds = profile.kinds();
  const kernelMs = kinds.reduce((s, k) => s + k.ms, 0) / steps;
  const share = (ms: number) => `${(100 * ms / total).toFixed(1)}%`;
  console.log(`time per kind (profiled pass, ${perStepMs.toFixed(0)} ms/step):`);
  for (const k of kinds) {
    console.log(`  ${k.kind.padEnd(12)} ${(k.ms / steps).toFixed(1).padStart(8)} ms  ${share(k.ms / steps)}`);
  }
  console.log(`  ${"js/other".padEnd(12)} ${(total - kernelMs).toFixed(1).padStart(8)} ms  ${share(total - kernelMs)}`);
  console.log("top kernels:");
  for (const t of profile.kernels().slice(0, 12)) {
    console.log(
      `  ${t.kernel.padEnd(16)} ${(t.ms / steps).toFixed(1).padStart(8)} ms  ${share(t.ms / steps)}  ${
        t.calls / steps
      } calls`,
    );
  }
}

export const SPEED_CLI = {
  name: "speed",
  synopsis: "deno task speed [--method vit|capi|mae|simmim] [--backend NAME] [--vs-torch [--rounds R]] [flags]",
  summary: "Training throughput on this machine (img/s, ms/step, peak RSS, kernel profile), optionally vs PyTorch.",
  flags: {
    method: { type: "string", arg: METHODS.join("|"), default: "vit", help: "what to time (default vit)" },
    backend: { type: "string", arg: BACKENDS.join("|"), default: "blas", help: "tensor backend (default blas)" },
    steps: { type: "string", arg: "N", default: "10", help: "timed steps (default 10)" },
    warmup: { type: "string", arg: "N", default: "3", help: "untimed steps first (default 3)" },
    batch: { type: "string", arg: "N", default: "64", help: "images per step (default 64)" },
    "profile-steps": { type: "string", arg: "N", default: "2", help: "steps of the kernel profile (default 2)" },
    // On a machine shared with other jobs, --threads 1 gives the steadier comparison.
    threads: { type: "string", arg: "N", help: "threads for our BLAS and for torch alike (default: every core)" },
    rounds: { type: "string", arg: "R", default: "1", help: "alternating ours/torch rounds, best of each (default 1)" },
    "no-profile": { type: "boolean", help: "skip the kernel profile" },
    "vs-torch": { type: "boolean", help: "time bench/speed_torch.py on the same config (reference ViT only)" },
    // lean: model/kernels/lean_grads.ts frees saved tensors and gradients during the backward
    // pass (same values, about half the peak heap: what lets batch 128 fit); tfjs: tf.variableGrads.
    grads: { type: "string", arg: "lean|tfjs", default: "lean", help: "gradient implementation (default lean)" },
    // fused: GELU and LayerNorm from model/kernels/fused_*.ts (one kernel each way on blas, the nn
    // functions elsewhere); nn: model/nn's mlp and layerNorm.
    blocks: { type: "string", arg: "fused|nn", default: "fused", help: "ViT block kernels (default fused)" },
  },
} as const satisfies CliSpec;

function checkArgs({ values }: ParsedArgs<typeof SPEED_CLI>) {
  const int = (key: string, v: string, min: number) => intFlag(key, v, { min, fallback: min });
  return {
    method: choiceFlag("method", values.method, METHODS),
    backend: parseBackend(values.backend),
    steps: int("steps", values.steps, 1),
    warmup: int("warmup", values.warmup, 1),
    batch: int("batch", values.batch, 1),
    profileSteps: values["no-profile"] ? 0 : int("profile-steps", values["profile-steps"], 0),
    threads: intFlag("threads", values.threads, { min: 1 }),
    rounds: int("rounds", values.rounds, 1),
    vsTorch: values["vs-torch"] ?? false,
    grads: choiceFlag("grads", values.grads, ["lean", "tfjs"] as const),
    blocks: choiceFlag("blocks", values.blocks, ["fused", "nn"] as const),
  };
}

async function main(o: ReturnType<typeof checkArgs>): Promise<void> {
  const { method, backend, steps, warmup, batch, profileSteps, blocks } = o;
  if (o.threads !== undefined) Deno.env.set("BLAS_THREADS", String(o.threads));
  await initBackend(backend);
  const blas = activeBlas();
  const running = tf.getBackend();
  console.log(
    `speed: ${method} batch ${batch}, backend ${running}` +
      (running === "blas" && blas ? ` (${blas.description}, ${blas.threads ?? "?"} threads)` : "") +
      `, ${o.grads} grads, ${blocks} blocks, ${steps} steps after ${warmup} warm-up, ` +
      `${navigator.hardwareConcurrency} logical cores, ` +
      `load ${Deno.loadavg().map((l) => l.toFixed(2)).join(" ")}`,
  );
  const lean = o.grads === "lean";
  let result: SpeedResult, profile: KernelProfile | null = null, profiledMs = 0, profiledSteps = profileSteps;
  if (method === "vit") {
    ({ result, profile, profiledMs } = await timeVit(batch, steps, warmup, profileSteps, lean, blocks));
  } else {
    const m = method as typeof METHOD_NAMES[number];
    const engine = tfEngineFactory({ grads: lean ? "lean" : "tfjs", fused: blocks === "fused" });
    const { msPerStep, cpuMsPerStep } = await timeMethod(m, batch, steps, warmup, engine);
    result = {
      imgPerSec: batch / (msPerStep / 1000),
      msPerStep,
      peakRssMb: peakRssMb(),
      wasmHeapMb: wasmHeapMb(),
      cpuMsPerStep,
    };
    if (profileSteps > 0) {
      const prof = new KernelProfile(tf.getBackend());
      // One untimed warm-up step, then the counters restart: the profile covers the timed steps
      // (the last of which reads the loss).
      let p0 = 0, seen = 0;
      await timeMethod(m, batch, profileSteps, 1, engine, () => {
        if (++seen === 1) {
          prof.reset();
          p0 = performance.now();
        }
      });
      profiledSteps = profileSteps;
      profiledMs = (performance.now() - p0) / profiledSteps;
      prof.stop();
      profile = prof;
    }
  }
  console.log(
    `ours: ${result.imgPerSec.toFixed(1)} img/s, ${result.msPerStep.toFixed(0)} ms/step, ` +
      `peak RSS ${result.peakRssMb.toFixed(0)} MiB` +
      (result.wasmHeapMb !== null ? `, wasm heap ${result.wasmHeapMb.toFixed(0)} MiB (cap 4096)` : "") +
      (result.cpuMsPerStep ? `, ${result.cpuMsPerStep.toFixed(0)} CPU-ms/step` : ""),
  );
  if (profile) printProfile(profile, profiledMs, profiledSteps);
  if (!o.vsTorch) return;
  if (method !== "vit") {
    console.log(`speed: torch comparison skipped: bench/speed_torch.py has the reference ViT only (--method vit)`);
    return;
  }
  const threads = blas?.threads ?? blasThreadsWanted();
  const rounds = o.rounds;
  // Alternate ours and torch `rounds` times and keep each side's best round: on a machine shared
  // with other jobs the fastest round is the one least disturbed, for both alike.
  const ours = [result];
  const theirs: TorchSpeed[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r > 0) ours.push((await timeVit(batch, steps, warmup, 0, lean, blocks)).result);
    const torch = await runTorchSpeed({ steps, warmup, batch, threads, cfg: SPEED_VIT });
    if (!torch.ok) {
      console.log(`speed: torch comparison skipped: ${torch.reason}`);
      return;
    }
    const t = torch.result;
    theirs.push(t);
    console.log(
      `round ${r + 1}/${rounds}: ours ${ours[r].imgPerSec.toFixed(1)} img/s (${
        ours[r].cpuMsPerStep?.toFixed(0)
      } CPU-ms/step); ` +
        `torch ${t.torch} (${t.threads} threads, ${torch.python}) ${t.imgPerSec.toFixed(1)} img/s ` +
        `(${t.cpuMsPerStep?.toFixed(0)} CPU-ms/step, peak RSS ${t.peakRssMb.toFixed(0)} MiB); ` +
        `load ${Deno.loadavg()[0].toFixed(2)}`,
    );
  }
  const best = (xs: number[]) => Math.max(...xs);
  const a = best(ours.map((o) => o.imgPerSec)), b = best(theirs.map((t) => t.imgPerSec));
  const cpu = (ms: (number | undefined)[]) => ms.every((m) => m) ? best(ms.map((m) => batch / (m! / 1000))) : NaN;
  const ca = cpu(ours.map((o) => o.cpuMsPerStep)), cb = cpu(theirs.map((t) => t.cpuMsPerStep));
  if (Number.isFinite(ca) && Number.isFinite(cb)) {
    // Per CPU-second of each process (all its threads), best round: a second view, less sensitive
    // than wall time to other jobs, more to spinning BLAS/OpenMP threads.
    console.log(
      `speed: train img per CPU-second ours=${ca.toFixed(1)} torch=${cb.toFixed(1)} ratio=${(ca / cb).toFixed(2)}`,
    );
  }
  console.log(`speed: train img/s ours=${a.toFixed(1)} torch=${b.toFixed(1)} ratio=${(a / b).toFixed(2)}`);
}

if (import.meta.main) Deno.exit(await runCli(SPEED_CLI, Deno.args, { check: checkArgs, run: main }));
