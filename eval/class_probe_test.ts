/**
 * Linear/attentive probes on synthetic features streamed from tables: separable -> 100%, random
 * labels -> chance; every source trained jointly; convergence and constant predictions reported;
 * no tensor leaks.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { AttentiveProbeConfig, ClassProbeConfig, runClassProbe } from "./class_probe.ts";
import { cachedClassData } from "./class_data.ts";
import { MemoryFeatureTable } from "./feature_table.ts";
import { probeSchedule } from "./grid_train.ts";
import { holdoutCount, holdoutSplit } from "./splits.ts";

await initBackend("cpu");

/**
 * n samples of `classes` well-separated Gaussian blobs in `d` dims as a table: the global
 * vector and every one of `t` patch tokens carry the class mean (or none with random labels).
 */
function blobs(rng: Rng, n: number, d: number, classes: number, t = 1, randomLabels = false) {
  // Class means depend only on (d, class), so train and val share them.
  const means = Array.from({ length: classes }, (_, c) => Rng.from(d, "mean", c).fillNormal(new Float32Array(d), 0, 3));
  const labels = new Int32Array(n).map(() => rng.int(0, classes - 1));
  const tokens = new Float32Array(n * t * d), global = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < t; r++) {
      for (let j = 0; j < d; j++) tokens[(i * t + r) * d + j] = (randomLabels ? 0 : means[labels[i]][j]) + rng.normal();
    }
    for (let j = 0; j < d; j++) global[i * d + j] = (randomLabels ? 0 : means[labels[i]][j]) + rng.normal();
  }
  return new MemoryFeatureTable({
    global: { shape: [n, d], data: global },
    avgPatch: { shape: [n, d], data: rng.fillNormal(new Float32Array(n * d)) }, // noise: a source to lose
    patches: { shape: [n, t, 1, d], data: tokens },
    labels,
  });
}

Deno.test("probe schedule: linspace warmup then full cosine to 0", () => {
  assert.equal(probeSchedule(0, 10, 3), 0);
  assert.equal(probeSchedule(1, 10, 3), 0.5);
  assert.equal(probeSchedule(3, 10, 3), 1);
  assert.ok(Math.abs(probeSchedule(9, 10, 3)) < 1e-12);
});

Deno.test("holdout split: fixed by the seed, disjoint, official sizes", () => {
  const a = holdoutSplit(50, 0.1, 3);
  assert.deepEqual(a, holdoutSplit(50, 0.1, 3));
  assert.equal(a.hold.length, 5);
  assert.equal(new Set([...a.fit, ...a.hold]).size, 50);
  // classification keeps round(0.9 n) (Python rounds half to even), segmentation holds out n // 10.
  assert.equal(holdoutCount(25, 0.1, "round"), 25 - 22); // 22.5 -> 22
  assert.equal(holdoutCount(35, 0.1, "round"), 35 - 32); // 31.5 -> 32
  assert.equal(holdoutCount(29, 0.1, "floor"), 2);
  assert.equal(holdoutCount(70, 0.1, "floor"), 7);
});

Deno.test("linear probe: separable features reach 100%, random labels stay near chance, no leaks", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(1, "test");
  const cfg = ClassProbeConfig.parse({ lrs: [1e-3, 1e-2], wds: [5e-4, 5e-2], iterations: 150, batchSize: 64 });
  const data = cachedClassData(blobs(rng.fork("tr"), 400, 16, 4), blobs(rng.fork("va"), 200, 16, 4), [
    "cls",
    "avg_patch",
  ], {
    classes: 4,
    holdoutFraction: 0.1,
    seed: 0,
  });
  const sep = await runClassProbe(data, ["cls", "avg_patch"], 4, cfg);
  assert.equal(sep.selected.source, "cls", "the holdout must pick the informative source");
  assert.equal(sep.selected.top1, 1);
  assert.equal(sep.selected.converged, true);
  assert.equal(sep.selected.distinctPredictions, 4);
  assert.equal(sep.sources.length, 2);
  assert.equal(sep.selected.grid.length, 4);
  const noise = await runClassProbe(
    cachedClassData(blobs(rng.fork("tr2"), 400, 16, 4, 1, true), blobs(rng.fork("va2"), 400, 16, 4, 1, true), ["cls"], {
      classes: 4,
      holdoutFraction: 0.1,
      seed: 0,
    }),
    ["cls"],
    4,
    cfg,
  );
  assert.ok(noise.selected.top1 < 0.35, `random labels: top-1 ${noise.selected.top1} should be near chance 0.25`);
  assert.equal(tf.memory().numTensors, before, "linear probe leaked tensors");
});

Deno.test("attentive probe learns separable tokens; a zero learning rate is reported as not converged", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(2, "test");
  const opts = { classes: 3, holdoutFraction: 0.1, seed: 0 };
  const data = cachedClassData(
    blobs(rng.fork("tr"), 160, 64, 3, 5),
    blobs(rng.fork("va"), 60, 64, 3, 5),
    ["patch"],
    opts,
  );
  // One lr: with 16 held-out samples every lr of the default grid ties at 100%, and ties pick the first.
  const r = await runClassProbe(
    data,
    ["patch"],
    3,
    AttentiveProbeConfig.parse({ lrs: [1e-2], iterations: 60, batchSize: 32 }),
  );
  assert.ok(r.selected.top1 > 0.95, `attentive top-1 ${r.selected.top1}`);
  assert.equal(r.selected.converged, true);
  // lr 1e-30: the classifiers stay at their init, so the loss cannot go down.
  const stuck = await runClassProbe(data, ["patch"], 3, AttentiveProbeConfig.parse({ lrs: [1e-30], iterations: 5 }));
  assert.equal(stuck.selected.converged, false);
  assert.equal(tf.memory().numTensors, before, "attentive probe leaked tensors");
});
