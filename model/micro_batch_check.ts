/**
 * Test-only: does an engine's accumulated step reproduce the one-shot batch? (model/micro_batch_test.ts
 * for tfjs, model/ops/ort_micro_step_test.ts for onnxruntime.) Two engines start
 * from the same parameters; for two iterations one takes each batch in one step, the other as
 * micro-batches (`drawMicroBatches`, `stepMicro`) from the same `Rng`. Returned: the largest
 * difference per kind, each relative to its tensor's largest value (scalars: to the value).
 *
 * Post-step parameters are compared at the elements whose gradient both runs resolve (agree to
 * 1e-3 of its value, in both iterations). Elsewhere the gradient is float32 rounding noise in
 * either order of summation: one that is zero in exact arithmetic (MAE's key bias, which softmax
 * ignores, gets ~1e-11) or a cancellation (SimMIM's key weights at initialisation, where attention
 * is nearly uniform). AdamW turns a gradient `g` into a step of `lr g / (|g| + eps)`, so noise
 * moves such an element by an arbitrary fraction of `lr` in each run, as two GPU counts of the
 * official code would. Gradients and moments are compared in full (to their tensor's scale, which
 * bounds that noise), and `skipped` says how many parameter elements were left out.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { HostTensor } from "./fixture.ts";
import type { MethodName, MimMethod } from "./method.ts";
import { createMethod, methodPreset } from "./methods.ts";
import { Rng } from "./rng.ts";
import type { EngineFactory, StepResult } from "./train_engine.ts";

/** `max |a - b| / max |ref|` over the elements where `keep` holds (all by default). */
function scaled(a: Float32Array, ref: Float32Array, keep?: (i: number) => boolean): number {
  if (a.length !== ref.length) return Infinity;
  let d = 0, s = 0;
  for (let i = 0; i < ref.length; i++) {
    s = Math.max(s, Math.abs(ref[i]));
    if (!keep || keep(i)) d = Math.max(d, Math.abs(a[i] - ref[i]));
  }
  return s > 0 ? d / s : d;
}

