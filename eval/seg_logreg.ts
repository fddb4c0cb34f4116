/**
 * Segmentation logistic-regression probe (capi: eval_segmentation.py, SPEC 1.10): a
 * multinomial L2-regularised logistic regression on standardised patch features, trained
 * on patches whose mode label is not ignored (target = mode label), prediction broadcast to
 * the patch's pixels; C picked by mIoU on a fixed 10% of the training images, then refit
 * on all of train and scored on val.
 *
 * Objective (sklearn/cuML convention, bias not penalised), per C:
 *   `C * sum_i CE(x_i, y_i) + ||W||^2 / 2`  ==  n*C * (mean CE + ||W||^2 / (2 n C)).
 * Deviation from the official cuML L-BFGS (max_iter 1000, tol 1e-12): all C of the grid are
 * solved together by full-batch Nesterov accelerated gradient on tfjs (step 1/L with
 * diagonal step (L + 1/(nC))^-1 on weights and 1/L on the bias, L = sigma_max(X^T X)/(2n), momentum (t-1)/(t+2)) for a fixed number of
 * iterations. Strongly regularised C converge fully; for the weakest regularisation
 * (C = 1e5) the solution is the iterate after `iterations` steps, not the exact optimum.
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import type { HostTensor } from "../model/fixture.ts";
import { SegMetricAccumulator } from "./metrics.ts";
import { holdoutSplit } from "./splits.ts";
import { keepLabelled, type Patches, type SegFeatures, StandardScaler, toPatches } from "./seg_data.ts";
import type { SegProbeResult } from "./seg_knn.ts";

const OFFICIAL_CS = Array.from({ length: 8 }, (_, i) => 10 ** (-6 + (11 * i) / 7)); // 10^linspace(-6, 5, 8)

export const SegLogregConfig = z.strictObject({
  cs: z.array(z.number().positive()).min(1).default(OFFICIAL_CS).describe(
    "inverse L2 strengths (official 10^linspace(-6,5,8))",
  ),
  iterations: z.number().int().positive().default(300)
    .describe("accelerated-gradient steps per fit (official: cuML L-BFGS, max_iter 1000, tol 1e-12)"),
  standardize: z.boolean().default(true).describe("StandardScaler fitted on training patches (paper Table 7: True)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of training images used to pick C"),
  seed: z.number().int().default(0).describe("seed of the holdout split"),
});
export type SegLogregConfig = z.infer<typeof SegLogregConfig>;

/** Fitted models: `w [D+1, G*K]` (last row = bias) over the compact class list `classes`. */
export interface LogregFit {
  w: HostTensor<Float32Array>;
  classes: Int32Array;
  cs: number[];
}

/** Largest eigenvalue of `X^T X / n` by power iteration (X is `[n, D]` on device). */
function gramNorm(x: tf.Tensor, xT: tf.Tensor, iters = 50): number {
  const d = x.shape[1] as number;
  let v = tf.fill([d, 1], 1 / Math.sqrt(d));
  let lam = 0;
  for (let i = 0; i < iters; i++) {
    const next = tf.tidy(() => tf.div(tf.matMul(xT, tf.matMul(x, v)), x.shape[0]));
    lam = tf.tidy(() => tf.norm(next).dataSync()[0]);
    v.dispose();
    v = tf.tidy(() => tf.div(next, Math.max(lam, 1e-30)));
    next.dispose();
  }
  v.dispose();
  return lam;
}

