/** ViT building blocks against fixture intermediates and known answers. */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { loadFixture } from "../fixture.ts";
import { maxRelErr } from "../parity.ts";
import type { Tensor } from "../ops/ops.ts";
import { fromTf, TfOps, toTf } from "../ops/tf_ops.ts";
import { linear, mergeHeads, patchEmbed, patchify, scaledDotProductAttention, splitHeads, unpatchify } from "./mod.ts";

const CAPI = new URL("../testdata/capi_tiny.json", import.meta.url).pathname;
const MAE = new URL("../testdata/mae_tiny.json", import.meta.url).pathname;

await initBackend("wasm");

const o = new TfOps();
const t = (h: { shape: number[]; data: Float32Array }) => o.constant(h);
const data = (x: Tensor) => toTf(x).dataSync();
const T = (x: tf.Tensor) => fromTf(x);

Deno.test("patch embedding (host patchify + matmul) equals the official Conv2d", async () => {
  const fx = await loadFixture(CAPI);
  const p = (fx.config.model as { patch_size: number }).patch_size;
  const ours = tf.tidy(() => {
    const patches = patchify(fx.f32("input.images"), p);
    const e = patchEmbed(
      o,
      t(patches),
      t(fx.f32("param.student.backbone.patch_embed.weight")),
      t(fx.f32("param.student.backbone.patch_embed.bias")),
    );
    return data(o.transpose(e, [0, 2, 1])); // (B, N, D) -> (B, D, N) = the conv's (B, D, G, G)
  });
  const ref = fx.f32("student.patch_embed_conv");
  assert.ok(maxRelErr(ours, ref.data) <= 1e-5, `max rel err ${maxRelErr(ours, ref.data)}`);
});

Deno.test("weight-free RMSNorm reproduces the teacher's final encoder norm", async () => {
  const fx = await loadFixture(CAPI);
  const eps = (fx.config.model as { norm_layer_kwargs: { eps: number } }).norm_layer_kwargs.eps;
  const ours = tf.tidy(() => data(o.rmsNorm(t(fx.f32("teacher.encoder.block1.out")), null, eps)));
  const ref = fx.f32("teacher.enc_norm_out");
  assert.ok(maxRelErr(ours, ref.data) <= 1e-5, `max rel err ${maxRelErr(ours, ref.data)}`);
});

Deno.test("MAE patchify order (py, px, c) matches the fixture target", async () => {
  const fx = await loadFixture(MAE);
  const p = fx.config.patch_size as number;
  const ours = patchify(fx.f32("input.images"), p, "hwc");
  assert.deepEqual(ours.shape, fx.f32("target.patchified").shape);
  assert.equal(maxRelErr(ours.data, fx.f32("target.patchified").data), 0);
  const back = unpatchify(ours, p, [8, 8], "hwc");
  assert.deepEqual(back.data, fx.f32("input.images").data);
});

Deno.test("LayerNorm, RMSNorm with weight, GELU (ops) and linear: known answers", () => {
  tf.tidy(() => {
    const x = T(tf.tensor2d([[1, 2, 3, 4]]));
    const ln = data(o.layerNorm(x, T(tf.tensor1d([1, 1, 2, 1])), T(tf.tensor1d([0, 0, 0, 1])), 0));
    const s = Math.sqrt(1.25);
    assert.deepEqual(
      [...ln].map((v) => +v.toFixed(5)),
      [-1.5 / s, -0.5 / s, 1 / s, 1.5 / s + 1].map((v) => +v.toFixed(5)),
    );
    const rms = data(o.rmsNorm(x, T(tf.tensor1d([2, 2, 2, 2])), 0));
    const r = Math.sqrt(7.5);
    assert.ok(maxRelErr(rms, [2 / r, 4 / r, 6 / r, 8 / r]) < 1e-6);
    // Exact GELU(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.841344746...; the tanh form gives 0.841192.
    const g = data(o.gelu(T(tf.tensor1d([1, -1, 0]))));
    assert.ok(maxRelErr(g, [0.8413447460685429, -0.15865525393145707, 0]) < 2e-7, `gelu ${g}`);
    const y = data(
      linear(o, T(tf.tensor3d([[[1, 2]]])), T(tf.tensor2d([[1, 0], [0, 1], [1, 1]])), T(tf.tensor1d([0, 0, 10]))),
    );
    assert.deepEqual([...y], [1, 2, 13]);
  });
});

Deno.test("attention: equal keys average the values; heads split head-major", () => {
  tf.tidy(() => {
    const x = T(tf.tensor3d([[[0, 1, 2, 3], [4, 5, 6, 7]]])); // [B=1, L=2, D=4]
    const h = splitHeads(o, x, 2); // [1, 2, 2, 2]: head 0 = channels 0-1
    assert.deepEqual([...data(h)], [0, 1, 4, 5, 2, 3, 6, 7]);
    assert.deepEqual([...data(mergeHeads(o, h))], [...data(x)]);
    const q = T(tf.ones([1, 1, 1, 2]));
    const k = T(tf.zeros([1, 1, 3, 2]));
    const v = T(tf.tensor4d([[[[1, 2], [3, 4], [5, 9]]]]));
    assert.deepEqual([...data(scaledDotProductAttention(o, q, k, v))], [3, 5]);
    // A bias of -inf on two keys selects the third.
    const bias = T(tf.tensor4d([[[[-1e9, -1e9, 0]]]]));
    assert.deepEqual([...data(scaledDotProductAttention(o, q, k, v, { bias }))], [5, 9]);
  });
});
