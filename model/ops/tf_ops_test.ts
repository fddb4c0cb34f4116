/**
 * `TfOps`: every op agrees with the direct tfjs computation (values and gradients), the gather fast
 * path is the gather kernel's exact result, tape pruning under `withGradients` gives bit-identical
 * gradients with fewer recorded ops, `stopGradient` stops gradients in both modes, and nothing leaks.
 * cpu backend (deterministic); the fused kernels on `blas` are tested in model/kernels.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { leanVariableGrads } from "../kernels/lean_grads.ts";
import { Rng } from "../rng.ts";
import type { Ops, Tensor } from "./ops.ts";
import { fromTf, GATHER_RUNS, runsOf, TfOps, toTf } from "./tf_ops.ts";

await initBackend("cpu");

const rnd = (seed: number, shape: number[], scale = 1) =>
  tf.tensor(Rng.from(seed, "tf_ops").fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, scale), shape);
const pos = (seed: number, shape: number[]) => tf.add(tf.abs(rnd(seed, shape)), 0.5);

/** [name, inputs, the op through `Ops`, the direct tfjs computation]. */
type Case = [string, () => tf.Tensor[], (o: Ops, xs: Tensor[]) => Tensor, (xs: tf.Tensor[]) => tf.Tensor];
const CASES: Case[] = [
  [
    "add (broadcast, number)",
    () => [rnd(1, [2, 3]), rnd(2, [3])],
    (o, [a, b]) => o.add(o.add(a, b), 2),
    ([a, b]) => tf.add(tf.add(a, b), 2),
  ],
  ["sub", () => [rnd(3, [2, 3]), rnd(4, [2, 1])], (o, [a, b]) => o.sub(a, b), ([a, b]) => tf.sub(a, b)],
  ["mul", () => [rnd(5, [2, 3]), rnd(6, [2, 3])], (o, [a, b]) => o.mul(a, b), ([a, b]) => tf.mul(a, b)],
  ["div", () => [rnd(7, [2, 3]), pos(8, [3])], (o, [a, b]) => o.div(a, b), ([a, b]) => tf.div(a, b)],
  ["maximum", () => [rnd(9, [4, 3])], (o, [a]) => o.maximum(a, 0.1), ([a]) => tf.maximum(a, 0.1)],
  [
    "neg, abs, square",
    () => [rnd(10, [5])],
    (o, [a]) => o.square(o.abs(o.neg(a))),
    ([a]) => tf.square(tf.abs(tf.neg(a))),
  ],
  [
    "sqrt, rsqrt, log",
    () => [pos(11, [5])],
    (o, [a]) => o.log(o.add(o.sqrt(a), o.rsqrt(a))),
    ([a]) => tf.log(tf.add(tf.sqrt(a), tf.rsqrt(a))),
  ],
  [
    "exp, erf, sin, cos",
    () => [rnd(12, [6])],
    (o, [a]) => o.mul(o.exp(o.erf(a)), o.add(o.sin(a), o.cos(a))),
    ([a]) => tf.mul(tf.exp(tf.erf(a)), tf.add(tf.sin(a), tf.cos(a))),
  ],
  [
    "reshape, transpose",
    () => [rnd(13, [2, 3, 4])],
    (o, [a]) => o.transpose(o.reshape(a, [3, -1, 2]), [2, 0, 1]),
    ([a]) => tf.transpose(tf.reshape(a, [3, -1, 2]), [2, 0, 1]),
  ],
  [
    "concat, slice",
    () => [rnd(14, [2, 3]), rnd(15, [2, 2])],
    (o, [a, b]) => o.slice(o.concat([a, b], 1), [1, 1], [1, -1]),
    ([a, b]) => tf.slice(tf.concat([a, b], 1), [1, 1], [1, -1]),
  ],
  ["split", () => [rnd(16, [2, 6])], (o, [a]) => {
    const [x, y] = o.split(a, [2, 4], 1);
    return o.add(o.sum(x, 1), o.sum(y, 1));
  }, ([a]) => {
    const [x, y] = tf.split(a, [2, 4], 1);
    return tf.add(tf.sum(x, 1), tf.sum(y, 1));
  }],
  [
    "gather (kernel: indices not from input)",
    () => [rnd(17, [5, 3])],
    (o, [a]) => o.gather(a, o.constant({ shape: [4], data: Int32Array.from([4, 0, 0, 2]) }), 0),
    ([a]) => tf.gather(a, tf.tensor1d([4, 0, 0, 2], "int32"), 0),
  ],
  [
    "gather axis 1, 2-D indices",
    () => [rnd(18, [2, 5, 3])],
    (o, [a]) => o.gather(a, o.constant({ shape: [2, 2], data: Int32Array.from([1, 3, 0, 4]) }), 1),
    ([a]) => tf.gather(a, tf.tensor2d([1, 3, 0, 4], [2, 2], "int32"), 1),
  ],
  [
    "broadcastTo",
    () => [rnd(19, [1, 1, 3])],
    (o, [a]) => o.broadcastTo(a, [2, 4, 3]),
    ([a]) => tf.broadcastTo(a, [2, 4, 3]),
  ],
  [
    "sum, mean (negative axes, keepDims)",
    () => [rnd(20, [2, 3, 4])],
    (o, [a]) => o.add(o.sum(a, -1, true), o.mean(a, [0, 2], true)),
    ([a]) => tf.add(tf.sum(a, -1, true), tf.mean(a, [0, 2], true)),
  ],
  ["max", () => [rnd(21, [3, 4])], (o, [a]) => o.max(a, 0, true), ([a]) => tf.max(a, 0, true)],
  [
    "matMul (batch broadcast)",
    () => [rnd(22, [2, 3, 4]), rnd(23, [4, 5])],
    (o, [a, b]) => o.matMul(a, b),
    ([a, b]) => tf.matMul(a, b),
  ],
  [
    "matMul transposeA/B",
    () => [rnd(24, [2, 4, 3]), rnd(25, [2, 5, 4])],
    (o, [a, b]) => o.matMul(a, b, true, true),
    ([a, b]) => tf.matMul(a, b, true, true),
  ],
  [
    "softmax, logSoftmax",
    () => [rnd(26, [3, 5])],
    (o, [a]) => o.add(o.softmax(a, -1), o.logSoftmax(a, 1)),
    ([a]) => tf.add(tf.softmax(a, -1), tf.logSoftmax(a, 1)),
  ],
  [
    "gelu (exact)",
    () => [rnd(27, [4, 6], 2)],
    (o, [a]) => o.gelu(a),
    ([a]) => tf.mul(tf.mul(a, 0.5), tf.add(tf.erf(tf.mul(a, Math.SQRT1_2)), 1)),
  ],
  [
    "layerNorm",
    () => [rnd(28, [3, 8]), pos(29, [8]), rnd(30, [8])],
    (o, [x, w, b]) => o.layerNorm(x, w, b, 1e-5),
    ([x, w, b]) => {
      const c = tf.sub(x, tf.mean(x, -1, true));
      return tf.add(tf.mul(tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), -1, true), 1e-5))), w), b);
    },
  ],
  [
    "rmsNorm (with and without weight)",
    () => [rnd(31, [3, 8]), pos(32, [8])],
    (o, [x, w]) => o.add(o.rmsNorm(x, w, 1e-6), o.rmsNorm(x, null, 1e-6)),
    ([x, w]) => {
      const y = tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-6)));
      return tf.add(tf.mul(y, w), y);
    },
  ],
];

