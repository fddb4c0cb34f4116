/** Probe registry: metric keys per probe and method, source selection, config validation errors. */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import type { ExtractedFeatures } from "./features.ts";
import { parseProbe, runProbe } from "./probes.ts";

await initBackend("cpu");

/** Features where `global` separates the 3 classes and the patch tokens are noise. */
function feats(seed: number, n: number): ExtractedFeatures {
  const rng = Rng.from(seed);
  const d = 6, g = 2;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const global = new Float32Array(n * d), patches = new Float32Array(n * g * g * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) global[i * d + j] = (j === labels[i] ? 3 : 0) + 0.3 * rng.normal();
  }
  rng.fillNormal(patches);
  const avg = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < g * g; p++) {
      for (let j = 0; j < d; j++) avg[i * d + j] += patches[(i * g * g + p) * d + j] / (g * g);
    }
  }
  return {
    global: { shape: [n, d], data: global },
    avgPatch: { shape: [n, d], data: avg },
    patches: { shape: [n, g, g, d], data: patches },
    labels,
    labelMaps: null,
  };
}

Deno.test("linear/knn report per-source keys and pick the source on the train holdout", async () => {
  const tr = feats(1, 300), va = feats(2, 90);
  const lin = await runProbe("linear", tr, va, {
    method: "capi",
    classes: 3,
    config: { lrs: [1e-2], wds: [5e-4], iterations: 100, batchSize: 64 },
  });
  assert.deepEqual(Object.keys(lin.metrics).sort(), [
    "linear/avg_patch/top1",
    "linear/cls/top1",
    "linear/cls_avg_patch/top1",
    "linear/top1",
  ]);
  assert.ok(lin.metrics["linear/top1"] > 0.95, `selected source top-1 ${lin.metrics["linear/top1"]}`);
  assert.notEqual(lin.details.selectedSource, "avg_patch");
  const knn = await runProbe("knn", tr, va, { method: "simmim", classes: 3 });
  assert.deepEqual(Object.keys(knn.metrics).sort(), ["knn/avg_patch/top1", "knn/top1"]);
});

Deno.test("probe names and configs are validated with helpful errors", async () => {
  assert.throws(
    () => parseProbe("svm"),
    /unknown probe 'svm'; expected one of linear, attentive, knn, seg_knn, seg_logreg/,
  );
  await assert.rejects(
    runProbe("knn", feats(1, 30), feats(2, 9), { method: "mae", classes: 3, config: { k: 5 } }),
    /knn probe config is invalid/,
  );
  await assert.rejects(
    runProbe("seg_knn", feats(1, 30), feats(2, 9), { method: "mae", classes: 3 }),
    /seg_knn: train features need patch tokens and label maps/,
  );
});
