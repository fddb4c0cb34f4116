/**
 * k-NN classification probe (DINO-style weighted vote, DINO `eval_knn.py`; capi's code has
 * no classification k-NN): cosine similarity between L2-normalised features, the k most
 * similar training samples vote for their class with weight `exp(sim / T)`, highest total
 * wins (lowest class on ties).
 *
 * k is chosen on the held-out part of train shared with the linear and attentive probes
 * (neighbours from the rest), then the chosen k is reported on val with neighbours from all
 * of train. The training features are streamed block by block (topk.ts): memory is a query
 * chunk, a database block and k candidates per query.
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import { top1 } from "./metrics.ts";
import { allRows, chunks, type FeatureTable } from "./feature_table.ts";
import { type FeatureSource, type SourceScratch, sourceShape, tableSourceRows } from "./feature_sources.ts";
import { blockTopK, normalizeRowsInPlace, RunningTopK } from "./topk.ts";
import { holdoutSplit } from "./splits.ts";

export const KnnProbeConfig = z.strictObject({
  ks: z.array(z.number().int().positive()).min(1).default([10, 20])
    .describe("neighbour counts tried (DINO eval_knn.py: 10, 20, 100, 200; large k needs large train sets)"),
  temperature: z.number().positive().default(0.07).describe("vote weight exp(sim/T) (DINO default 0.07)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of train held out to pick k"),
  chunk: z.number().int().positive().default(1024).describe("query rows per similarity block (memory only)"),
  seed: z.number().int().default(0).describe("seed of the holdout split"),
});
export type KnnProbeConfig = z.infer<typeof KnnProbeConfig>;

/** Database rows per block: a shard, at most this many (memory only). */
const DB_BLOCK = 4096;

/** Weighted-vote predictions for each k in `ks` from `[M, kmax]` neighbour labels (best first). */
export function weightedVote(
  nb: { labels: Int32Array; sim: Float32Array },
  kmax: number,
  classes: number,
  ks: number[],
  temperature: number,
): Map<number, Int32Array> {
  const m = nb.labels.length / kmax;
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
      const s = nb.sim[i * kmax + j];
      if (s === -Infinity) break; // fewer neighbours than kmax in the database
      votes[nb.labels[i * kmax + j]] += Math.exp(s / temperature);
      while (next < sorted.length && sorted[next] === j + 1) out.get(sorted[next++])![i] = argmax();
    }
    // k larger than the database: every neighbour votes.
    while (next < sorted.length) out.get(sorted[next++])![i] = argmax();
  }
  return out;
}

/** Predictions for each k of the `queries` rows of `qt`, neighbours among the `db` rows of `dbt`. */
export async function knnPredict(
  dbt: FeatureTable,
  db: Int32Array,
  qt: FeatureTable,
  queries: Int32Array,
  source: FeatureSource,
  classes: number,
  cfg: Pick<KnnProbeConfig, "ks" | "temperature" | "chunk">,
): Promise<Map<number, Int32Array>> {
  const kmax = Math.min(Math.max(...cfg.ks), db.length);
  const d = sourceShape(source, dbt.dims)[0];
  const labels = dbt.labels!;
  const preds = new Map(cfg.ks.map((k) => [k, new Int32Array(queries.length)] as const));
  let done = 0;
  const qScratch: SourceScratch = {}, dbScratch: SourceScratch = {};
  for (const qc of chunks(queries, cfg.chunk)) {
    const q = tf.tensor2d(normalizeRowsInPlace(await tableSourceRows(qt, source, qc, qScratch), d), [qc.length, d]);
    const top = new RunningTopK(qc.length, kmax, 1);
    try {
      for (const bc of chunks(db, Math.min(DB_BLOCK, dbt.blockRows))) {
        const x = tf.tensor2d(normalizeRowsInPlace(await tableSourceRows(dbt, source, bc, dbScratch), d), [
          bc.length,
          d,
        ]);
        const r = await blockTopK(q, x, kmax, "dot").finally(() => x.dispose());
        top.merge(r.scores, r.idx, r.kb, Int32Array.from(bc, (i) => labels[i]));
      }
    } finally {
      q.dispose();
    }
    const votes = weightedVote({ labels: top.payload, sim: top.scores }, kmax, classes, cfg.ks, cfg.temperature);
    for (const [k, p] of votes) preds.get(k)!.set(p, done);
    done += qc.length;
  }
  return preds;
}

export interface KnnProbeResult {
  top1: number;
  k: number;
  holdoutTop1: number;
  /** Classes predicted on val at the selected k (1 = a constant prediction). */
  distinctPredictions: number;
  /** val top-1 of every k, for reports (only `top1` at the selected k is the result). */
  perK: { k: number; holdoutTop1: number; top1: number }[];
  seconds: number;
}

/** Pick k on the held-out part of train, report val top-1 at that k. */
export async function runKnnProbe(
  train: FeatureTable,
  val: FeatureTable,
  source: FeatureSource,
  classes: number,
  cfg: KnnProbeConfig,
): Promise<KnnProbeResult> {
  const t0 = performance.now();
  const ytr = train.labels, yva = val.labels;
  if (!ytr || !yva) throw new Error("knn probe: the features carry no class labels (a segmentation dataset?)");
  const split = holdoutSplit(train.length, cfg.holdoutFraction, cfg.seed, "class-holdout");
  const onHold = await knnPredict(train, split.fit, train, split.hold, source, classes, cfg);
  const onVal = await knnPredict(train, allRows(train.length), val, allRows(val.length), source, classes, cfg);
  const holdY = Int32Array.from(split.hold, (i) => ytr[i]);
  const perK = cfg.ks.map((k) => ({ k, holdoutTop1: top1(onHold.get(k)!, holdY), top1: top1(onVal.get(k)!, yva) }));
  let best = perK[0];
  for (const r of perK) if (r.holdoutTop1 > best.holdoutTop1) best = r;
  return {
    top1: best.top1,
    k: best.k,
    holdoutTop1: best.holdoutTop1,
    distinctPredictions: new Set(onVal.get(best.k)!).size,
    perK,
    seconds: (performance.now() - t0) / 1000,
  };
}