for (const [name, inputs, ours, direct] of CASES) {
  Deno.test(`TfOps ${name}: value and gradients equal the direct tfjs computation`, () => {
    const o = new TfOps();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const xs = inputs();
      const w = (t: tf.Tensor) => rnd(99, t.shape); // a random cotangent
      const a = toTf(ours(o, xs.map(fromTf)));
      const b = direct(xs);
      assert.deepEqual(a.shape, b.shape);
      const close = (x: tf.Tensor, y: tf.Tensor, what: string) => {
        const [u, v] = [x.dataSync(), y.dataSync()];
        u.forEach((val, i) =>
          assert.ok(Math.abs(val - v[i]) <= 1e-6 * Math.max(1, Math.abs(v[i])), `${what}[${i}]: ${val} vs ${v[i]}`)
        );
      };
      close(a, b, "value");
      const ga = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(toTf(ours(o, ts.map(fromTf))), w(a))))(xs);
      const gb = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(direct(ts), w(b))))(xs);
      ga.forEach((g, i) => close(g, gb[i], `grad ${i}`));
    });
    assert.equal(tf.memory().numTensors, before, "leaked tensors");
  });
}

Deno.test("runsOf: maximal runs of consecutive values", () => {
  assert.deepEqual(runsOf([0, 1, 2, 5, 6, 9]), [[0, 3], [5, 2], [9, 1]]);
  assert.deepEqual(runsOf([3, 2, 3, 4]), [[3, 1], [2, 3]]);
  assert.deepEqual(runsOf([]), []);
});

