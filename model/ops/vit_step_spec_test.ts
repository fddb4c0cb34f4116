/**
 * The reference ViT of the speed benchmark (vit_step_spec.ts), one definition for both engines: onnxruntime
 * and tfjs compute the same loss on it, Adam steps lower it, its patches are in the torch twin's `(py, px, c)`
 * order, and its parameters are the timm-named set of issue 8's model. Its agreement with the PyTorch twin
 * (loss and AdamW step) is checked in bench/speed_twin_check_test.ts.
 */
import assert from "node:assert/strict";
import { initBackend } from "../engine.ts";
import { TfTrainEngine } from "../tf_train_engine.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { REFERENCE_VIT, vitDraws, vitImages, vitStepSpec } from "./vit_step_spec.ts";

const SMALL = { img: 16, patch: 4, dim: 24, depth: 2, heads: 3, mlpRatio: 4 };

Deno.test("reference ViT: issue 8's shape, timm names, patches in (py, px, c) order", () => {
  assert.deepEqual(REFERENCE_VIT, { img: 32, patch: 4, dim: 192, depth: 6, heads: 3, mlpRatio: 4 });
  const spec = vitStepSpec(SMALL, 0);
  assert.deepEqual([...spec.params.keys()].slice(0, 9), [
    "patch_embed.weight",
    "patch_embed.bias",
    "pos_embed",
    "blocks.0.norm1.weight",
    "blocks.0.norm1.bias",
    "blocks.0.attn.qkv.weight",
    "blocks.0.attn.qkv.bias",
    "blocks.0.attn.proj.weight",
    "blocks.0.attn.proj.bias",
  ]);
  assert.equal(spec.params.size, 3 + 12 * SMALL.depth + 4);
  assert.deepEqual(spec.params.get("blocks.1.mlp.fc1.weight")!.value.shape, [96, 24]);
  // One 4x4 image, patch 2: pixel (c, y, x) = 100c + 10y + x; patch 1 is the top-right 2x2 block.
  const data = Float32Array.from({ length: 48 }, (_, i) => 100 * (i >> 4) + 10 * ((i >> 2) & 3) + (i & 3));
  const img = { shape: [1, 3, 4, 4], data };
  const p = vitDraws({ ...SMALL, img: 4, patch: 2 }, img).patches;
  assert.deepEqual(p.shape, [1, 4, 12]);
  assert.deepEqual([...p.data.slice(12, 24)], [2, 102, 202, 3, 103, 203, 12, 112, 212, 13, 113, 213]);
});

Deno.test("reference ViT: onnxruntime and tfjs compute the same loss, and Adam steps lower it", async () => {
  await initBackend("wasm");
  const draws = vitDraws(SMALL, vitImages(SMALL, 4));
  const hyper = { groups: { main: { all: { lr: 3e-3, weightDecay: 0 } } } };
  const losses: number[][] = [];
  for (const engine of [new OrtTrainEngine(vitStepSpec(SMALL, 0)), new TfTrainEngine(vitStepSpec(SMALL, 0))]) {
    try {
      const ls: number[] = [];
      for (let i = 0; i < 5; i++) ls.push((await (await engine.step(draws, hyper)).read()).loss);
      losses.push(ls);
    } finally {
      engine.dispose();
    }
  }
  const [ort, tfjs] = losses;
  ort.forEach((l, i) => assert.ok(Math.abs(l - tfjs[i]) <= 1e-5 * l, `step ${i + 1}: ort ${l} vs tfjs ${tfjs[i]}`));
  assert.ok(ort[4] < 0.9 * ort[0], `loss ${ort[0]} -> ${ort[4]}`);
});