/** Fit one multinomial logistic regression per C on `[n, D]` features with integer targets. */
export async function fitLogreg(
  x: HostTensor<Float32Array>,
  targets: Int32Array,
  cs: number[],
  iterations: number,
): Promise<LogregFit> {
  const [n, d] = x.shape;
  if (n === 0) throw new Error("seg_logreg: no training patches with a non-ignored mode label");
  const classes = Int32Array.from(new Set(targets)).sort();
  const index = new Map([...classes].map((c, i) => [c, i]));
  const k = classes.length, g = cs.length;
  const xa = new Float32Array(n * (d + 1));
  for (let i = 0; i < n; i++) {
    xa.set(x.data.subarray(i * d, (i + 1) * d), i * (d + 1));
    xa[i * (d + 1) + d] = 1; // bias column
  }
  const X = tf.tensor2d(xa, [n, d + 1]);
  const XT = tf.tidy(() => tf.transpose(X)); // [D+1, n]
  const Y = tf.tidy(() => tf.expandDims(tf.oneHot(tf.tensor1d(targets.map((t) => index.get(t)!), "int32"), k), 1)); // [n, 1, K]
  const lipschitz = gramNorm(X, XT) / 2;
  const lam = cs.map((c) => 1 / (n * c));
  const colOf = (vals: number[]) => tf.tensor1d(new Float32Array(g * k).map((_, j) => vals[Math.floor(j / k)]));
  // Weight decay on every row but the bias: [D+1, G*K] = lambda per column, 0 on the last row.
  const decay = tf.tidy(() => tf.mul(tf.concat([tf.ones([d, 1]), tf.zeros([1, 1])]), tf.expandDims(colOf(lam), 0)));
  // Diagonal step (L I + decay)^-1: a valid bound since the Hessian is <= L I + diag(decay), and
  // the unpenalised bias keeps a usable step when lambda is huge (C = 1e-6).
  const step = tf.tidy(() => tf.div(1, tf.add(decay, lipschitz))); // [D+1, G*K]
  let w = tf.zeros([d + 1, g * k]);
  let yk = w.clone();
  try {
    for (let t = 1; t <= iterations; t++) {
      const next = tf.tidy(() => {
        const p = tf.softmax(tf.reshape(tf.matMul(X, yk), [n, g, k])); // [n, G, K]
        const diff = tf.reshape(tf.sub(p, Y), [n, g * k]);
        const grad = tf.add(tf.div(tf.matMul(XT, diff), n), tf.mul(decay, yk)); // [D+1, G*K]
        return tf.sub(yk, tf.mul(grad, step));
      });
      const ynew = tf.tidy(() => tf.add(next, tf.mul(tf.sub(next, w), (t - 1) / (t + 2))));
      w.dispose();
      yk.dispose();
      w = next;
      yk = ynew;
    }
    return { w: { shape: [d + 1, g * k], data: (await w.data()) as Float32Array }, classes, cs };
  } finally {
    for (const t of [X, XT, Y, step, decay, w, yk]) t.dispose();
  }
}

/** Predicted label of every row for each C of the fit: `[G][n]`. */
export async function predictLogreg(fit: LogregFit, x: HostTensor<Float32Array>): Promise<Int32Array[]> {
  const [n, d] = x.shape;
  const k = fit.classes.length, g = fit.cs.length;
  const am = tf.tidy(() => {
    const w = tf.tensor(fit.w.data, fit.w.shape, "float32");
    const logits = tf.add(
      tf.matMul(tf.tensor2d(x.data, [n, d]), tf.slice(w, [0, 0], [d, -1])),
      tf.slice(w, [d, 0], [1, -1]),
    );
    return tf.argMax(tf.reshape(logits, [n, g, k]), -1); // [n, G]
  });
  const idx = (await am.data()) as Int32Array;
  am.dispose();
  return Array.from({ length: g }, (_, j) => Int32Array.from({ length: n }, (_, i) => fit.classes[idx[i * g + j]]));
}

/** Broadcast per-patch labels to the patch's pixels and score against the pixel labels. */
function scorePatches(labels: Int32Array, p: Patches) {
  const pred = new Int32Array(p.pixels.length);
  for (let i = 0; i < labels.length; i++) pred.fill(labels[i], i * p.pp, (i + 1) * p.pp);
  const acc = new SegMetricAccumulator();
  acc.add(pred, p.pixels);
  const s = acc.scores();
  return { miou: s.miou, pixelAcc: s.pixelAcc };
}

async function fitOn(train: Patches, cs: number[], cfg: SegLogregConfig) {
  const { patches, targets } = keepLabelled(train);
  const scaler = cfg.standardize ? StandardScaler.fit(patches.x) : StandardScaler.identity(patches.x.shape[1]);
  return { fit: await fitLogreg(scaler.transform(patches.x), targets, cs, cfg.iterations), scaler };
}

/** Select C on a train holdout, refit on all of train, score val. */
export async function runSegLogreg(
  train: SegFeatures,
  val: SegFeatures,
  cfg: SegLogregConfig,
): Promise<SegProbeResult> {
  const t0 = performance.now();
  const split = holdoutSplit(train.feats.shape[0], cfg.holdoutFraction, cfg.seed, "seg-holdout");
  const sel = await fitOn(toPatches(train, split.fit), cfg.cs, cfg);
  const hold = toPatches(train, split.hold);
  const preds = await predictLogreg(sel.fit, sel.scaler.transform(hold.x));
  const candidates = cfg.cs.map((c, j) => ({ params: { C: c }, holdoutMiou: scorePatches(preds[j], hold).miou }));
  let best = candidates[0];
  for (const c of candidates) if (c.holdoutMiou > best.holdoutMiou) best = c;
  const full = await fitOn(toPatches(train), [best.params.C], cfg);
  const v = toPatches(val);
  const [pred] = await predictLogreg(full.fit, full.scaler.transform(v.x));
  return {
    ...scorePatches(pred, v),
    selected: best.params,
    holdoutMiou: best.holdoutMiou,
    candidates,
    seconds: (performance.now() - t0) / 1000,
  };
}
