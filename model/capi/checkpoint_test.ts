/** Loading CAPI backbones from safetensors: trainer checkpoints and official-style key names. */
import assert from "node:assert/strict";
import { initBackend } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import { type SafeTensor, writeSafetensors } from "../safetensors.ts";
import { tfEncoder, TfTrainEngine } from "../tf_train_engine.ts";
import { saveCheckpoint } from "../trainer.ts";
import { capiConfig } from "./config.ts";
import { loadCapiEncoder } from "./checkpoint.ts";
import { CapiMethod } from "./method.ts";

await initBackend("cpu");

Deno.test("a trainer checkpoint and an official-named state dict load into the same encoder", async () => {
  const cfg = capiConfig("tiny", {
    imageSize: [16, 12],
    embedDim: 32,
    numHeads: 4,
    encoderDepth: 2,
    decoderDepth: 3,
    numClusters: 8,
    nRegisters: 8,
    mlpRatio: 2,
  });
  const m = new CapiMethod(cfg, 5);
  const engine = new TfTrainEngine(m.stepSpec());
  // Make the EMA differ from the student so that the loader's choice is visible.
  await engine.restore({
    params: new Map([["ema.backbone.mask_token", { shape: [1, 32], data: new Float32Array(32).fill(0.5) }]]),
  });
  const dir = await Deno.makeTempDir();
  await saveCheckpoint(`${dir}/ckpt.safetensors`, m, engine, 3, {});
  const host = (await engine.snapshot()).params;
  const official = new Map<string, SafeTensor>();
  for (const [n, t] of host) if (n.startsWith("ema.backbone.")) official.set(n.slice("ema.backbone.".length), t);
  await writeSafetensors(`${dir}/official.safetensors`, official);

  const images: HostTensor<Float32Array> = {
    shape: [2, 3, 16, 12],
    data: Float32Array.from({ length: 2 * 3 * 16 * 12 }, (_, i) => Math.cos(i * 0.37)),
  };
  const ours = tfEncoder(m, host);
  const want = await ours.encode(images);
  ours.dispose();
  for (const file of ["ckpt.safetensors", "official.safetensors"]) {
    const enc = await loadCapiEncoder(`${dir}/${file}`, { imageSize: [16, 12] });
    assert.deepEqual(enc.info, m.encoderInfo, file);
    const got = await enc.encode(images);
    assert.deepEqual(got, want, file);
    enc.dispose();
  }
  await assert.rejects(() => loadCapiEncoder(`${dir}/nope.safetensors`), /cannot read checkpoint/);
  engine.dispose();
  await Deno.remove(dir, { recursive: true });
});
