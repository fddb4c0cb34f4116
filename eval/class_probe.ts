/**
 * Linear and attentive classification probes (CAPI protocol, SPEC 1.10).
 *
 * For every feature source a grid of lr x wd classifiers is trained jointly on the same
 * batches (grid_train.ts; a rank-1 source gets linear heads, the `patch` tokens attentive
 * heads), every classifier is scored on a fixed held-out part of train, and per source the
 * best one (first on ties, lr-major) is reported on val. Where the batches come from is the
 * `ClassData` given: rows of a feature store (`cached`) or images through the frozen encoder
 * with the official training augmentation (`online`, class_online.ts).
 *
 * Defaults are the `cpu` protocol (scaled for 2 cores); `protocols.ts` holds the `paper` values.
 * Each classifier reports whether its training loss went down (first batch vs the mean of the
 * last 5% of iterations) and how many classes it predicts on val (1 = a constant prediction).
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import type { HostTensor } from "../model/fixture.ts";
import { attnGridLogits, initAttnGrid, initLinearGrid, linearGridLogits } from "./probe_heads.ts";
import { evalGrid, type GridBatch, type GridParam, trainGrid } from "./grid_train.ts";
import type { FeatureSource } from "./feature_sources.ts";

export const OFFICIAL_LRS = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2];
export const OFFICIAL_WDS = [5e-4, 1e-3, 5e-2];

export const ClassProbeConfig = z.strictObject({
  lrs: z.array(z.number().positive()).min(1).default(OFFICIAL_LRS)
    .describe("base learning rates of the grid, scaled by batchSize/256 (official grid, capi eval_classification.py)"),
  wds: z.array(z.number().nonnegative()).min(1).default(OFFICIAL_WDS)
    .describe("weight decays of the grid (official grid); biases get 0"),
  iterations: z.number().int().positive().default(1000)
    .describe("training iterations; official 12500 at batch 1024 on IN-1k, scaled down for 2 CPU cores"),
  warmupFraction: z.number().min(0).max(1).default(0.1).describe("linear warmup share (official 1250/12500)"),
  batchSize: z.number().int().positive().default(256).describe("batch size (official 128/GPU x 8 = 1024)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of train held out to pick (lr, wd)"),
  features: z.enum(["cached", "online"]).default("cached").describe(
    "cached: features extracted once (eval transform) and streamed from disk; online: every training batch " +
      "goes through the frozen encoder with the official augmentation (RandomResizedCrop + flip), as capi does",
  ),
  cropScale: z.tuple([z.number().positive(), z.number().positive()]).default([0.08, 1])
    .describe("online: RandomResizedCrop area range of the training images (torchvision default, official)"),
  resolution: z.union([z.literal("encoder"), z.number().int().positive()]).default("encoder")
    .describe("input size: the encoder's own, or a fixed one that the encoder must take (official 224)"),
  seed: z.number().int().default(0).describe("seed of the classifier init, batch order and holdout split"),
});
export type ClassProbeConfig = z.infer<typeof ClassProbeConfig>;

/** CPU-friendly attentive defaults: a 3 x 1 grid (the full 10 x 3 grid costs 30 kv projections a step). */
export const AttentiveProbeConfig = ClassProbeConfig.extend({
  lrs: ClassProbeConfig.shape.lrs.default([1e-4, 1e-3, 1e-2])
    .describe("base learning rates (official: the 10-value linear grid); 3 values keep a step cheap on CPU"),
  wds: ClassProbeConfig.shape.wds.default([5e-4]).describe("weight decays (official: 5e-4, 1e-3, 5e-2)"),
  iterations: ClassProbeConfig.shape.iterations.default(500)
    .describe("training iterations; official 12500, scaled down for 2 CPU cores"),
  batchSize: ClassProbeConfig.shape.batchSize.default(64).describe("batch size (official 1024)"),
});
export type AttentiveProbeConfig = z.infer<typeof AttentiveProbeConfig>;

/** Where a class probe's batches come from (one input per feature source). */
export interface ClassData {
  /** Row shape per source: `[Din]` (linear heads) or `[tokens, D]` (attentive heads). */
  shapes: Partial<Record<FeatureSource, number[]>>;
  /** Samples the classifiers are fitted on. */
  fitCount: number;
  /** An endless stream of training batches of `batchSize` from the fit part. */
  trainBatches(batchSize: number): AsyncIterator<GridBatch>;
  /** The held-out part of train (selection) and the val split (report), in chunks. */
  holdout(): AsyncIterable<GridBatch>;
  val(): AsyncIterable<GridBatch>;
}

export interface GridPointResult {
  lr: number;
  wd: number;
  holdoutTop1: number;
  firstLoss: number;
  finalLoss: number;
}

export interface SourceResult {
  source: FeatureSource;
  top1: number;
  lr: number;
  wd: number;
  holdoutTop1: number;
  /** The selected classifier's training loss went down and stayed finite. */
  converged: boolean;
  /** Classes the selected classifier predicts on val (1 = a constant prediction). */
  distinctPredictions: number;
  grid: GridPointResult[];
}

export interface ClassProbeResult {
  /** The source whose selected classifier is best on the held-out part of train. */
  selected: SourceResult;
  sources: SourceResult[];
  seconds: number;
}

interface HeadSet {
  params: Record<string, GridParam>;
  logits: (x: tf.Tensor, p: Record<string, tf.Tensor>) => tf.Tensor;
}

