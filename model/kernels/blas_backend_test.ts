/**
 * The `blas` backend's replaced kernels (Sum, Slice, SplitV, Erf, Identity, Cast) agree with `wasm`,
 * a small ViT training step agrees with `wasm` and is bit-for-bit deterministic, and without a BLAS
 * library `initBackend("blas")` falls back to `wasm` with a one-line notice.
 * BLAS-specific tests are skipped, with the reason printed, when no library is installed.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { blasUnavailableReason, loadBlas } from "./blas.ts";
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

const blas = loadBlas();
if (!blas) console.log(`blas_backend_test: BLAS-specific tests skipped: ${blasUnavailableReason()}`);

type Op = { name: string; shape: number[]; f: (x: tf.Tensor) => tf.Tensor | tf.Tensor[] };

const OPS: Op[] = [
  { name: "sum leading 1", shape: [6, 5], f: (x) => tf.sum(x, 0) },
  { name: "sum leading 2 keepDims", shape: [3, 4, 5], f: (x) => tf.sum(x, [1, 0], true) },
  { name: "sum leading negative", shape: [3, 4, 5], f: (x) => tf.sum(x, [-3]) },
  { name: "sum inner (wasm path)", shape: [3, 4, 5], f: (x) => tf.sum(x, -1) },
  { name: "sum middle (wasm path)", shape: [3, 4, 5], f: (x) => tf.sum(x, 1) },
  { name: "sum all (wasm path)", shape: [3, 4, 5], f: (x) => tf.sum(x) },
  { name: "slice 1-D", shape: [10], f: (x) => tf.slice(x, 3, 4) },
  { name: "slice 2-D rows", shape: [6, 5], f: (x) => tf.slice(x, [1, 0], [3, 5]) },
  { name: "slice 2-D cols", shape: [6, 5], f: (x) => tf.slice(x, [1, 2], [4, 2]) },
  { name: "slice 3-D", shape: [3, 4, 5], f: (x) => tf.slice(x, [1, 1, 0], [2, 3, 5]) },
  { name: "slice 5-D", shape: [2, 3, 2, 4, 3], f: (x) => tf.slice(x, [1, 0, 1, 1, 1], [1, 3, 1, 2, 2]) },
  { name: "slice empty", shape: [4, 4], f: (x) => tf.slice(x, [1, 1], [0, 2]) },
  { name: "split last", shape: [2, 3, 9], f: (x) => tf.split(x, 3, -1) },
  { name: "split sizes axis 1", shape: [2, 7, 3], f: (x) => tf.split(x, [2, 4, 1], 1) },
  { name: "erf", shape: [7, 9], f: (x) => tf.erf(tf.mul(x, 2)) },
  { name: "erf tails", shape: [5], f: (x) => tf.erf(tf.add(tf.mul(x, 0), tf.tensor([-9, -4, 0, 3.99, 12]))) },
  { name: "identity (clone)", shape: [4, 3], f: (x) => tf.clone(x) },
  { name: "cast same dtype", shape: [4, 3], f: (x) => tf.cast(x, "float32") },
  { name: "cast to int32", shape: [4, 3], f: (x) => tf.cast(tf.mul(x, 3), "int32") },
  { name: "slice int32", shape: [5, 4], f: (x) => tf.slice(tf.cast(tf.mul(x, 9), "int32"), [1, 1], [3, 2]) },
];

/** Forward outputs and the gradient of sum(outputs * w) for one op, on the current backend. */
function evaluate(op: Op, seed: number): number[][] {
  return tf.tidy(() => {
    const rng = Rng.from(seed, "blas_backend_test");
    const x = tf.tensor(rng.fillNormal(new Float32Array(op.shape.reduce((p, d) => p * d, 1))), op.shape);
    const outs = [op.f(x)].flat();
    const res = outs.map((t) => [...t.dataSync()]);
    if (outs.every((t) => t.dtype === "float32")) {
      const g = tf.grad((a: tf.Tensor) => tf.addN([op.f(a)].flat().map((t, i) => tf.sum(tf.mul(t, i + 1)))))(x);
      res.push([...g.dataSync()]);
    }
    return res;
  });
}

