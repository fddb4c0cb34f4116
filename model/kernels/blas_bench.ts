/**
 * Micro-benchmarks of the `blas` backend's kernels against the wasm kernels they replace.
 *
 *   deno bench -A model/kernels/blas_bench.ts
 *
 * Shapes are those of the reference ViT (batch 64, 64 tokens, width 192, 3 heads, MLP 768).
 * Each group's baseline is tfjs-backend-wasm. Measured 2026-11-27 on 2 cores shared with other
 * jobs (load 8): matMul [4096,192]x[192,768] 3.8x faster; its transposed forms (the gradients)
 * 35-48x; batched attention q k^T 42x; Sum over leading axes 44x; the qkv split 16x; clone 95x.
 */
import { initBackend, tf } from "../engine.ts";
import { loadBlas } from "./blas.ts";

const blas = loadBlas();
await initBackend("wasm");
if (blas) await initBackend("blas");
const BACKENDS = blas ? ["wasm", "blas"] : ["wasm"];

const x = tf.randomNormal([4096, 192]); // tokens x width
const w = tf.randomNormal([192, 768]); // fc1 (already transposed)
const dy = tf.randomNormal([4096, 768]);
const q = tf.randomNormal([192, 64, 64]); // [B*h, N, hd]
const qkv = tf.randomNormal([64, 64, 576]);

function bench(group: string, f: () => tf.Tensor | tf.Tensor[]): void {
  for (const backend of BACKENDS) {
    Deno.bench({
      name: `${group} (${backend})`,
      group,
      baseline: backend === "wasm",
      fn: async (b) => {
        await tf.setBackend(backend);
        b.start();
        tf.dispose(f());
        b.end();
      },
    });
  }
}

bench("matMul [4096,192]x[192,768]", () => tf.matMul(x, w));
bench("matMul grad dW: x^T dy (transposeA)", () => tf.matMul(x, dy, true, false));
bench("matMul grad dx: dy W^T (transposeB)", () => tf.matMul(dy, w, false, true));
bench("attention q k^T [192,64,64] (transposeB)", () => tf.matMul(q, q, false, true));
bench("sum [4096,768] over axis 0 (bias gradient)", () => tf.sum(dy, 0));
bench("split qkv [64,64,576] in 3", () => tf.split(qkv, 3, -1));
bench("clone [4096,768] (saved for backward)", () => tf.clone(dy));
