/** k-NN probe: weighted-vote known answers, streamed top-k merge, and an end-to-end run on separable rows. */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { knnPredict, KnnProbeConfig, runKnnProbe, weightedVote } from "./knn_probe.ts";
import { allRows, MemoryFeatureTable } from "./feature_table.ts";
import { roundToBf16InPlace, RunningTopK } from "./topk.ts";

await initBackend("cpu");

Deno.test("weighted vote: exp(sim/T) weights decide, per k", () => {
  // One query, neighbours sorted by similarity: labels 1 (0.9), 0 (0.8), 0 (0.75).
  const nb = { labels: new Int32Array([1, 0, 0]), sim: new Float32Array([0.9, 0.8, 0.75]) };
  // T = 0.07: exp(0.9/T) ~ 3.8e5 vs exp(0.8/T) + exp(0.75/T) ~ 9.2e4 + 4.5e4 -> class 1 wins at k=3.
  const sharp = weightedVote(nb, 3, 2, [1, 3], 0.07);
  assert.equal(sharp.get(1)![0], 1);
  assert.equal(sharp.get(3)![0], 1);
  // T = 10: nearly uniform weights -> the two label-0 votes win at k=3.
  const flat = weightedVote(nb, 3, 2, [1, 3, 5], 10);
  assert.equal(flat.get(3)![0], 0);
  assert.equal(flat.get(5)![0], 0, "k above the database size uses every neighbour");
});

Deno.test("running top-k merges blocks in order; equal scores keep the earlier row", () => {
  const top = new RunningTopK(1, 3, 1);
  top.merge(new Float32Array([0.5, 0.2]), new Int32Array([1, 0]), 2, new Int32Array([10, 11]));
  top.merge(new Float32Array([0.9, 0.5]), new Int32Array([0, 1]), 2, new Int32Array([20, 21]));
  assert.deepEqual([...top.scores], [Math.fround(0.9), 0.5, 0.5]);
  assert.deepEqual([...top.payload], [20, 11, 21]);
  // bfloat16 keeps 8 bits of mantissa, rounding to nearest even.
  assert.deepEqual([...roundToBf16InPlace(new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -7]))], [
    1,
    1 + 2 ** -6,
    1 + 2 ** -7,
  ]);
});

Deno.test("knn predicts by cosine, not by norm, across database blocks; the probe selects k on holdout", async () => {
  const before = tf.memory().numTensors;
  const db = new MemoryFeatureTable({
    avgPatch: { shape: [2, 2], data: new Float32Array([10, 0, 0, 0.1]) },
    labels: new Int32Array([0, 1]),
  }, 1);
  const q = new MemoryFeatureTable({ avgPatch: { shape: [2, 2], data: new Float32Array([0.01, 0.001, 0.001, 5]) } });
  const p = await knnPredict(db, allRows(2), q, allRows(2), "avg_patch", 2, { ks: [1], temperature: 0.07, chunk: 1 });
  assert.deepEqual([...p.get(1)!], [0, 1]);
  const n = 200;
  const x = new Float32Array(n * 3);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    x[i * 3 + y[i]] = 1 + (i % 7) / 10;
    x[i * 3 + ((y[i] + 1) % 3)] = 0.2;
  }
  const t = new MemoryFeatureTable({ avgPatch: { shape: [n, 3], data: x }, labels: y }, 16);
  const r = await runKnnProbe(t, t, "avg_patch", 3, KnnProbeConfig.parse({ ks: [1, 5], chunk: 50 }));
  assert.equal(r.top1, 1);
  assert.equal(r.distinctPredictions, 3);
  assert.equal(tf.memory().numTensors, before);
});
