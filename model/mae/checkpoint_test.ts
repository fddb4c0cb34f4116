/**
 * MAE checkpoint loading: a state dict under `model.` (as converted official checkpoints
 * are) round-trips to an encoder whose features equal the training method's, the
 * architecture is read from the shapes, and another resolution recomputes the sin-cos
 * position embedding. ~3 s on 2 cores (wasm).
 */
import assert from "node:assert/strict";
import { initBackend } from "../engine.ts";
import { initialValues } from "../method.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { Rng } from "../rng.ts";
import { writeSafetensors } from "../safetensors.ts";
import { maeConfig } from "./config.ts";
import { MaeMethod } from "./method.ts";
import { loadMaeEncoder } from "./checkpoint.ts";

await initBackend("wasm");

Deno.test("loadMaeEncoder: official-style state dict round-trips; other resolutions recompute pos_embed", async () => {
  const config = maeConfig("tiny", { embedDim: 64, depth: 2, decoderDepth: 1 }); // 64 wide -> 1 head by default
  const m = new MaeMethod({ ...config, numHeads: 1 }, { seed: 7, batchSize: 8 });
  const dir = await Deno.makeTempDir();
  try {
    const host = initialValues(m.stepSpec());
    const tensors = new Map([...host].map(([n, t]) => [`model.${n}`, t]));
    await writeSafetensors(`${dir}/mae.safetensors`, tensors);
    const images = { shape: [2, 3, 32, 32], data: Rng.from(1).fillNormal(new Float32Array(2 * 3 * 32 * 32)) };
    const ours = tfEncoder(m, host);
    const ref = await ours.encode(images);
    ours.dispose();
    const enc = await loadMaeEncoder(`${dir}/mae.safetensors`);
    assert.deepEqual(enc.info, { arch: "vit_d64_patch4_32.mae", embedDim: 64, patchSize: 4, imageSize: [32, 32] });
    const got = await enc.encode(images);
    assert.deepEqual(got.patches.data, ref.patches.data);
    assert.deepEqual(got.global?.data, ref.global?.data);
    enc.dispose();

    const wide = await loadMaeEncoder(`${dir}/mae.safetensors`, { imageSize: [32, 48] });
    const f = await wide.encode({ shape: [1, 3, 32, 48], data: new Float32Array(3 * 32 * 48) });
    assert.deepEqual(f.patches.shape, [1, 8, 12, 64]);
    wide.dispose();
    await assert.rejects(() => loadMaeEncoder(`${dir}/nothing.safetensors`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
