/**
 * Segmentation k-NN probe (capi: eval_segmentation.py, SPEC 1.10).
 *
 * Database = training patches whose mode label is not ignored, standardised with a
 * scaler fitted on them. A query patch takes its k nearest database patches (cosine or L2)
 * and predicts, **per pixel**, the mode of those neighbours' pixel labels (smallest label on
 * ties); neighbour pixels may be 0/255, so predictions can be too. (k, distance) is chosen
 * by mIoU on a fixed 10% of the training images with the other 90% as database, then the
 * whole training set is the database for the val score.
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import type { HostTensor } from "../model/fixture.ts";
import { SegMetricAccumulator } from "./metrics.ts";
import { normalizeRows, topkNeighbours } from "./knn_probe.ts";
import { holdoutSplit } from "./splits.ts";
import {
  keepLabelled,
  labelSpan,
  modeOf,
  type Patches,
  type SegFeatures,
  StandardScaler,
  toPatches,
} from "./seg_data.ts";

export const SegKnnConfig = z.strictObject({
  ks: z.array(z.number().int().positive()).min(1).default([1, 3, 10, 30]).describe("neighbour counts (official grid)"),
  distances: z.array(z.enum(["cosine", "l2"])).min(1).default(["cosine", "l2"]).describe("distances (official grid)"),
  standardize: z.boolean().default(true).describe("StandardScaler fitted on training patches (paper Table 7: True)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of training images used to pick (k, distance)"),
  chunk: z.number().int().positive().default(256).describe("query patches per distance block (memory only)"),
  seed: z.number().int().default(0).describe("seed of the holdout split"),
});
export type SegKnnConfig = z.infer<typeof SegKnnConfig>;
export type SegDistance = SegKnnConfig["distances"][number];

export interface SegProbeResult {
  miou: number;
  pixelAcc: number;
  /** Selected hyper-parameters and their holdout mIoU. */
  selected: Record<string, number | string>;
  holdoutMiou: number;
  candidates: { params: Record<string, number | string>; holdoutMiou: number }[];
  seconds: number;
}

/** Per-pixel predictions `[M, pp]` for every k, from the nearest database patches. */
export async function segKnnPredict(
  db: Patches,
  queries: HostTensor<Float32Array>,
  distance: SegDistance,
  ks: number[],
  chunk: number,
): Promise<Map<number, Int32Array>> {
  const n = db.image.length;
  const kmax = Math.min(Math.max(...ks), n);
  const dbx = distance === "cosine" ? normalizeRows(db.x) : db.x;
  const q = distance === "cosine" ? normalizeRows(queries) : queries;
  const dbT = tf.tidy(() => tf.transpose(tf.tensor(dbx.data, dbx.shape, "float32"))); // [D, N]
  const dbSq = tf.tidy(() => tf.sum(tf.square(dbT), 0, true)); // [1, N]
  // Higher = nearer. L2: -|q - x|^2 up to the per-query constant |q|^2.
  const score = distance === "cosine"
    ? (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b)
    : (a: tf.Tensor, b: tf.Tensor) => tf.sub(tf.mul(tf.matMul(a, b), 2), dbSq);
  let nb: { idx: Int32Array };
  try {
    nb = await topkNeighbours(q, dbT, kmax, chunk, score);
  } finally {
    dbT.dispose();
    dbSq.dispose();
  }
  const m = q.shape[0];
  const pp = db.pp;
  const counts = new Int32Array(labelSpan(db.pixels));
  const vals = new Int32Array(kmax);
  const out = new Map<number, Int32Array>();
  for (const k0 of new Set(ks)) {
    const k = Math.min(k0, kmax);
    const pred = new Int32Array(m * pp);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < pp; j++) {
        for (let t = 0; t < k; t++) vals[t] = db.pixels[nb.idx[i * kmax + t] * pp + j];
        pred[i * pp + j] = modeOf(vals, 0, k, 1, counts);
      }
    }
    out.set(k0, pred);
  }
  return out;
}

/** Fit the scaler on the labelled training patches; return the database and the scaler. */
export function buildDatabase(train: Patches, standardize: boolean): { db: Patches; scaler: StandardScaler } {
  const { patches } = keepLabelled(train);
  const scaler = standardize ? StandardScaler.fit(patches.x) : StandardScaler.identity(patches.x.shape[1]);
  return { db: { ...patches, x: scaler.transform(patches.x) }, scaler };
}

function score(pred: Int32Array, gt: Int32Array): { miou: number; pixelAcc: number } {
  const acc = new SegMetricAccumulator();
  acc.add(pred, gt);
  const s = acc.scores();
  return { miou: s.miou, pixelAcc: s.pixelAcc };
}

/** Select (k, distance) on a train holdout, then score val with all of train as database. */
export async function runSegKnn(train: SegFeatures, val: SegFeatures, cfg: SegKnnConfig): Promise<SegProbeResult> {
  const t0 = performance.now();
  const nImg = train.feats.shape[0];
  const split = holdoutSplit(nImg, cfg.holdoutFraction, cfg.seed, "seg-holdout");
  const { db, scaler } = buildDatabase(toPatches(train, split.fit), cfg.standardize);
  const hold = toPatches(train, split.hold);
  const holdX = scaler.transform(hold.x);
  const candidates: SegProbeResult["candidates"] = [];
  for (const distance of cfg.distances) {
    const preds = await segKnnPredict(db, holdX, distance, cfg.ks, cfg.chunk);
    for (const k of cfg.ks) {
      candidates.push({ params: { k, distance }, holdoutMiou: score(preds.get(k)!, hold.pixels).miou });
    }
  }
  let best = candidates[0];
  for (const c of candidates) if (c.holdoutMiou > best.holdoutMiou) best = c;
  const full = buildDatabase(toPatches(train), cfg.standardize);
  const v = toPatches(val);
  const k = best.params.k as number;
  const pred = await segKnnPredict(
    full.db,
    full.scaler.transform(v.x),
    best.params.distance as SegDistance,
    [k],
    cfg.chunk,
  );
  const s = score(pred.get(k)!, v.pixels);
  return {
    ...s,
    selected: best.params,
    holdoutMiou: best.holdoutMiou,
    candidates,
    seconds: (performance.now() - t0) / 1000,
  };
}
