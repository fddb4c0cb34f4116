/** Linear/attentive probes on synthetic features: separable -> 100%, random labels -> chance; no leaks. */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { AttentiveProbeConfig, ClassProbeConfig, type LabelledFeatures, runClassProbe } from "./class_probe.ts";
import { probeSchedule } from "./grid_train.ts";
import { holdoutSplit } from "./splits.ts";

await initBackend("cpu");

/** n samples of `classes` well-separated Gaussian blobs in `d` dims (optionally `t` tokens each). */
function blobs(rng: Rng, n: number, d: number, classes: number, t = 0, randomLabels = false): LabelledFeatures {
  // Class means depend only on (d, class), so train and val share them.
  const means = Array.from({ length: classes }, (_, c) => Rng.from(d, "mean", c).fillNormal(new Float32Array(d), 0, 3));
  const labels = new Int32Array(n).map(() => rng.int(0, classes - 1));
  const rows = t || 1;
  const x = new Float32Array(n * rows * d);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < d; j++) x[(i * rows + r) * d + j] = (randomLabels ? 0 : means[labels[i]][j]) + rng.normal();
    }
  }
  return { x: { shape: t ? [n, t, d] : [n, d], data: x }, labels };
}

Deno.test("probe schedule: linspace warmup then full cosine to 0", () => {
  assert.equal(probeSchedule(0, 10, 3), 0);
  assert.equal(probeSchedule(1, 10, 3), 0.5);
  assert.equal(probeSchedule(3, 10, 3), 1);
  assert.ok(Math.abs(probeSchedule(9, 10, 3)) < 1e-12);
});

Deno.test("holdout split is fixed by the seed and disjoint", () => {
  const a = holdoutSplit(50, 0.1, 3);
  assert.deepEqual(a, holdoutSplit(50, 0.1, 3));
  assert.equal(a.hold.length, 5);
  assert.equal(new Set([...a.fit, ...a.hold]).size, 50);
});

Deno.test("linear probe: separable features reach 100%, random labels stay near chance", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(1, "test");
  const cfg = ClassProbeConfig.parse({ lrs: [1e-3, 1e-2], wds: [5e-4, 5e-2], iterations: 150, batchSize: 64 });
  const sep = await runClassProbe(
    "linear",
    blobs(rng.fork("tr"), 400, 16, 4),
    blobs(rng.fork("va"), 200, 16, 4),
    4,
    cfg,
  );
  assert.equal(sep.top1, 1);
  assert.equal(sep.grid.length, 4);
  const noise = await runClassProbe(
    "linear",
    blobs(rng.fork("tr2"), 400, 16, 4, 0, true),
    blobs(rng.fork("va2"), 400, 16, 4, 0, true),
    4,
    cfg,
  );
  assert.ok(noise.top1 < 0.35, `random labels: top-1 ${noise.top1} should be near chance 0.25`);
  assert.equal(tf.memory().numTensors, before, "linear probe leaked tensors");
});

Deno.test("attentive probe learns separable tokens and rejects bad inputs", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(2, "test");
  const cfg = AttentiveProbeConfig.parse({ iterations: 60, batchSize: 32 });
  const r = await runClassProbe(
    "attentive",
    blobs(rng.fork("tr"), 160, 64, 3, 5),
    blobs(rng.fork("va"), 60, 64, 3, 5),
    3,
    cfg,
  );
  assert.ok(r.top1 > 0.95, `attentive top-1 ${r.top1}`);
  assert.equal(tf.memory().numTensors, before, "attentive probe leaked tensors");
  await assert.rejects(
    runClassProbe("attentive", blobs(rng, 10, 8, 3), blobs(rng, 10, 8, 3), 3, cfg),
    /train features have shape \[10,8\], expected rank 3/,
  );
});
