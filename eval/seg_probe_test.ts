/**
 * Segmentation probes: patch/label known answers, per-pixel kNN mode, the L-BFGS logistic
 * regression against a float64 Newton reference and the class priors, convergence reported,
 * end-to-end mIoU on separable patches.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { assertAlmostEquals } from "./test_assert.ts";
import { allRows, MemoryFeatureTable } from "./feature_table.ts";
import { keepLabelled, modeOf, patchTargets, StandardScaler, toPatches } from "./seg_data.ts";
import { LabelledPatches } from "./labelled_patches.ts";
import { pixelModes, runSegKnn, SegKnnConfig } from "./seg_knn.ts";
import { fitLogregGrid, isConverged, pickCandidate, runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";

await initBackend("cpu");

const SOLVER = { maxIter: 1000, tol: 1e-12, lbfgsMemory: 5, linesearchMaxIter: 50 };

Deno.test("modeOf: most frequent, smallest on ties", () => {
  const counts = new Int32Array(10);
  assert.equal(modeOf([2, 2, 1, 1], 0, 4, 1, counts), 1);
  assert.equal(modeOf([1, 2, 2], 0, 3, 1, counts), 2);
  assert.equal(modeOf([9, 0, 9, 3], 0, 2, 2, counts), 9); // strided: 9, 9
  assert.ok(counts.every((c) => c === 0), "scratch must be left zeroed");
});

Deno.test("toPatches cuts label maps row-major; targets drop ignored patches; streamed scaler", async () => {
  // One 2x4 label map, grid 1x2 -> two patches of 2x2 pixels.
  const p = toPatches({
    feats: { shape: [1, 1, 2, 1], data: new Float32Array([1, 3]) },
    labels: { shape: [1, 2, 4], data: new Int32Array([5, 5, 0, 0, 5, 7, 0, 255]) },
  });
  assert.deepEqual([...p.pixels], [5, 5, 5, 7, 0, 0, 0, 255]);
  assert.deepEqual([...patchTargets(p)], [5, 0]);
  const { patches, targets } = keepLabelled(p);
  assert.deepEqual([...targets], [5]);
  assert.deepEqual([...patches.x.data], [1]);
  const sc = await StandardScaler.fit(p.x);
  assert.deepEqual([...sc.transform(p.x).data], [-1, 1]);
  // Blocks merged (Chan): the same statistics as one pass over [1, 2, 3, 10].
  const blocks = (async function* () {
    yield { shape: [1, 1], data: new Float32Array([1]) };
    yield { shape: [3, 1], data: new Float32Array([2, 3, 10]) };
  })();
  const merged = await StandardScaler.fitBlocks(blocks);
  assertAlmostEquals(merged.mean[0], 4, 1e-12, "mean");
  assertAlmostEquals(merged.scale[0], Math.sqrt((9 + 4 + 1 + 36) / 4), 1e-12, "population std");
});

Deno.test("seg kNN: per-pixel mode over the neighbours' label maps, first k neighbours only", () => {
  // 1 query, kmax 3 neighbours (best first) with 2 pixels each: (1,2), (1,3), (3,3).
  const payload = new Int32Array([1, 2, 1, 3, 3, 3]);
  assert.deepEqual([...pixelModes(payload, 1, 3, 2, 1)], [1, 2]);
  assert.deepEqual([...pixelModes(payload, 1, 3, 2, 2)], [1, 2], "tie 2 vs 3 -> smaller");
  assert.deepEqual([...pixelModes(payload, 1, 3, 2, 3)], [1, 3]);
});

/** One 1x1-pixel patch per image: features `x [n, d]`, label = target. */
function patchTable(x: number[][], labels: number[]) {
  const n = x.length, d = x[0].length;
  return new MemoryFeatureTable({
    avgPatch: { shape: [n, d], data: Float32Array.from(x.flat()) },
    patches: { shape: [n, 1, 1, d], data: Float32Array.from(x.flat()) },
    labelMaps: { shape: [n, 1, 1], data: Int32Array.from(labels) },
  }, 4);
}

/** Float64 Newton's method for binary logistic regression (w, b), loss mean CE + |w|^2/(2Cn). */
function newtonBinary(x: number[], y: number[], c: number): [number, number] {
  let w = 0, b = 0;
  const n = x.length, lam = 1 / (c * n);
  for (let it = 0; it < 100; it++) {
    let gw = lam * w, gb = 0, hww = lam, hwb = 0, hbb = 0;
    for (let i = 0; i < n; i++) {
      const p = 1 / (1 + Math.exp(-(w * x[i] + b)));
      gw += ((p - y[i]) * x[i]) / n;
      gb += (p - y[i]) / n;
      const s = (p * (1 - p)) / n;
      hww += s * x[i] * x[i];
      hwb += s * x[i];
      hbb += s;
    }
    const det = hww * hbb - hwb * hwb;
    w -= (hbb * gw - hwb * gb) / det;
    b -= (hww * gb - hwb * gw) / det;
  }
  return [w, b];
}

