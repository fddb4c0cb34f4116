/**
 * Probe registry: metric keys per probe and method, source selection, protocol settings,
 * the status that says whether a number is a measurement, config validation errors.
 */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { MemoryFeatureTable } from "./feature_table.ts";
import { parseProbe, probeImageSize, probeInput, resolveProbeConfig, runProbe } from "./probes.ts";
import { parseProtocol } from "./protocols.ts";

await initBackend("cpu");

/** Features where `global` separates the 3 classes and the patch tokens are noise. */
function feats(seed: number, n: number) {
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
  return new MemoryFeatureTable({
    global: { shape: [n, d], data: global },
    avgPatch: { shape: [n, d], data: avg },
    patches: { shape: [n, g, g, d], data: patches },
    labels,
  });
}

const cpu = (probe: Parameters<typeof resolveProbeConfig>[0], o: Record<string, unknown> = {}) =>
  resolveProbeConfig(probe, "cpu", o);

Deno.test("linear/knn report per-source keys and pick the source on the train holdout", async () => {
  const tr = feats(1, 300), va = feats(2, 90);
  const config = cpu("linear", { lrs: [1e-2], wds: [5e-4], iterations: 100, batchSize: 64 });
  const lin = await runProbe("linear", { train: tr, val: va }, { method: "capi", classes: 3, protocol: "cpu", config });
  assert.deepEqual(Object.keys(lin.metrics).sort(), [
    "linear/avg_patch/top1",
    "linear/cls/top1",
    "linear/cls_avg_patch/top1",
    "linear/top1",
  ]);
  assert.ok(lin.metrics["linear/top1"] > 0.95, `selected source top-1 ${lin.metrics["linear/top1"]}`);
  assert.notEqual(lin.details.selectedSource, "avg_patch");
  assert.deepEqual(lin.status, { protocol: "cpu", converged: true, constantPrediction: false, notes: [] });
  const knn = await runProbe("knn", { train: tr, val: va }, {
    method: "simmim",
    classes: 3,
    protocol: "cpu",
    config: cpu("knn"),
  });
  assert.deepEqual(Object.keys(knn.metrics).sort(), ["knn/avg_patch/top1", "knn/top1"]);
  assert.equal(knn.status.converged, null, "k-NN trains nothing");
});

Deno.test("uninformative features: the majority-class constant is flagged, never silent", async () => {
  // Every patch carries the same feature; 3 of 4 pixels are class 1: logistic regression can only
  // predict the majority class (the published seg_logreg failure, here by construction).
  const n = 12, d = 4;
  const table = (seed: number) => {
    const labels = Int32Array.from({ length: n * 4 }, (_, i) => (i % 4 === 3 ? 2 : 1));
    return new MemoryFeatureTable({
      avgPatch: { shape: [n, d], data: new Float32Array(n * d) },
      patches: { shape: [n, 2, 2, d], data: new Float32Array(n * 4 * d).fill(seed) },
      labelMaps: { shape: [n, 2, 2], data: labels },
    });
  };
  const out = await runProbe("seg_logreg", { train: table(1), val: table(1) }, {
    method: "capi",
    classes: 150,
    protocol: "cpu",
    config: cpu("seg_logreg"),
  });
  assert.equal(out.status.constantPrediction, true);
  assert.equal(out.status.converged, true);
  assert.match(out.status.notes.join(" "), /single class/);
});

Deno.test("protocols: paper starts from the official settings; overrides win; errors name the key", () => {
  const paper = resolveProbeConfig("attentive", "paper") as Record<string, unknown>;
  assert.equal(paper.iterations, 12_500);
  assert.equal(paper.batchSize, 1024);
  assert.equal((paper.lrs as number[]).length * (paper.wds as number[]).length, 30);
  assert.equal(paper.features, "online");
  assert.deepEqual(probeInput("attentive", paper as never), { online: true, patches: true });
  const lr = resolveProbeConfig("seg_logreg", "paper") as Record<string, unknown>;
  assert.deepEqual([lr.maxIter, lr.tol, lr.resolution, lr.selectFrom], [1000, 1e-12, 224, "all"]);
  assert.equal((resolveProbeConfig("seg_knn", "paper") as Record<string, unknown>).dtype, "bfloat16");
  assert.deepEqual((resolveProbeConfig("knn", "paper") as Record<string, unknown>).ks, [10, 20, 100, 200]);
  assert.equal((cpu("attentive") as Record<string, unknown>).iterations, 500);
  assert.equal((resolveProbeConfig("linear", "paper", { iterations: 7 }) as Record<string, unknown>).iterations, 7);
  const info = { arch: "vit_tiny", embedDim: 192, patchSize: 4, imageSize: [32, 32] as [number, number] };
  assert.throws(
    () => probeImageSize("seg_knn", resolveProbeConfig("seg_knn", "paper"), info),
    /224x224.*--protocol cpu/,
  );
  assert.deepEqual(probeImageSize("seg_knn", cpu("seg_knn"), info), [32, 32]);
  assert.throws(() => parseProtocol("fast"), /unknown protocol 'fast'; expected one of paper, cpu/);
  assert.throws(() => resolveProbeConfig("knn", "cpu", { k: 5 }), /knn probe config is invalid/);
  assert.throws(
    () => parseProbe("svm"),
    /unknown probe 'svm'; expected one of linear, attentive, knn, seg_knn, seg_logreg/,
  );
});
