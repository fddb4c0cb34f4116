/**
 * The `blas` backend agrees with `wasm` and `cpu` on matMul values and gradients in every
 * transpose / batch / broadcast combination, and is bit-for-bit deterministic run to run.
 * Skipped, with the reason printed, when no BLAS library is installed.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { blasUnavailableReason, loadBlas } from "./blas.ts";
import { batchIndices, broadcastBatch } from "./blas_matmul.ts";

const blas = loadBlas();
if (!blas) console.log(`blas_matmul_test: BLAS-specific tests skipped: ${blasUnavailableReason()}`);

/**
 * [a shape, b shape] before transposition flags are applied to the last two axes. Batch shapes that
 * both broadcast ([2, 1] against [3]) are left out here: tfjs's own kernels get them wrong (they
 * flatten the batch axes), so they are checked against per-slice products below instead.
 */
const SHAPES: [number[], number[]][] = [
  [[5, 7], [7, 3]],
  [[1, 1], [1, 1]],
  [[2, 3, 5, 4], [2, 3, 4, 6]], // 4-D, equal batches
  [[2, 5, 4], [4, 6]], // b broadcast (one big sgemm)
  [[4, 6], [3, 6, 5]], // a broadcast
  [[17, 33], [33, 65]], // odd sizes past one micro-kernel tile
];

function tr(s: number[], t: boolean): number[] {
  return t ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s;
}

/** Forward value and gradients of sum(matMul(a, b, ta, tb) * w) on the current backend. */
function run(sa: number[], sb: number[], ta: boolean, tb: boolean, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const rng = Rng.from(seed, "blas_matmul_test");
    const mk = (s: number[]) => tf.tensor(rng.fillNormal(new Float32Array(s.reduce((p, d) => p * d, 1))), s);
    const a = mk(tr(sa, ta)), b = mk(tr(sb, tb));
    const f = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb);
    const y = f(a, b);
    const w = mk(y.shape);
    const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(f(x, z), w)))([a, b]);
    return [y, ga, gb].map((t) => t.dataSync() as Float32Array);
  });
}

function close(x: Float32Array, y: Float32Array, what: string): void {
  assert.equal(x.length, y.length, `${what}: length`);
  for (let i = 0; i < x.length; i++) {
    const tol = 1e-4 * Math.max(1, Math.abs(y[i]));
    if (Math.abs(x[i] - y[i]) > tol) assert.fail(`${what}[${i}]: blas ${x[i]} vs reference ${y[i]}`);
  }
}

Deno.test("broadcastBatch and batchIndices follow numpy broadcasting", () => {
  assert.deepEqual(broadcastBatch([2, 1], [3], [2, 1, 5, 4], [3, 4, 6]), [2, 3]);
  assert.deepEqual([...batchIndices([2, 1], [2, 3])], [0, 0, 0, 1, 1, 1]);
  assert.deepEqual([...batchIndices([3], [2, 3])], [0, 1, 2, 0, 1, 2]);
  assert.deepEqual([...batchIndices([], [2, 3])], [0, 0, 0, 0, 0, 0]);
  assert.throws(() => broadcastBatch([2], [3], [2, 4, 4], [3, 4, 4]), /batch axes of a \[2,4,4\] and b \[3,4,4\]/);
});

Deno.test({
  name: "blas agrees with wasm and cpu on matMul values and gradients (all transposes, batches, broadcasts)",
  ignore: !blas,
  fn: async () => {
    const cases: [number[], number[], boolean, boolean][] = [];
    for (const [sa, sb] of SHAPES) {
      for (const ta of [false, true]) for (const tb of [false, true]) cases.push([sa, sb, ta, tb]);
    }
    const results: Record<string, Float32Array[][]> = {};
    for (const backend of ["cpu", "wasm", "blas"] as const) {
      await initBackend(backend);
      assert.equal(tf.getBackend(), backend);
      results[backend] = cases.map(([sa, sb, ta, tb], i) => run(sa, sb, ta, tb, i));
    }
    cases.forEach(([sa, sb, ta, tb], i) => {
      for (const ref of ["cpu", "wasm"]) {
        ["y", "da", "db"].forEach((part, j) => {
          close(results.blas[i][j], results[ref][i][j], `a[${sa}] b[${sb}] tA=${ta} tB=${tb} ${part} vs ${ref}`);
        });
      }
    });
  },
});

Deno.test({
  name: "blas broadcasts batch axes on both sides as numpy does ([2, 1] against [3])",
  ignore: !blas,
  fn: async () => {
    await initBackend("blas");
    const rng = Rng.from(3, "broadcast");
    const a = tf.tensor(rng.fillNormal(new Float32Array(2 * 5 * 4)), [2, 1, 5, 4]);
    const b = tf.tensor(rng.fillNormal(new Float32Array(3 * 4 * 6)), [3, 4, 6]);
    const y = tf.matMul(a, b);
    assert.deepEqual(y.shape, [2, 3, 5, 6]);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const got = tf.tidy(() => tf.slice(y, [i, j, 0, 0], [1, 1, 5, 6]).dataSync() as Float32Array);
        const want = tf.tidy(() =>
          tf.sum(
            tf.mul(tf.reshape(tf.slice(a, [i, 0, 0, 0], [1, 1, 5, 4]), [5, 4, 1]), tf.slice(b, [j, 0, 0], [1, 4, 6])),
            1,
          )
            .dataSync() as Float32Array
        );
        close(got, want, `y[${i}, ${j}]`);
      }
    }
    tf.dispose([a, b, y]);
  },
});

Deno.test({
  name: "blas is bit-for-bit deterministic run to run and leaks no tensors",
  ignore: !blas,
  fn: async () => {
    await initBackend("blas");
    const before = tf.memory().numTensors;
    const first = run([8, 64, 192], [192, 768], false, false, 7);
    const attn = run([6, 64, 32], [6, 32, 64], false, true, 8);
    for (let rep = 0; rep < 3; rep++) {
      assert.deepEqual(run([8, 64, 192], [192, 768], false, false, 7), first);
      assert.deepEqual(run([6, 64, 32], [6, 32, 64], false, true, 8), attn);
    }
    assert.equal(tf.memory().numTensors, before);
  },
});