/** Micro-batches' traces concatenated along their first (batch) axis. */
function concatTraces(micro: Map<string, HostTensor<Float32Array>>[], name: string): Float32Array {
  const parts = micro.map((m) => m.get(name)!.data);
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

export interface MicroComparison {
  /** Largest relative differences: `loss`, each metric, `grads`, `exp_avg`, `exp_avg_sq`, `params`, traces. */
  worst: Record<string, number>;
  /** Parameter elements left out of `params` (their gradient is rounding noise), out of all trainable. */
  skipped: number;
  total: number;
}

/**
 * Two iterations (`it0`, `it0 + 1`) of `method` on `batch` random images, one-shot against
 * `batchPerDevice` micro-batches; `traces` are compared too (concatenated over micro-batches).
 */
export async function compareMicroToOneShot(
  method: MimMethod,
  createEngine: EngineFactory,
  opts: { batch: number; batchPerDevice: number; imageSize: [number, number]; traces?: string[]; it0?: number },
): Promise<MicroComparison> {
  const [h, w] = opts.imageSize, b = opts.batch;
  const one = await createEngine(method.stepSpec()), micro = await createEngine(method.stepSpec());
  const worst: Record<string, number> = {};
  const note = (k: string, v: number) => (worst[k] = Math.max(worst[k] ?? 0, v));
  /** Per parameter and iteration: is each element's gradient resolved (the runs agree to 1e-3)? */
  const resolved = new Map<string, ((i: number) => boolean)[]>();
  try {
    for (let it = opts.it0 ?? 5; it < (opts.it0 ?? 5) + 2; it++) {
      const images = {
        shape: [b, 3, h, w],
        data: Rng.from(1, "images", it).fillNormal(new Float32Array(b * 3 * h * w)),
      };
      const hyper = method.hyper(it);
      const stepOpts = { grads: true, trace: (opts.traces?.length ?? 0) > 0 };
      const ra: StepResult = await one.step(method.draw(images, Rng.from(2, it)), hyper, stepOpts);
      const mb = method.drawMicroBatches(images, Rng.from(2, it), opts.batchPerDevice);
      const rb: StepResult = await micro.stepMicro(mb, hyper, stepOpts);
      const va = await ra.read(), vb = await rb.read();
      for (const [k, v] of Object.entries(va)) note(k, Math.abs(vb[k] - v) / Math.max(Math.abs(v), 1e-30));
      if (rb.grads!.size !== ra.grads!.size) note("grads", Infinity); // a parameter with a gradient in one run only
      for (const [n, g] of ra.grads!) {
        const gm = rb.grads!.get(n)?.data ?? new Float32Array(0);
        note("grads", scaled(gm, g.data));
        const agree = (i: number) => Math.abs(gm[i] - g.data[i]) <= 1e-3 * Math.abs(g.data[i]);
        resolved.set(n, [...resolved.get(n) ?? [], agree]);
      }
      for (const t of opts.traces ?? []) note(t, scaled(concatTraces(rb.tracedMicro!, t), ra.traced!.get(t)!.data));
      ra.dispose();
      rb.dispose();
    }
    const [sa, sb] = [await one.snapshot(), await micro.snapshot()];
    let skipped = 0, total = 0;
    for (const [n, p] of sa.params) {
      const checks = resolved.get(n) ?? [];
      const keep = (i: number) => checks.every((agree) => agree(i));
      for (let i = 0; i < p.data.length; i++) if (!keep(i)) skipped++;
      if (checks.length) total += p.data.length;
      note("params", scaled(sb.params.get(n)!.data, p.data, keep));
    }
    for (const [id, st] of Object.entries(sa.optimizers)) {
      for (const [k, t] of st.tensors) {
        note(k.slice(0, k.indexOf(".")), scaled(sb.optimizers[id].tensors.get(k)?.data ?? new Float32Array(0), t.data));
      }
    }
    return { worst, skipped, total };
  } finally {
    one.dispose();
    micro.dispose();
  }
}

/** Small configurations at 16 px; CAPI and SimMIM with drop path on (per-device and per-sample draws). */
export const MICRO_CONFIGS: Record<MethodName, Record<string, unknown>> = {
  capi: {
    imageSize: 16,
    embedDim: 32,
    numHeads: 2,
    encoderDepth: 2,
    decoderDepth: 1,
    numClusters: 16,
    dropPathRate: 0.25,
  },
  mae: { imageSize: 16, embedDim: 32, numHeads: 2, depth: 1, decoderEmbedDim: 16, decoderNumHeads: 2, decoderDepth: 1 },
  simmim: { imageSize: 16, embedDim: 32, numHeads: 2, depth: 2, dropPathRate: 0.3 },
};

/**
 * Tolerances of `assertAgree`, about 10x the worst measured on tfjs cpu and onnxruntime cpu at
 * `MICRO_CONFIGS` (batch 8 as 2 or 4 micro-batches): scalars 1.1e-7 relative; gradients, moments
 * and CAPI's targets 1.6e-6 of their scale; parameters 2.3e-6, except tensors initialised at zero,
 * whose scale is that of two AdamW steps: 1.2e-5 (SimMIM's `norm1.bias`, where `|g|` nears eps
 * and AdamW's `g / (|g| + eps)` resolves the step less sharply). Skipped: at most 0.3% (MAE).
 */
export const MICRO_TOLERANCE = { scalars: 1e-6, tensors: 1e-5, params: 1e-4, skipped: 0.005 };

/** A method at its `MICRO_CONFIGS` size (`dropPath: false`: CAPI's stochastic depth off, for the equality). */
export function microMethod(name: MethodName, batch: number, dropPath = true) {
  const config = { ...methodPreset(name, "tiny"), ...MICRO_CONFIGS[name] };
  if (!dropPath && name === "capi") config.dropPathRate = 0;
  return createMethod(name, config, 3, { batchSize: batch });
}

/** Scalars within `MICRO_TOLERANCE.scalars`, tensors within `.tensors` of their scale, few skipped elements. */
export function assertAgree(worst: Record<string, number>, skippedFraction: number): void {
  const tensors = new Set(["grads", "exp_avg", "exp_avg_sq", "teacher.targets", "teacher.head.assignments"]);
  for (const k of ["loss", "grads", "params", "exp_avg", "exp_avg_sq"]) {
    assert.ok(k in worst, `nothing compared for ${k}`);
  }
  for (const [k, v] of Object.entries(worst)) {
    const tol = k === "params"
      ? MICRO_TOLERANCE.params
      : tensors.has(k)
      ? MICRO_TOLERANCE.tensors
      : MICRO_TOLERANCE.scalars;
    assert.ok(v <= tol, `${k}: micro-batches differ from the one-shot batch by ${v.toExponential(2)} (> ${tol})`);
  }
  assert.ok(skippedFraction <= MICRO_TOLERANCE.skipped, `${(100 * skippedFraction).toFixed(2)}% of parameters skipped`);
}
