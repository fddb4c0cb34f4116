/**
 * `fusedGelu` on `blas` agrees with `geluComposite` on wasm (values and gradients), leaks
 * nothing, and is `geluComposite` itself on backends without the fused kernels.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { blasUnavailableReason, loadBlas } from "./blas.ts";
import { expNonPositive, fusedGelu, geluComposite } from "./fused_gelu.ts";

const blas = loadBlas();
if (!blas) console.log(`fused_gelu_test: BLAS-specific tests skipped: ${blasUnavailableReason()}`);

function valueAndGrad(f: (x: tf.Tensor) => tf.Tensor): Float32Array[] {
  return tf.tidy(() => {
    const rng = Rng.from(5, "gelu");
    const data = rng.fillNormal(new Float32Array(3 * 40)).map((
      v,
      i,
    ) => (i < 8 ? [-9, -4.5, -1e-3, 0, 1e-3, 4.5, 9, 30][i] : 3 * v));
    const x = tf.tensor(data, [3, 40]);
    const w = tf.tensor(rng.fillNormal(new Float32Array(120)), [3, 40]);
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), w)))(x);
    return [f(x).dataSync() as Float32Array, g.dataSync() as Float32Array];
  });
}

Deno.test({
  name: "fusedGelu on blas matches geluComposite on wasm (values and gradients) and leaks nothing",
  ignore: !blas,
  fn: async () => {
    await initBackend("wasm");
    const want = valueAndGrad(geluComposite);
    await initBackend("blas");
    const before = tf.memory().numTensors;
    const got = valueAndGrad(fusedGelu);
    assert.equal(tf.memory().numTensors, before);
    ["value", "gradient"].forEach((what, j) =>
      got[j].forEach((v, i) => {
        assert.ok(
          Math.abs(v - want[j][i]) <= 1e-6 * Math.max(1, Math.abs(want[j][i])),
          `${what}[${i}]: ${v} vs ${want[j][i]}`,
        );
      })
    );
  },
});

Deno.test("fusedGelu is geluComposite on the cpu backend", async () => {
  await initBackend("cpu");
  assert.deepEqual(valueAndGrad(fusedGelu), valueAndGrad(geluComposite));
});

Deno.test("expNonPositive is within 2e-7 relative of Math.exp on [-87, 0]", () => {
  for (let a = -87; a <= 0; a += 0.0137) {
    const want = Math.exp(a);
    assert.ok(Math.abs(expNonPositive(a) - want) <= 2e-7 * want, `e^${a}: ${expNonPositive(a)} vs ${want}`);
  }
  assert.equal(expNonPositive(0), 1);
  assert.equal(expNonPositive(-1000), 0);
});
