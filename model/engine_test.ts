/**
 * The `cpu` and `wasm` backends agree on forward values and gradients of every op the
 * models use, including the engine's replacement gradients for BatchMatMul and GatherV2.
 */
import assert from "node:assert/strict";
import { initBackend, parseBackend, swapLastAxes, tf } from "./engine.ts";
import { Rng } from "./rng.ts";

type Case = { name: string; shapes: number[][]; f: (...xs: tf.Tensor[]) => tf.Tensor; int?: boolean };

const CASES: Case[] = [
  { name: "matMul 2-D", shapes: [[5, 7], [7, 3]], f: (a, b) => tf.matMul(a, b) },
  { name: "matMul transposeB", shapes: [[5, 7], [3, 7]], f: (a, b) => tf.matMul(a, b, false, true) },
  { name: "matMul transposeA", shapes: [[7, 5], [7, 3]], f: (a, b) => tf.matMul(a, b, true, false) },
  { name: "matMul both", shapes: [[7, 5], [3, 7]], f: (a, b) => tf.matMul(a, b, true, true) },
  { name: "matMul 4-D", shapes: [[2, 3, 5, 4], [2, 3, 4, 6]], f: (a, b) => tf.matMul(a, b) },
  { name: "matMul broadcast", shapes: [[2, 5, 4], [4, 6]], f: (a, b) => tf.matMul(a, b) },
  { name: "transpose 4-D", shapes: [[2, 3, 4, 5]], f: (a) => tf.transpose(a, [0, 2, 1, 3]) },
  { name: "swapLastAxes 5-D", shapes: [[2, 2, 3, 4, 5]], f: (a) => swapLastAxes(a) },
  { name: "softmax", shapes: [[3, 4, 9]], f: (a) => tf.softmax(tf.mul(a, 3), -1) },
  { name: "logSoftmax", shapes: [[6, 9]], f: (a) => tf.logSoftmax(a, -1) },
  { name: "erf", shapes: [[40]], f: (a) => tf.erf(tf.mul(a, 2)) },
  { name: "rsqrt mean square", shapes: [[4, 8]], f: (a) => tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), 1e-5)) },
  { name: "exp log", shapes: [[4, 8]], f: (a) => tf.log(tf.add(tf.exp(a), 1)) },
  { name: "sin cos", shapes: [[4, 8]], f: (a) => tf.add(tf.sin(a), tf.cos(tf.mul(a, 2))) },
  { name: "max sum", shapes: [[5, 6]], f: (a) => tf.add(tf.max(a, 0, true), tf.sum(a, 1, true)) },
  {
    name: "gather axis 0",
    shapes: [[6, 4]],
    f: (a) => tf.gather(a, tf.tensor1d([5, 0, 3, 3], "int32"), 0),
  },
  {
    name: "gather axis 1",
    shapes: [[3, 6, 4]],
    f: (a) => tf.gather(a, tf.tensor1d([1, 4, 4, 0], "int32"), 1),
  },
  { name: "l2 normalise", shapes: [[5, 8]], f: (a) => tf.div(a, tf.maximum(tf.norm(a, 2, -1, true), 1e-12)) },
];

function inputs(shapes: number[][], seed: number): { shape: number[]; data: Float32Array }[] {
  const rng = Rng.from(seed, "engine_test");
  return shapes.map((shape) => ({
    shape,
    data: rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))),
  }));
}

/** Forward value and gradient of sum(f(x) * w) for a fixed random w, on the current backend. */
function evaluate(c: Case, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const xs = inputs(c.shapes, seed).map((t) => tf.tensor(t.data, t.shape));
    const y = c.f(...xs);
    const w = tf.tensor(Rng.from(seed, "w").fillNormal(new Float32Array(y.size)), y.shape);
    const grads = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(c.f(...a), w)))(xs);
    return [y, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

Deno.test("cpu and wasm agree on forward values and gradients", async () => {
  const results: Record<string, Float32Array[][]> = {};
  for (const backend of ["cpu", "wasm"] as const) {
    await initBackend(backend);
    assert.equal(tf.getBackend(), backend);
    results[backend] = CASES.map((c, i) => evaluate(c, 100 + i));
  }
  CASES.forEach((c, i) => {
    results.cpu[i].forEach((ref, j) => {
      const got = results.wasm[i][j];
      assert.equal(got.length, ref.length, `${c.name} output ${j} length`);
      for (let k = 0; k < ref.length; k++) {
        const err = Math.abs(got[k] - ref[k]) / Math.max(1, Math.abs(ref[k]));
        assert.ok(
          err <= 1e-5,
          `${c.name} ${j === 0 ? "forward" : `grad ${j - 1}`}[${k}]: wasm ${got[k]} cpu ${ref[k]}`,
        );
      }
    });
  });
});

Deno.test("matMul gradient equals a finite-difference estimate", async () => {
  await initBackend("cpu");
  const [a, b] = inputs([[3, 4], [4, 2]], 7).map((t) => tf.tensor(t.data, t.shape));
  const f = (x: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, b)));
  const g = tf.grad(f)(a).dataSync();
  const base = a.dataSync();
  const h = 1e-2;
  for (let i = 0; i < base.length; i++) {
    const plus = Float32Array.from(base), minus = Float32Array.from(base);
    plus[i] += h;
    minus[i] -= h;
    const fd = (f(tf.tensor(plus, a.shape)).dataSync()[0] - f(tf.tensor(minus, a.shape)).dataSync()[0]) / (2 * h);
    assert.ok(Math.abs(fd - g[i]) < 1e-2 * Math.max(1, Math.abs(fd)), `d/da[${i}]: analytic ${g[i]} vs fd ${fd}`);
  }
  tf.dispose([a, b]);
});

Deno.test("parseBackend names the valid backends", () => {
  assert.equal(parseBackend(undefined), "wasm");
  assert.equal(parseBackend("cpu"), "cpu");
  assert.throws(() => parseBackend("gpu"), /unknown backend 'gpu'; expected one of wasm, cpu, tensorflow/);
});
