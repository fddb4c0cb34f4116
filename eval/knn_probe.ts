/**
 * k-NN classification probe (DINO-style weighted vote, as in DINO `eval_knn.py` and the
 * CAPI paper's kNN numbers): cosine similarity between L2-normalised features, the k most
 * similar training samples vote for their class with weight `exp(sim / T)`, highest total
 * wins (lowest class on ties).
 *
 * k is chosen on a fixed held-out 10% of train (neighbours from the other 90%), then the
 * chosen k is reported on val with neighbours from all of train.
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import type { HostTensor } from "../model/fixture.ts";
import { holdoutSplit, takeLabels, takeRows } from "./splits.ts";
import { top1 } from "./metrics.ts";
import type { LabelledFeatures } from "./class_probe.ts";

export const KnnProbeConfig = z.strictObject({
  ks: z.array(z.number().int().positive()).min(1).default([10, 20])
    .describe("neighbour counts tried (DINO reports 10, 20, 100, 200; large k needs large train sets)"),
  temperature: z.number().positive().default(0.07).describe("vote weight exp(sim/T) (DINO default 0.07)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of train held out to pick k"),
  chunk: z.number().int().positive().default(256).describe("query rows per similarity block (memory only)"),
  seed: z.number().int().default(0).describe("seed of the holdout split"),
});
export type KnnProbeConfig = z.infer<typeof KnnProbeConfig>;

/** L2-normalise rows (eps 1e-12 as torch `F.normalize`). */
export function normalizeRows(x: HostTensor<Float32Array>): HostTensor<Float32Array> {
  const [n, d] = x.shape;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x.data[i * d + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[i * d + j] = x.data[i * d + j] * inv;
  }
  return { shape: [n, d], data: out };
}

/**
 * Top-`k` neighbours of every query row by a score computed in blocks: `score(q, db)`
 * returns `[b, N]` (higher = nearer). Returns row-major `[M, k]` indices and scores.
 */
export async function topkNeighbours(
  queries: HostTensor<Float32Array>,
  dbT: tf.Tensor,
  k: number,
  chunk: number,
  score: (q: tf.Tensor, dbT: tf.Tensor) => tf.Tensor,
): Promise<{ idx: Int32Array; sim: Float32Array }> {
  const [m, d] = queries.shape;
  const kk = Math.min(k, dbT.shape[1] as number);
  const idx = new Int32Array(m * kk);
  const sim = new Float32Array(m * kk);
  for (let s = 0; s < m; s += chunk) {
    const b = Math.min(chunk, m - s);
    const { values, indices } = tf.tidy(() => {
      const q = tf.tensor(queries.data.subarray(s * d, (s + b) * d), [b, d], "float32");
      return tf.topk(score(q, dbT), kk, true);
    });
    sim.set(await values.data() as Float32Array, s * kk);
    idx.set(await indices.data() as Int32Array, s * kk);
    values.dispose();
    indices.dispose();
  }
  return { idx, sim };
}

/** Weighted-vote predictions for each k in `ks` from `[M, kmax]` neighbours. */
export function weightedVote(
  nb: { idx: Int32Array; sim: Float32Array },
  kmax: number,
  trainLabels: Int32Array,
  classes: number,
  ks: number[],
  temperature: number,
): Map<number, Int32Array> {
  const m = nb.idx.length / kmax;
  const out = new Map(ks.map((k) => [k, new Int32Array(m)] as const));
  const votes = new Float64Array(classes);
  const sorted = [...new Set(ks)].sort((a, b) => a - b);
  const argmax = () => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
    return best;
  };
  for (let i = 0; i < m; i++) {
    votes.fill(0);
    let next = 0;
    for (let j = 0; j < kmax; j++) {
      votes[trainLabels[nb.idx[i * kmax + j]]] += Math.exp(nb.sim[i * kmax + j] / temperature);
      while (next < sorted.length && sorted[next] === j + 1) out.get(sorted[next++])![i] = argmax();
    }
    // k larger than the database: every neighbour votes.
    while (next < sorted.length) out.get(sorted[next++])![i] = argmax();
  }
  return out;
}

const cosine = (q: tf.Tensor, dbT: tf.Tensor) => tf.matMul(q, dbT);

/** Predictions of `queries` for each k, neighbours from `db` (both `[*, D]`, raw features). */
export async function knnPredict(
  db: LabelledFeatures,
  queries: HostTensor<Float32Array>,
  classes: number,
  ks: number[],
  cfg: Pick<KnnProbeConfig, "temperature" | "chunk">,
): Promise<Map<number, Int32Array>> {
  const kmax = Math.min(Math.max(...ks), db.labels.length);
  const dbN = normalizeRows(db.x);
  const dbT = tf.tidy(() => tf.transpose(tf.tensor(dbN.data, dbN.shape, "float32"))); // [D, N]
  try {
    const nb = await topkNeighbours(normalizeRows(queries), dbT, kmax, cfg.chunk, cosine);
    return weightedVote(nb, kmax, db.labels, classes, ks, cfg.temperature);
  } finally {
    dbT.dispose();
  }
}

export interface KnnProbeResult {
  top1: number;
  k: number;
  holdoutTop1: number;
  /** val top-1 of every k, for reports (only `top1` at the selected k is the result). */
  perK: { k: number; holdoutTop1: number; top1: number }[];
  seconds: number;
}

/** Pick k on a held-out 10% of train, report val top-1 at that k. */
export async function runKnnProbe(
  train: LabelledFeatures,
  val: LabelledFeatures,
  classes: number,
  cfg: KnnProbeConfig,
): Promise<KnnProbeResult> {
  const t0 = performance.now();
  const split = holdoutSplit(train.labels.length, cfg.holdoutFraction, cfg.seed, "class-holdout");
  const fit = { x: takeRows(train.x, split.fit), labels: takeLabels(train.labels, split.fit) };
  const holdY = takeLabels(train.labels, split.hold);
  const onHold = await knnPredict(fit, takeRows(train.x, split.hold), classes, cfg.ks, cfg);
  const onVal = await knnPredict(train, val.x, classes, cfg.ks, cfg);
  const perK = cfg.ks.map((k) => ({
    k,
    holdoutTop1: top1(onHold.get(k)!, holdY),
    top1: top1(onVal.get(k)!, val.labels),
  }));
  let best = perK[0];
  for (const r of perK) if (r.holdoutTop1 > best.holdoutTop1) best = r;
  return { top1: best.top1, k: best.k, holdoutTop1: best.holdoutTop1, perK, seconds: (performance.now() - t0) / 1000 };
}
