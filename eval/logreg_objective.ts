/**
 * The objective of the segmentation logistic regression (cuML's, `penalty_normalized`): for each
 * of A models at once, `mean_i CE(x_i, y_i) + ||W||^2 / (2 C n)` (bias not penalised) and its
 * gradient, in one pass over the labelled training patches (labelled_patches.ts). Softmax over
 * the classes present; with two classes the binary logistic loss (one weight column, class 0's
 * logit fixed at 0), as cuML switches to it.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import type { LabelledPatches } from "./labelled_patches.ts";
import type { Evaluation } from "./lbfgs.ts";

/** Parameter columns: one per class, or one with two classes (binary logistic loss). */
export const paramCols = (k: number) => (k === 2 ? 1 : k);

/** Logits `[n, A, K]` of `a` models stacked as `w [D+1, A*Kp]`; binary models get a 0 logit for class 0. */
export function logitsOf(x: tf.Tensor2D, w: tf.Tensor2D, a: number, k: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [n, d] = x.shape;
    const kp = paramCols(k);
    const z = tf.add(tf.matMul(x, tf.slice(w, [0, 0], [d, -1])), tf.slice(w, [d, 0], [1, -1])); // [n, A*Kp]
    const z3 = tf.reshape(z, [n, a, kp]);
    return (k === 2 ? tf.concat([tf.zerosLike(z3), z3], 2) : z3) as tf.Tensor3D;
  });
}

/** A point already evaluated: the next objective value is this one plus a precisely computed difference. */
export interface Base {
  x: Float64Array;
  f: number;
}

/**
 * Objective and gradient of `a` models at `points` (float64 `[D+1, Kp]` each) over all
 * training blocks, with L2 strength `lams[j] = 1 / (C_j n)` on the weights.
 *
 * Precision: the loss is float32 arithmetic on the backend, so `f` itself carries rounding of
 * ~1e-7 of its size, more than the decreases L-BFGS must see near the optimum. With a `base`
 * (the problem's previous point) the loss is computed as `f(base)` plus the per-row difference
 * `CE(z) - CE(z - dz) = -log1p(sum_k softmax(z)_k expm1(-dz_k)) - dz_y`, with `dz = X (x - base)`
 * computed from the difference of the weights: its rounding is ~1e-7 of the *difference*,
 * so line searches and the change test see what float64 would. Rows are summed in float64.
 */
export async function evaluateAll(
  db: LabelledPatches,
  points: Float64Array[],
  bases: (Base | null)[],
  lams: number[],
  d: number,
  index: Map<number, number>,
  n: number,
): Promise<Evaluation[]> {
  const k = index.size, kp = paramCols(k), a = points.length, cols = a * kp;
  const wAll = new Float32Array((d + 1) * cols), dAll = new Float32Array((d + 1) * cols);
  points.forEach((p, j) => {
    const b = bases[j]?.x;
    for (let r = 0; r <= d; r++) {
      for (let c = 0; c < kp; c++) {
        wAll[r * cols + j * kp + c] = p[r * kp + c];
        dAll[r * cols + j * kp + c] = b ? p[r * kp + c] - b[r * kp + c] : 0;
      }
    }
  });
  const w = tf.tensor2d(wAll, [d + 1, cols]), dw = tf.tensor2d(dAll, [d + 1, cols]);
  const absSum = new Float64Array(a), diffSum = new Float64Array(a), gSum = new Float64Array((d + 1) * cols);
  try {
    for await (const b of db.blocks()) {
      const nb = b.targets.length;
      const y = Int32Array.from(b.targets, (t) => index.get(t)!);
      const [ce, dce, gw, gb] = tf.tidy(() => {
        const logits = logitsOf(b.x, w, a, k); // [nb, A, K]
        const dz = logitsOf(b.x, dw, a, k); // [nb, A, K]: logits minus the base's
        const onehot = tf.expandDims(tf.oneHot(tf.tensor1d(y, "int32"), k), 1); // [nb, 1, K]
        const q = tf.softmax(logits);
        const pick = (t: tf.Tensor) => tf.sum(tf.mul(t, onehot), -1); // [nb, A]
        const ceRows = tf.sub(tf.logSumExp(logits, -1), pick(logits));
        const dceRows = tf.sub(tf.neg(tf.log1p(tf.sum(tf.mul(q, tf.expm1(tf.neg(dz))), -1))), pick(dz));
        let r = tf.sub(q, onehot); // dCE/dlogits [nb, A, K]
        if (k === 2) r = tf.slice(r, [0, 0, 1], [-1, -1, 1]);
        const r2 = tf.reshape(r, [nb, cols]);
        return [ceRows, dceRows, tf.matMul(b.x, r2, true, false), tf.sum(r2, 0)];
      });
      const [ceH, dceH, gwH, gbH] = await Promise.all([ce.data(), dce.data(), gw.data(), gb.data()]);
      for (const t of [ce, dce, gw, gb]) t.dispose();
      for (let i = 0; i < nb; i++) {
        for (let j = 0; j < a; j++) {
          absSum[j] += ceH[i * a + j];
          diffSum[j] += dceH[i * a + j];
        }
      }
      for (let i = 0; i < d * cols; i++) gSum[i] += gwH[i];
      for (let i = 0; i < cols; i++) gSum[d * cols + i] += gbH[i];
    }
  } finally {
    w.dispose();
    dw.dispose();
  }
  const sqNorm = (x: Float64Array) => {
    let s = 0;
    for (let i = 0; i < d * kp; i++) s += x[i] * x[i]; // rows 0..D-1: the weights, not the bias
    return s;
  };
  return points.map((p, j) => {
    const g = new Float64Array((d + 1) * kp);
    for (let r = 0; r <= d; r++) {
      for (let c = 0; c < kp; c++) {
        g[r * kp + c] = gSum[r * cols + j * kp + c] / n + (r < d ? lams[j] * p[r * kp + c] : 0);
      }
    }
    const base = bases[j];
    const f = base
      ? base.f + diffSum[j] / n + (lams[j] / 2) * (sqNorm(p) - sqNorm(base.x))
      : absSum[j] / n + (lams[j] / 2) * sqNorm(p);
    return { f, g };
  });
}