Deno.test("logreg (L-BFGS) matches a float64 Newton solution; strong L2 leaves the class-prior biases", async () => {
  const xs = [-2, -1, -1.5, 0.5, 2, 1.5, -0.2, 0.3];
  const ys = [4, 4, 4, 9, 9, 9, 9, 4]; // not separable: a finite optimum for every C
  const t = patchTable(xs.map((v) => [v]), ys);
  const db = new LabelledPatches(t, allRows(xs.length), StandardScaler.identity(1), 2 ** 20);
  try {
    const fits = await fitLogregGrid(db, [1e-6, 1, 1e5], SOLVER);
    for (const [j, c] of [1e-6, 1, 1e5].entries()) {
      // Two classes: one weight vector [w, b] for class 9 against class 4, as cuML's binary loss.
      const [w, b] = newtonBinary(xs, ys.map((v) => (v === 9 ? 1 : 0)), c);
      assertAlmostEquals(fits[j].w[0], w, 1e-5 * Math.max(1, Math.abs(w)), `C=${c} weight`);
      assertAlmostEquals(fits[j].w[1], b, 1e-5 * Math.max(1, Math.abs(b)), `C=${c} bias`);
      assert.ok(fits[j].converged, `C=${c}: ${fits[j].status}, max|g| ${fits[j].gradNorm}`);
    }
    // C = 1e-6: w ~ 0 and the bias is the log-odds of the class prior (4 of 8 are class 9: 0).
    assert.ok(Math.abs(fits[0].w[0]) < 1e-4, `strong L2 weight ${fits[0].w[0]}`);
    const capped = await fitLogregGrid(db, [1e5], { ...SOLVER, maxIter: 2 });
    assert.equal(capped[0].status, "max_iter", "2 iterations cannot reach tol 1e-12: the fit must say so");
    assert.equal(capped[0].converged, false);
    // A stalled line search counts as converged only with (almost) nothing left to gain.
    const stalled = { x: new Float64Array(1), f: 0.5, iterations: 9, evaluations: 20, gradNorm: 1e-5 };
    assert.equal(isConverged({ ...stalled, status: "line_search_failed", predictedDecrease: 1e-11 }), true);
    assert.equal(isConverged({ ...stalled, status: "line_search_failed", predictedDecrease: 1e-5 }), false);
    assert.equal(isConverged({ ...stalled, status: "max_iter", predictedDecrease: 0 }), false);
  } finally {
    db.dispose();
  }
});

Deno.test("C selection: best holdout mIoU, first on ties; cpu picks among converged fits only (all if none)", () => {
  const c = [
    { holdoutMiou: 0.12, converged: true },
    { holdoutMiou: 0.17, converged: true },
    { holdoutMiou: 0.18, converged: false },
    { holdoutMiou: 0.18, converged: false },
  ];
  assert.equal(pickCandidate(c, "all"), 2, "official: the best, converged or not (first of the tie)");
  assert.equal(pickCandidate(c, "converged"), 1);
  assert.equal(pickCandidate(c.map((x) => ({ ...x, converged: false })), "converged"), 2, "none converged: all");
  assert.equal(SegLogregConfig.parse({}).selectFrom, "converged");
});

/** Images whose 2x2-pixel patches carry one of 3 classes and a noisy class-mean feature. */
function synthSeg(rng: Rng, n: number) {
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
  return new MemoryFeatureTable({
    avgPatch: { shape: [n, d], data: new Float32Array(n * d) },
    patches: { shape: [n, g, g, d], data: feats },
    labelMaps: { shape: [n, g * p, g * p], data: labels },
  }, 7);
}

Deno.test("seg probes reach mIoU 1 on separable patches, converge, and leak no tensors", async () => {
  const before = tf.memory().numTensors;
  const rng = Rng.from(3, "seg");
  const train = synthSeg(rng.fork("train"), 30), val = synthSeg(rng.fork("val"), 10);
  for (const dtype of ["float32", "bfloat16"] as const) {
    const knn = await runSegKnn(train, val, SegKnnConfig.parse({ dtype, chunk: 40 }), { memoryBytes: 20_000 });
    assert.equal(knn.candidates.length, 8);
    assertAlmostEquals(knn.miou, 1, 1e-12, `seg_knn mIoU (${dtype})`);
    assert.equal(knn.distinctPredictions, 3);
  }
  const lr = await runSegLogreg(train, val, SegLogregConfig.parse({}), { memoryBytes: 20_000 });
  assertAlmostEquals(lr.miou, 1, 1e-12, "seg_logreg mIoU");
  assertAlmostEquals(lr.pixelAcc, 1, 1e-12, "seg_logreg pixel acc");
  assert.ok(lr.fits.final.converged, `final fit ${lr.fits.final.status}`);
  assert.equal(tf.memory().numTensors, before);
});