/** Grid heads for one source: `g` classifiers starting at global index `offset`. */
function headsFor(source: FeatureSource, shape: number[], classes: number, g: number, offset: number, rng: Rng) {
  const tag = (k: string) => `${source}.${k}`;
  const at = { offset, count: g };
  if (shape.length === 1) {
    const init = initLinearGrid(rng.fork(source), shape[0], classes, g);
    const cols = { kind: "cols", per: classes } as const;
    const params = {
      [tag("w")]: { init: init.w, layout: cols, ...at, isBias: false },
      [tag("b")]: { init: init.b, layout: cols, ...at, isBias: true },
    };
    return { params, logits: (x, p) => linearGridLogits(x, p[tag("w")], p[tag("b")], classes) } as HeadSet;
  }
  const d = shape[1];
  const init = initAttnGrid(rng.fork(source), d, classes, g);
  const params = {
    [tag("query")]: { init: init.query, layout: { kind: "lead", rank: 2 } as const, ...at, isBias: false },
    [tag("kvW")]: { init: init.kvW, layout: { kind: "cols", per: 2 * d } as const, ...at, isBias: false },
    [tag("kvB")]: { init: init.kvB, layout: { kind: "cols", per: 2 * d } as const, ...at, isBias: true },
    [tag("w")]: { init: init.w, layout: { kind: "lead", rank: 3 } as const, ...at, isBias: false },
    [tag("b")]: { init: init.b, layout: { kind: "lead", rank: 3 } as const, ...at, isBias: true },
  };
  const logits = (x: tf.Tensor, p: Record<string, tf.Tensor>) =>
    attnGridLogits(x, {
      query: p[tag("query")],
      kvW: p[tag("kvW")],
      kvB: p[tag("kvB")],
      w: p[tag("w")],
      b: p[tag("b")],
    });
  return { params, logits } as HeadSet;
}

/** Train every source's grid jointly, select per source on the holdout, report on val. */
export async function runClassProbe(
  data: ClassData,
  sources: FeatureSource[],
  classes: number,
  cfg: ClassProbeConfig,
  log: (msg: string) => void = () => {},
): Promise<ClassProbeResult> {
  const t0 = performance.now();
  if (sources.length === 0) throw new Error("class probe: no feature source to train on");
  const grid = cfg.lrs.flatMap((lr) => cfg.wds.map((wd) => ({ lr, wd })));
  const g = grid.length;
  const bs = Math.min(cfg.batchSize, data.fitCount);
  const rng = Rng.from(cfg.seed, "eval", "class-probe");
  const heads = sources.map((s, i) => {
    const shape = data.shapes[s];
    if (!shape) throw new Error(`class probe: the data has no feature source '${s}'`);
    return headsFor(s, shape, classes, g, i * g, rng.fork("init"));
  });
  const params: Record<string, GridParam> = Object.assign({}, ...heads.map((h) => h.params));
  // Logits of every source's classifiers side by side: [B, S*G, C].
  const forward = (x: Record<string, tf.Tensor>, p: Record<string, tf.Tensor>) =>
    tf.tidy(() => tf.concat(heads.map((h, i) => h.logits(x[sources[i]], p)), 1));
  const lrs = sources.flatMap(() => grid.map((c) => c.lr * bs / 256));
  const wds = sources.flatMap(() => grid.map((c) => c.wd));
  const trained = await trainGrid(params, data.trainBatches(bs), forward, {
    lrs,
    wds,
    iterations: cfg.iterations,
    warmup: Math.round(cfg.iterations * cfg.warmupFraction),
    classes,
    onLog: (it, loss) => log(`class probe (${sources.join(", ")}) it ${it}/${cfg.iterations} loss ${loss.toFixed(4)}`),
    logEvery: Math.max(1, Math.floor(cfg.iterations / 5)),
  });
  const p = Object.fromEntries(
    Object.entries(trained.params).map(([k, v]) => [k, tf.tensor(v.data, v.shape, "float32")]),
  );
  try {
    const logitsOf = (x: Record<string, tf.Tensor>) => forward(x, p);
    const hold = await evalGrid(data.holdout(), logitsOf, classes);
    const onVal = await evalGrid(data.val(), logitsOf, classes);
    const results = sources.map((source, si): SourceResult => {
      const k0 = si * g;
      let best = 0;
      for (let k = 1; k < g; k++) if (hold.acc[k0 + k] > hold.acc[k0 + best]) best = k;
      const kb = k0 + best;
      const first = trained.firstLoss[kb], final = trained.finalLoss[kb];
      return {
        source,
        top1: onVal.acc[kb],
        lr: grid[best].lr,
        wd: grid[best].wd,
        holdoutTop1: hold.acc[kb],
        converged: Number.isFinite(final) && final < first,
        distinctPredictions: onVal.distinct[kb],
        grid: grid.map((c, k) => ({
          ...c,
          holdoutTop1: hold.acc[k0 + k],
          firstLoss: trained.firstLoss[k0 + k],
          finalLoss: trained.finalLoss[k0 + k],
        })),
      };
    });
    let selected = results[0];
    for (const r of results) if (r.holdoutTop1 > selected.holdoutTop1) selected = r;
    return { selected, sources: results, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const t of Object.values(p)) t.dispose();
  }
}

/** Check a labelled split before training: labels in `[0, classes)`. */
export function checkLabels(labels: Int32Array, classes: number, split: string): void {
  const bad = labels.findIndex((l) => l < 0 || l >= classes);
  if (bad >= 0) throw new Error(`class probe: ${split} label ${labels[bad]} at sample ${bad} not in [0, ${classes})`);
}

/** Host rows `[n, ...shape]` as a host tensor. */
export function rowsTensor(data: Float32Array, shape: number[]): HostTensor<Float32Array> {
  const per = shape.reduce((a, b) => a * b, 1);
  return { shape: [data.length / per, ...shape], data };
}