Deno.test("gather on input indices: slices (with a concat gradient when distinct) for few runs, the kernel for many; all exactly tf.gather", () => {
  const o = new TfOps();
  const before = tf.memory().numTensors;
  const cases = {
    "duplicate": Int32Array.from([0, 1, 2, 5, 6, 7, 7, 9]), // 4 runs, a repeated row: plain slices
    "ascending subset": Int32Array.from([0, 1, 2, 5, 6, 7, 9, 140, 141]), // distinct, gaps: concat gradient
    "permutation": Int32Array.from([...Array(150).keys()].map((i) => (i + 97) % 150)), // two runs, covers all rows
    "many runs": Int32Array.from({ length: 2 * GATHER_RUNS + 2 }, (_, i) => (i * 7) % 150), // the gather kernel
  };
  for (const [name, idx] of Object.entries(cases)) {
    tf.tidy(() => {
      const x = rnd(40, [150, 2, 3]);
      const w = rnd(41, [idx.length, 2, 3]);
      const f = (t: tf.Tensor) => toTf(o.gather(fromTf(t), o.input("idx", { shape: [idx.length], data: idx })));
      const g = (t: tf.Tensor) => tf.gather(t, tf.tensor1d(idx, "int32"));
      assert.deepEqual(f(x).dataSync(), g(x).dataSync(), name);
      const da = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), w)))(x);
      const db = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(g(t), w)))(x);
      assert.deepEqual(da.dataSync(), db.dataSync(), `${name}: gradient`);
    });
  }
  assert.equal(tf.memory().numTensors, before);
});

/** A loss with an untracked branch (a frozen "teacher" on constants), a stopped one and a tracked one. */
function lossOf(o: Ops, w: Tensor, frozen: Tensor, x: Tensor): Tensor {
  const teacher = o.softmax(o.matMul(x, frozen), -1); // no trainable input
  const y = o.matMul(x, w); // tracked
  const target = o.softmax(o.stopGradient(y), -1); // detached
  return o.add(o.mean(o.square(o.sub(y, teacher)), [0, 1]), o.mean(o.mul(target, o.logSoftmax(y, -1)), [0, 1]));
}

Deno.test("withGradients: bit-identical gradients to the full tape, fewer ops recorded, nothing leaks", () => {
  const w = tf.variable(rnd(50, [6, 4]), true, "tf_ops_test.w");
  const frozen = tf.variable(rnd(51, [6, 4]), false, "tf_ops_test.frozen");
  const x = rnd(52, [5, 6]);
  const tapeLength = () => (tf.engine() as unknown as { state: { activeTape: unknown[] } }).state.activeTape.length;
  const run = (prune: boolean) => {
    const o = new TfOps();
    let recorded = 0;
    const f = () => {
      const out = toTf(lossOf(o, fromTf(w), fromTf(frozen), fromTf(x))) as tf.Scalar;
      recorded = tapeLength();
      return out;
    };
    const r = prune ? o.withGradients([w], () => leanVariableGrads(f, [w])) : leanVariableGrads(f, [w]);
    const out = { loss: r.value.dataSync()[0], grad: r.grads[w.name].dataSync(), recorded };
    tf.dispose([r.value, ...Object.values(r.grads)]);
    return out;
  };
  run(true); // warm-up: tfjs creates its scalar constants once
  const before = tf.memory().numTensors;
  const full = run(false), pruned = run(true);
  assert.equal(tf.memory().numTensors, before, "leaked tensors");
  assert.equal(pruned.loss, full.loss);
  assert.deepEqual(pruned.grad, full.grad);
  assert.ok(pruned.recorded < full.recorded, `recorded ${pruned.recorded} ops pruned vs ${full.recorded} full`);
  // The detached branch carries no gradient: the gradient equals the one without it, computed by hand.
  const o = new TfOps();
  const wc = tf.clone(w); // outside the gradient: a constant
  const ref = tf.grad((t: tf.Tensor) => {
    const y = tf.matMul(x, t);
    const teacher = tf.softmax(tf.matMul(x, frozen), -1);
    const target = tf.softmax(tf.matMul(x, wc), -1);
    return tf.add(tf.mean(tf.square(tf.sub(y, teacher))), tf.mean(tf.mul(target, tf.logSoftmax(y, -1))));
  })(w);
  const rv = ref.dataSync();
  pruned.grad.forEach((v, i) => assert.ok(Math.abs(v - rv[i]) <= 1e-6 * Math.max(1, Math.abs(rv[i])), `grad[${i}]`));
  assert.throws(() => o.withGradients([w], () => o.withGradients([w], () => 0)), /already inside withGradients/);
  tf.dispose([w, wc, frozen, x, ref]);
});