Deno.test({
  name: "blas kernels agree with wasm (Sum, Slice, SplitV, Erf, Identity, Cast; values and gradients)",
  ignore: !blas,
  fn: async () => {
    await initBackend("wasm");
    const want = OPS.map((op, i) => evaluate(op, i));
    await initBackend("blas");
    OPS.forEach((op, i) => {
      const got = evaluate(op, i);
      assert.equal(got.length, want[i].length, op.name);
      got.forEach((g, j) => {
        assert.equal(g.length, want[i][j].length, `${op.name} output ${j} length`);
        g.forEach((v, k) =>
          assert.ok(
            Math.abs(v - want[i][j][k]) <= 1e-5 * Math.max(1, Math.abs(v)),
            `${op.name}[${j}][${k}]: ${v} vs ${want[i][j][k]}`,
          )
        );
      });
    });
  },
});

Deno.test({
  name: "blas shares buffers safely: a clone outlives its disposed source",
  ignore: !blas,
  fn: async () => {
    await initBackend("blas");
    const before = tf.memory().numTensors;
    const x = tf.tensor([1, 2, 3]);
    const y = tf.clone(x), z = tf.cast(x, "float32");
    x.dispose();
    assert.deepEqual([...y.dataSync(), ...z.dataSync()], [1, 2, 3, 1, 2, 3]);
    tf.dispose([y, z]);
    assert.equal(tf.memory().numTensors, before);
  },
});

/** Loss and every gradient of a tiny ViT (first step), flattened, on the current backend. */
function vitStep(): Float32Array[] {
  const model = tinyVit(1);
  const patches = tf.tensor(Rng.from(2, "patches").fillNormal(new Float32Array(3 * 4 * 48)), [3, 4, 48]);
  const vars = [...model.params.trainable().values()];
  const { value, grads } = tf.variableGrads(() => model.loss(patches), vars);
  const out = [value, ...vars.map((v) => grads[v.name])].map((t) => t.dataSync() as Float32Array);
  tf.dispose([patches, value, ...Object.values(grads)]);
  model.dispose();
  return out;
}

Deno.test({
  name: "a ViT training step on blas matches wasm and is bit-for-bit deterministic",
  ignore: !blas,
  fn: async () => {
    await initBackend("wasm");
    const want = vitStep();
    await initBackend("blas");
    const before = tf.memory().numTensors;
    const got = vitStep();
    assert.equal(tf.memory().numTensors, before, "tensors leaked by a blas training step");
    got.forEach((g, i) =>
      g.forEach((v, k) => {
        const tol = 1e-4 * Math.max(1e-3, Math.abs(want[i][k])) + 1e-7;
        assert.ok(Math.abs(v - want[i][k]) <= tol, `tensor ${i}[${k}]: blas ${v} vs wasm ${want[i][k]}`);
      })
    );
    assert.deepEqual(vitStep(), got);
  },
});

Deno.test("without a BLAS library, backend blas falls back to wasm with a one-line notice", async () => {
  const script = `import { initBackend, tf } from ${JSON.stringify(new URL("../engine.ts", import.meta.url).href)};
    await initBackend("blas"); await initBackend("blas"); console.log("backend=" + tf.getBackend());`;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", script],
    env: { BLAS_LIB: "/nonexistent/libopenblas.so.0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout), err = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, err);
  assert.match(out, /backend=wasm/);
  const notices = (out + err).split("\n").filter((l) => l.includes("falling back to the wasm kernels"));
  assert.equal(notices.length, 1, `expected one notice, got:\n${out}${err}`);
  assert.match(notices[0], /\/nonexistent\/libopenblas\.so\.0/);
});
