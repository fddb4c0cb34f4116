/** Segmentation probes: patch/label known answers, per-pixel kNN mode, logreg fit, end-to-end mIoU. */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { assertAlmostEquals } from "./test_assert.ts";
import { keepLabelled, modeOf, patchTargets, type SegFeatures, StandardScaler, toPatches } from "./seg_data.ts";
import { runSegKnn, SegKnnConfig, segKnnPredict } from "./seg_knn.ts";
import { fitLogreg, predictLogreg, runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";

await initBackend("cpu");

Deno.test("modeOf: most frequent, smallest on ties", () => {
  const counts = new Int32Array(10);
  assert.equal(modeOf([2, 2, 1, 1], 0, 4, 1, counts), 1);
  assert.equal(modeOf([1, 2, 2], 0, 3, 1, counts), 2);
  assert.equal(modeOf([9, 0, 9, 3], 0, 2, 2, counts), 9); // strided: 9, 9
  assert.ok(counts.every((c) => c === 0), "scratch must be left zeroed");
});

Deno.test("toPatches cuts label maps row-major; targets drop ignored patches; scaler", () => {
  // One 2x4 label map, grid 1x2 -> two patches of 2x2 pixels.
  const s: SegFeatures = {
    feats: { shape: [1, 1, 2, 1], data: new Float32Array([1, 3]) },
    labels: { shape: [1, 2, 4], data: new Int32Array([5, 5, 0, 0, 5, 7, 0, 255]) },
  };
  const p = toPatches(s);
  assert.deepEqual([...p.pixels], [5, 5, 5, 7, 0, 0, 0, 255]);
  assert.deepEqual([...patchTargets(p)], [5, 0]);
  const { patches, targets } = keepLabelled(p);
  assert.deepEqual([...targets], [5]);
  assert.deepEqual([...patches.x.data], [1]);
  const sc = StandardScaler.fit(p.x);
  assert.deepEqual([...sc.transform(p.x).data], [-1, 1]);
});

Deno.test("seg kNN: per-pixel mode over the neighbours' label maps", async () => {
  const db = {
    x: { shape: [3, 2], data: new Float32Array([1, 0, 1, 0.1, -1, 0]) },
    pixels: new Int32Array([1, 2, 1, 3, 3, 3]),
    pp: 2,
    image: new Int32Array(3),
  };
  const q = { shape: [1, 2], data: new Float32Array([1, 0.01]) };
  for (const distance of ["cosine", "l2"] as const) {
    const pred = await segKnnPredict(db, q, distance, [1, 2, 3], 8);
    assert.deepEqual([...pred.get(1)!], [1, 2], distance);
    assert.deepEqual([...pred.get(2)!], [1, 2], `${distance}: tie 2 vs 3 -> smaller`);
    assert.deepEqual([...pred.get(3)!], [1, 3], distance);
  }
});

/** Images whose 2x2-pixel patches carry one of 3 classes and a noisy class-mean feature. */
function synthSeg(rng: Rng, n: number): SegFeatures {
  const g = 4, d = 8, p = 2;
  const means = [1, 2, 3].map((c) => Rng.from(7, "mean", c).fillNormal(new Float32Array(d), 0, 2));
  const feats = new Float32Array(n * g * g * d);
  const labels = new Int32Array(n * g * p * g * p);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < g; r++) {
      for (let c = 0; c < g; c++) {
        const empty = rng.float() < 0.1;
        const cls = rng.int(1, 3);
        for (let j = 0; j < d; j++) feats[((i * g + r) * g + c) * d + j] = means[cls - 1][j] + 0.3 * rng.normal();
        for (let y = 0; y < p; y++) {
          for (let x = 0; x < p; x++) labels[(i * g * p + r * p + y) * g * p + c * p + x] = empty ? 0 : cls;
        }
      }
    }
  }
  return { feats: { shape: [n, g, g, d], data: feats }, labels: { shape: [n, g * p, g * p], data: labels } };
}

Deno.test("seg probes reach mIoU 1 on separable patches, without leaks", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(3, "seg");
  const train = synthSeg(rng.fork("train"), 30), val = synthSeg(rng.fork("val"), 10);
  const knn = await runSegKnn(train, val, SegKnnConfig.parse({}));
  assert.equal(knn.candidates.length, 8);
  assertAlmostEquals(knn.miou, 1, 1e-12, "seg_knn mIoU");
  const lr = await runSegLogreg(train, val, SegLogregConfig.parse({ iterations: 100 }));
  assertAlmostEquals(lr.miou, 1, 1e-12, "seg_logreg mIoU");
  assertAlmostEquals(lr.pixelAcc, 1, 1e-12, "seg_logreg pixel acc");
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("logreg: weak regularisation separates, strong regularisation predicts the majority", async () => {
  const x = { shape: [6, 1], data: new Float32Array([-2, -1, -1.5, -1.2, 2, 1.5]) };
  const y = new Int32Array([4, 4, 4, 4, 9, 9]);
  const fit = await fitLogreg(x, y, [1e-6, 1e3], 300);
  const [strong, weak] = await predictLogreg(fit, x);
  assert.deepEqual([...weak], [4, 4, 4, 4, 9, 9]);
  assert.deepEqual([...strong], [4, 4, 4, 4, 4, 4]);
  // Strong L2: weights ~0, the unpenalised biases fit the class priors: b4 - b9 = log(4/2).
  // w is [D+1, G*K]: row 0 weights, row 1 biases; columns (C=1e-6: class 4, 9), (C=1e3: 4, 9).
  const [w4, w9, , , b4, b9] = fit.w.data;
  assert.ok(Math.abs(w4) < 1e-4 && Math.abs(w9) < 1e-4, `weights ${w4}, ${w9}`);
  assertAlmostEquals(b4 - b9, Math.log(2), 1e-3, "bias gap");
});
