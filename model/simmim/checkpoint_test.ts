/**
 * SimMIM checkpoint loading: a full state dict (with the int relative_position_index
 * buffer, as the official one has) round-trips to an encoder whose features equal the
 * training method's, heads and grid are read from the RPB table, and a resolution the
 * table does not fit is refused. ~3 s on 2 cores (wasm).
 */
import assert from "node:assert/strict";
import { initBackend } from "../engine.ts";
import { initialValues } from "../method.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { Rng } from "../rng.ts";
import { writeSafetensors } from "../safetensors.ts";
import type { SafeTensor } from "../safetensors.ts";
import { simmimConfig } from "./config.ts";
import { SimmimMethod } from "./method.ts";
import { loadSimmimEncoder } from "./checkpoint.ts";
import { relativePositionIndex } from "./rel_pos_bias.ts";

await initBackend("wasm");

Deno.test("loadSimmimEncoder: official-style state dict round-trips; wrong resolution is refused", async () => {
  const m = new SimmimMethod(simmimConfig("tiny", { embedDim: 32, numHeads: 2, depth: 2 }), { seed: 7, batchSize: 8 });
  const dir = await Deno.makeTempDir();
  try {
    const host = initialValues(m.stepSpec());
    const tensors = new Map<string, SafeTensor>(host);
    tensors.set("encoder.rel_pos_bias.relative_position_index", { shape: [65, 65], data: relativePositionIndex(8, 8) });
    await writeSafetensors(`${dir}/simmim.safetensors`, tensors);
    const images = { shape: [2, 3, 32, 32], data: Rng.from(1).fillNormal(new Float32Array(2 * 3 * 32 * 32)) };
    const ours = tfEncoder(m, host);
    const ref = await ours.encode(images);
    ours.dispose();
    const enc = await loadSimmimEncoder(`${dir}/simmim.safetensors`);
    assert.deepEqual(enc.info, { arch: "vit_d32_patch4_32.simmim", embedDim: 32, patchSize: 4, imageSize: [32, 32] });
    const got = await enc.encode(images);
    assert.deepEqual(got.patches.data, ref.patches.data);
    assert.equal(got.global, null);
    enc.dispose();
    await assert.rejects(() => loadSimmimEncoder(`${dir}/simmim.safetensors`, { imageSize: 64 }), {
      message: `${dir}/simmim.safetensors: encoder.rel_pos_bias.relative_position_bias_table has 228 rows; ` +
        `imageSize 64 with patch 4 needs 964: evaluate at the checkpoint's resolution`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
