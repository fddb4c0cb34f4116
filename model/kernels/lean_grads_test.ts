/**
 * `leanVariableGrads` returns exactly what `tf.variableGrads` returns, leaks nothing, and lowers the
 * peak number of live bytes of a ViT step (counted by tf.memory() at every kernel call).
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { leanVariableGrads } from "./lean_grads.ts";
import { ParamStore } from "../params.ts";
import { fromTf, TfOps, toTf } from "../ops/tf_ops.ts";
import { vitStepSpec } from "../ops/vit_step_spec.ts";

/** The reference ViT (model/ops/vit_step_spec.ts) on tfjs, 8x8 images: its parameters as variables and its loss. */
function tinyVit(seed: number) {
  const spec = vitStepSpec({ img: 8, patch: 4, dim: 24, depth: 2, heads: 3, mlpRatio: 4 }, seed);
  const store = new ParamStore();
  for (const [name, p] of spec.params) store.add(name, p.value, true);
  const o = new TfOps({ fused: false }), get = (n: string) => fromTf(store.get(n));
  const loss = (patches: tf.Tensor) =>
    tf.tidy(() => toTf(spec.loss(o, get, { patches: fromTf(patches) }).loss) as tf.Scalar);
  return { params: store, loss, dispose: () => store.dispose() };
}

type Grads = (f: () => tf.Scalar, vars: tf.Variable[]) => { value: tf.Scalar; grads: tf.NamedTensorMap };

/** Loss, gradients by parameter name, and the peak live bytes seen during the call. */
function step(grads: Grads, backend: string): { values: Map<string, Float32Array>; peak: number } {
  const model = tinyVit(3);
  const patches = tf.tensor(Rng.from(4, "patches").fillNormal(new Float32Array(2 * 4 * 48)), [2, 4, 48]);
  const vars = model.params.trainable();
  let peak = 0;
  const probe = tf.getKernel(tf.Multiply, backend)!;
  tf.unregisterKernel(tf.Multiply, backend);
  tf.registerKernel({
    ...probe,
    kernelFunc: (args) => {
      peak = Math.max(peak, tf.memory().numBytes);
      return probe.kernelFunc(args);
    },
  });
  try {
    const { value, grads: g } = grads(() => model.loss(patches), [...vars.values()]);
    const values = new Map([["loss", value.dataSync() as Float32Array]]);
    for (const [name, v] of vars) values.set(name, g[v.name].dataSync() as Float32Array);
    tf.dispose([value, ...Object.values(g)]);
    return { values, peak };
  } finally {
    tf.unregisterKernel(tf.Multiply, backend);
    tf.registerKernel(probe);
    patches.dispose();
    model.dispose();
  }
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`leanVariableGrads equals tf.variableGrads bit for bit, leaks nothing, peaks lower (${backend})`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const ref = step(tf.variableGrads, backend);
    const lean = step(leanVariableGrads, backend);
    assert.equal(tf.memory().numTensors, before, "tensors leaked");
    assert.deepEqual([...lean.values.keys()], [...ref.values.keys()]);
    for (const [name, v] of ref.values) assert.deepEqual(lean.values.get(name), v, name);
    assert.ok(lean.peak < ref.peak, `peak live bytes: lean ${lean.peak} vs tfjs ${ref.peak}`);
  });
}

Deno.test("leanVariableGrads errors say what is wrong", async () => {
  await initBackend("cpu");
  const v = tf.variable(tf.scalar(2), false);
  assert.throws(() => leanVariableGrads(() => tf.square(v), [v]), /none of the 1 variables is trainable/);
  const w = tf.variable(tf.scalar(2));
  assert.throws(() => leanVariableGrads(() => tf.scalar(1), [w]), /no variable is connected to the loss/);
  tf.dispose([v, w]);
});
