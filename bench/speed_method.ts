/**
 * `deno task speed --method capi|mae|simmim`: the training step of a registered method's `tiny`
 * preset, timed as model/trainer.ts runs it (prepare, gradients over every optimizer's parameters,
 * each optimizer's AdamW step with its clipping, afterStep), on synthetic images.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import { AdamW, clipGradNorm } from "../model/adamw.ts";
import type { MethodName } from "../model/method.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { Rng } from "../model/rng.ts";
import { leanVariableGrads } from "../model/kernels/lean_grads.ts";
import { syntheticBatch } from "./pretrain.ts";

/** ms per step of `steps` steps after `warmup`, and the last loss. */
export async function timeMethod(
  name: MethodName,
  batch: number,
  steps: number,
  warmup: number,
  lean: boolean,
  each?: () => void,
): Promise<{ msPerStep: number; loss: number }> {
  const config = methodPreset(name, "tiny");
  const size = config.imageSize as number | [number, number];
  const [h, w] = typeof size === "number" ? [size, size] : size;
  const method = createMethod(name, config, 0, { batchSize: batch });
  const images = syntheticBatch(0, 0, batch, h, w);
  const all = new Map(method.params.names().map((n) => [n, method.params.get(n)] as const));
  const specs = method.optimizers.map((spec) => ({
    spec,
    vars: new Map(spec.params.map((n) => [n, method.params.get(n)] as const)),
    opt: new AdamW({ betas: spec.betas, eps: spec.eps }),
  }));
  const allVars = [...new Set(specs.flatMap((s) => [...s.vars.values()]))];
  const nameOf = new Map([...all].map(([n, v]) => [v.name, n]));
  const grad = lean ? leanVariableGrads : tf.variableGrads;
  let loss = NaN;
  // As bench/speed.ts: the loss is read with `await` (no synchronous read on webgpu), and that read
  // closes each timed region so a GPU backend is timed on its work, not on submitting it.
  let pending: tf.Tensor | null = null;
  const readLoss = async () => {
    loss = (await pending!.data())[0];
    pending!.dispose();
    pending = null;
  };
  const step = (it: number, read: boolean) => {
    const rng = Rng.from(0, "speed", it);
    const prepared = method.prepare(images, rng.fork("prepare"));
    const { value, grads } = grad(() => {
      const out = method.loss(prepared, rng.fork("loss"));
      tf.dispose(Object.values(out.metrics));
      return out.loss;
    }, allVars);
    const byName = new Map(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g]));
    for (const { spec, vars, opt } of specs) {
      let g = new Map([...vars.keys()].filter((n) => byName.has(n)).map((n) => [n, byName.get(n)!]));
      if (spec.clipGradNorm !== undefined) g = clipGradNorm(g, spec.clipGradNorm);
      opt.step(vars, g, (n) => spec.hyper(it, n));
      if (spec.clipGradNorm !== undefined) tf.dispose([...g.values()]);
    }
    tf.dispose(Object.values(grads));
    prepared.dispose?.();
    method.afterStep?.(it);
    if (read) pending = value;
    else value.dispose();
    each?.();
  };
  for (let i = 0; i < warmup; i++) step(i, i === warmup - 1);
  if (warmup > 0) await readLoss();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step(warmup + i, i === steps - 1);
  await readLoss();
  const msPerStep = (performance.now() - t0) / steps;
  if (!Number.isFinite(loss)) throw new Error(`speed: ${name} loss is ${loss} after ${warmup + steps} steps`);
  for (const s of specs) s.opt.dispose();
  method.dispose();
  return { msPerStep, loss };
}
