/**
 * Segmentation k-NN probe (capi: eval_segmentation.py `KNNClassifier`, SPEC 1.10).
 *
 * Database = training patches whose mode label is not ignored, standardised (seg_data.ts). A
 * query patch takes its k nearest database patches (cosine or L2) and predicts, **per pixel**,
 * the mode of those neighbours' pixel labels (smallest label on ties); neighbour pixels may be
 * 0/255, so predictions can be too. (k, distance) is chosen by mIoU on the held-out 10% of
 * the training images (`n // 10`) with the other 90% as database, then all training images
 * are the database for the val score.
 *
 * Streaming: query patches come in chunks; for each chunk the database goes by block by block
 * (kept on the backend while it fits the memory budget) and each query keeps its k best
 * neighbours' pixel labels (topk.ts). With `dtype: bfloat16` (the official evaluation config)
 * features are rounded to bfloat16 after standardisation; distances are then computed in
 * float32 (torch computes them in bfloat16 too: our distances are the more exact ones).
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import { IGNORE_LABELS, SegMetricAccumulator } from "./metrics.ts";
import { allRows, chunks, type FeatureTable } from "./feature_table.ts";
import { holdoutSplit } from "./splits.ts";
import { LabelledPatches } from "./labelled_patches.ts";
import { blockTopK, normalizeRows, roundToBf16InPlace, RunningTopK, type Similarity } from "./topk.ts";
import { fitScaler, imagesPerBlock, labelSpan, modeOf, readPatches, type StandardScaler } from "./seg_data.ts";

export const SegKnnConfig = z.strictObject({
  ks: z.array(z.number().int().positive()).min(1).default([1, 3, 10, 30]).describe("neighbour counts (official grid)"),
  distances: z.array(z.enum(["cosine", "l2"])).min(1).default(["cosine", "l2"]).describe("distances (official grid)"),
  standardize: z.boolean().default(true).describe("StandardScaler fitted on training patches (paper Table 7: True)"),
  dtype: z.enum(["float32", "bfloat16"]).default("float32")
    .describe("feature precision of the neighbour search (official default_eval_config.yaml: bfloat16)"),
  resolution: z.union([z.literal("encoder"), z.number().int().positive()]).default("encoder")
    .describe("images and label maps resized to this square size (official 224); 'encoder': its input size"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of training images used to pick (k, distance)"),
  chunk: z.number().int().positive().default(4096).describe("query patches per database pass (memory only)"),
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
  candidates: { params: Record<string, number | string>; holdoutMiou: number; converged?: boolean }[];
  /** Distinct labels predicted on the scored val pixels (1 = a constant prediction). */
  distinctPredictions: number;
  seconds: number;
}

const SIMILARITY: Record<SegDistance, Similarity> = { cosine: "dot", l2: "neg_sq_l2" };
/** Scores computed at once (16M floats, 64 MiB): bounds memory whatever the database block size. */
const SCORE_ENTRIES = 2 ** 24;

/** Per-pixel mode of the first `k` neighbours' labels: `[q, pp]` from payload `[q, kmax, pp]`. */
export function pixelModes(payload: Int32Array, q: number, kmax: number, pp: number, k: number): Int32Array {
  const counts = new Int32Array(labelSpan(payload));
  const pred = new Int32Array(q * pp);
  const kk = Math.min(k, kmax);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < pp; j++) pred[i * pp + j] = modeOf(payload, i * kmax * pp + j, kk, pp, counts);
  }
  return pred;
}

/**
 * Score the patches of `images` of `qt` with every (distance, k), neighbours from `db`.
 * Returns one metric accumulator per `${distance}:${k}` and the distinct predicted labels.
 */
