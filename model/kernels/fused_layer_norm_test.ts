/**
 * `fusedLayerNorm` on `blas` agrees with `layerNormComposite` on wasm (values and the gradients
 * of x, w and b), leaks nothing, is deterministic, and is `layerNormComposite` itself on cpu.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { blasUnavailableReason, loadBlas } from "./blas.ts";
import { fusedLayerNorm, layerNormComposite } from "./fused_layer_norm.ts";

const blas = loadBlas();
if (!blas) console.log(`fused_layer_norm_test: BLAS-specific tests skipped: ${blasUnavailableReason()}`);

type Ln = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number) => tf.Tensor;

function valueAndGrads(f: Ln, eps: number): Float32Array[] {
  return tf.tidy(() => {
    const rng = Rng.from(6, "ln");
    const x = tf.add(tf.mul(tf.tensor(rng.fillNormal(new Float32Array(2 * 5 * 24)), [2, 5, 24]), 3), 1.5);
    const w = tf.tensor(rng.fillNormal(new Float32Array(24)));
    const b = tf.tensor(rng.fillNormal(new Float32Array(24)));
    const u = tf.tensor(rng.fillNormal(new Float32Array(240)), [2, 5, 24]);
    const gs = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => tf.sum(tf.mul(f(a, c, e, eps), u)))([x, w, b]);
    return [f(x, w, b, eps), ...gs].map((t) => t.dataSync() as Float32Array);
  });
}

Deno.test({
  name: "fusedLayerNorm on blas matches layerNormComposite on wasm (value, dx, dw, db), deterministic, no leaks",
  ignore: !blas,
  fn: async () => {
    for (const eps of [1e-6, 1e-5]) {
      await initBackend("wasm");
      const want = valueAndGrads(layerNormComposite, eps);
      await initBackend("blas");
      const before = tf.memory().numTensors;
      const got = valueAndGrads(fusedLayerNorm, eps);
      assert.equal(tf.memory().numTensors, before, "tensors leaked");
      ["y", "dx", "dw", "db"].forEach((what, j) =>
        got[j].forEach((v, i) => {
          const tol = 2e-5 * Math.max(1, Math.abs(want[j][i]));
          assert.ok(Math.abs(v - want[j][i]) <= tol, `eps ${eps} ${what}[${i}]: ${v} vs ${want[j][i]}`);
        })
      );
      assert.deepEqual(valueAndGrads(fusedLayerNorm, eps), got);
    }
  },
});

Deno.test("fusedLayerNorm is layerNormComposite on the cpu backend", async () => {
  await initBackend("cpu");
  assert.deepEqual(valueAndGrads(fusedLayerNorm, 1e-6), valueAndGrads(layerNormComposite, 1e-6));
});
