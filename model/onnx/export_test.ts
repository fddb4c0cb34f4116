/**
 * Exported encoders through onnxruntime against the tfjs encoders they came from:
 * every output within 1e-4 relative (`max |a-b| / max(1, |b|)`), on non-square images.
 */
import assert from "node:assert/strict";
import { initBackend } from "../engine.ts";
import { Rng } from "../rng.ts";
import { maxRelErr } from "../parity.ts";
import type { EncoderFeatures, VisionEncoder } from "../encoder.ts";
import { maeConfig, maeDims } from "../mae/config.ts";
import { MaeMethod } from "../mae/method.ts";
import { initialValues } from "../method.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { exportMaeEncoder } from "./export_mae.ts";
import { exportCapiEncoder } from "./export_capi.ts";
import { exportSimmimEncoder } from "./export_simmim.ts";
import { hostGetter } from "./export_vit.ts";
import { OrtEncoder } from "./ort_encoder.ts";

await initBackend("cpu");

function images(rng: Rng, b: number, h: number, w: number) {
  return { shape: [b, 3, h, w], data: rng.fillNormal(new Float32Array(b * 3 * h * w)) };
}

/** Compare ORT and tfjs features field by field. */
export async function assertSameFeatures(
  ours: VisionEncoder,
  ref: VisionEncoder,
  x: { shape: number[]; data: Float32Array },
) {
  const a = await ours.encode(x), b = await ref.encode(x);
  for (const k of ["global", "patches", "registers"] as (keyof EncoderFeatures)[]) {
    const av = a[k], bv = b[k];
    assert.equal(av === null, bv === null, `${k}: present in one encoder only`);
    if (!av || !bv) continue;
    assert.deepEqual(av.shape, bv.shape, `${k} shape`);
    const err = maxRelErr(av.data, bv.data);
    assert.ok(err <= 1e-4, `${k}: ORT vs tfjs max relative error ${err}`);
  }
}

Deno.test("MAE encoder: ONNX export equals tfjs (non-square)", async () => {
  const c = maeConfig("vit_l", {
    imageSize: [16, 24],
    patchSize: 4,
    embedDim: 32,
    depth: 2,
    numHeads: 2,
    decoderEmbedDim: 16,
    decoderDepth: 1,
    decoderNumHeads: 2,
  });
  const method = new MaeMethod(c, { seed: 1, batchSize: 8 });
  const params = initialValues(method.stepSpec());
  const ref = tfEncoder(method, params);
  const { model: bytes, adapter } = exportMaeEncoder(hostGetter(params, "mae"), c, maeDims(c), "vit_test.mae");
  const ort = await OrtEncoder.create(bytes, adapter);
  try {
    await assertSameFeatures(ort, ref, images(Rng.from(2, "img"), 3, 16, 24));
  } finally {
    ort.dispose();
    ref.dispose();
  }
});

Deno.test("CAPI encoder: ONNX export equals the official eval outputs (capi_tiny) and tfjs (non-square)", async () => {
  const { loadFixture } = await import("../fixture.ts");
  const { capiConfigFromFixture, capiDims } = await import("../capi/config.ts");
  const { CapiEncoderForward } = await import("../capi/method.ts");
  const fx = await loadFixture(new URL("../testdata/capi_tiny.json", import.meta.url).pathname);
  const params = new Map(fx.withPrefix("param.").map((n) => [n, fx.f32(`param.${n}`)] as const));
  const get = hostGetter(params, "capi_tiny");
  const c = capiConfigFromFixture(fx.config);
  const { model, adapter } = exportCapiEncoder(get, "student.backbone.", c, capiDims(c), "vit_test.capi"); // fixture eval = initial student
  const enc = await OrtEncoder.create(model, adapter);
  const f = await enc.encode(fx.f32("input.images"));
  enc.dispose();
  for (
    const [ours, ref] of [[f.patches, "eval.feature_map"], [f.global, "eval.global_repr"], [
      f.registers,
      "eval.registers",
    ]] as const
  ) {
    const r = fx.f32(ref);
    assert.deepEqual(ours!.shape, r.shape, ref);
    const err = maxRelErr(ours!.data, r.data);
    assert.ok(err <= 1e-4, `${ref}: ORT vs official max relative error ${err}`);
  }

  // Non-square: same weights, 32 x 48 images, against the tfjs eval forward.
  const c2 = { ...c, imageSize: [32, 48] as [number, number] };
  const d2 = capiDims(c2);
  const exp2 = exportCapiEncoder(get, "ema.backbone.", c2, d2, "vit_test.capi");
  const enc2 = await OrtEncoder.create(exp2.model, exp2.adapter);
  const x = images(Rng.from(3, "img"), 2, 32, 48);
  const ortF = await enc2.encode(x);
  enc2.dispose();
  const tfjs = tfEncoder(new CapiEncoderForward(c2, "ema.backbone."), params);
  const refF = await tfjs.encode(x);
  tfjs.dispose();
  for (
    const [name, ours, r] of [["global", ortF.global!, refF.global!], ["patches", ortF.patches, refF.patches], [
      "registers",
      ortF.registers!,
      refF.registers!,
    ]] as const
  ) {
    const err = maxRelErr(ours.data, r.data);
    assert.ok(err <= 1e-4, `non-square ${name}: ORT vs tfjs max relative error ${err}`);
  }
});

Deno.test("SimMIM encoder: ONNX export equals tfjs (non-square, random RPB table and LayerScale)", async () => {
  const { simmimConfig, simmimDims } = await import("../simmim/config.ts");
  const { SimmimMethod } = await import("../simmim/method.ts");
  const c = simmimConfig("vit_b", {
    imageSize: [16, 24],
    patchSize: 4,
    embedDim: 32,
    depth: 2,
    numHeads: 2,
    encoderStride: 4,
    maskPatchSize: 8,
  });
  const method = new SimmimMethod(c, { seed: 4, batchSize: 8 });
  const host = initialValues(method.stepSpec());
  // Randomise the zero-initialised table so a wrong bias layout cannot pass.
  const tname = "encoder.rel_pos_bias.relative_position_bias_table";
  const t = host.get(tname)!;
  host.set(tname, { shape: [...t.shape], data: Rng.from(5).fillNormal(new Float32Array(t.data.length), 0, 0.5) });
  const ref = tfEncoder(method, host);
  const exp = exportSimmimEncoder(hostGetter(host, "simmim"), c, simmimDims(c), "vit_test.simmim");
  const ort = await OrtEncoder.create(exp.model, exp.adapter);
  try {
    await assertSameFeatures(ort, ref, images(Rng.from(6, "img"), 2, 16, 24));
  } finally {
    ort.dispose();
    ref.dispose();
  }
});