export async function segKnnScores(
  db: LabelledPatches,
  dbSize: number,
  qt: FeatureTable,
  images: Int32Array,
  scaler: StandardScaler,
  distances: SegDistance[],
  ks: number[],
  cfg: Pick<SegKnnConfig, "chunk" | "dtype">,
): Promise<{ accs: Map<string, SegMetricAccumulator>; predicted: Map<string, Set<number>> }> {
  const kmax = Math.min(Math.max(...ks), dbSize);
  const accs = new Map<string, SegMetricAccumulator>(), predicted = new Map<string, Set<number>>();
  for (const dist of distances) {
    for (const k of ks) {
      accs.set(`${dist}:${k}`, new SegMetricAccumulator());
      predicted.set(`${dist}:${k}`, new Set());
    }
  }
  const [gh, gw] = qt.dims.patches!;
  const imgsPerChunk = Math.max(1, Math.floor(cfg.chunk / (gh * gw)));
  for (const imgs of chunks(images, Math.min(imgsPerChunk, imagesPerBlock(qt)))) {
    const q = await readPatches(qt, imgs);
    const qx = scaler.transform(q.x);
    if (cfg.dtype === "bfloat16") roundToBf16InPlace(qx.data);
    const qn = qx.shape[0];
    const qRaw = tf.tensor2d(qx.data, qx.shape as [number, number]);
    const qs = new Map(distances.map((d) => [d, d === "cosine" ? normalizeRows(qRaw) : qRaw] as const));
    const tops = new Map(distances.map((d) => [d, new RunningTopK(qn, kmax, q.pp)] as const));
    try {
      // Database rows per score matrix: at most SCORE_ENTRIES scores [queries, rows] at once.
      const rows = Math.max(1, Math.floor(SCORE_ENTRIES / qn));
      for await (const b of db.blocks()) {
        const n = b.targets.length;
        for (let s = 0; s < n; s += rows) {
          const m = Math.min(rows, n - s);
          const part = m === n ? b.x : tf.slice(b.x, [s, 0], [m, -1]);
          const pixels = b.pixels.subarray(s * q.pp, (s + m) * q.pp);
          try {
            for (const d of distances) {
              const x = d === "cosine" ? normalizeRows(part) : part;
              const r = await blockTopK(qs.get(d)!, x, kmax, SIMILARITY[d]).finally(() => {
                if (x !== part) x.dispose();
              });
              tops.get(d)!.merge(r.scores, r.idx, r.kb, pixels);
            }
          } finally {
            if (part !== b.x) part.dispose();
          }
        }
      }
    } finally {
      for (const t of new Set([qRaw, ...qs.values()])) t.dispose();
    }
    for (const d of distances) {
      for (const k of ks) {
        const pred = pixelModes(tops.get(d)!.payload, qn, kmax, q.pp, k);
        accs.get(`${d}:${k}`)!.add(pred, q.pixels);
        const seen = predicted.get(`${d}:${k}`)!;
        for (let i = 0; i < pred.length; i++) if (!IGNORE_LABELS.includes(q.pixels[i])) seen.add(pred[i]);
      }
    }
  }
  return { accs, predicted };
}

/** Select (k, distance) on a train holdout, then score val with all of train as database. */
export async function runSegKnn(
  train: FeatureTable,
  val: FeatureTable,
  cfg: SegKnnConfig,
  o: { memoryBytes?: number } = {},
): Promise<SegProbeResult> {
  const t0 = performance.now();
  const budget = o.memoryBytes ?? 512 * 2 ** 20;
  const split = holdoutSplit(train.length, cfg.holdoutFraction, cfg.seed, "seg-holdout", "floor");
  const scaler = await fitScaler(train, split.fit, cfg.standardize);
  const round = cfg.dtype === "bfloat16";
  const sel = new LabelledPatches(train, split.fit, scaler, budget, { roundBf16: round });
  let selScores;
  try {
    selScores = await segKnnScores(sel, await sel.count(), train, split.hold, scaler, cfg.distances, cfg.ks, cfg);
  } finally {
    sel.dispose();
  }
  const candidates: SegProbeResult["candidates"] = [];
  for (const distance of cfg.distances) {
    for (const k of cfg.ks) {
      candidates.push({ params: { k, distance }, holdoutMiou: selScores.accs.get(`${distance}:${k}`)!.scores().miou });
    }
  }
  let best = candidates[0];
  for (const c of candidates) if (c.holdoutMiou > best.holdoutMiou) best = c;
  const k = best.params.k as number, distance = best.params.distance as SegDistance;
  const full = new LabelledPatches(train, allRows(train.length), scaler, budget, { roundBf16: round });
  let final;
  try {
    final = await segKnnScores(full, await full.count(), val, allRows(val.length), scaler, [distance], [k], cfg);
  } finally {
    full.dispose();
  }
  const s = final.accs.get(`${distance}:${k}`)!.scores();
  return {
    miou: s.miou,
    pixelAcc: s.pixelAcc,
    selected: best.params,
    holdoutMiou: best.holdoutMiou,
    candidates,
    distinctPredictions: final.predicted.get(`${distance}:${k}`)!.size,
    seconds: (performance.now() - t0) / 1000,
  };
}
