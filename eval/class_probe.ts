/**
 * Linear and attentive classification probes (CAPI protocol, SPEC 1.10) on frozen features.
 *
 * For one feature source: a grid of lr x wd classifiers is trained jointly (grid_train.ts)
 * on the fit part of train, every classifier is scored on a fixed held-out 10% of train,
 * the best one (first on ties, in lr-major grid order) is reported on the val split.
 * Defaults are scaled down for 2 CPU cores; the official values are in each `.describe()`.
 *
 * @module
 */
import { z } from "zod";
import { tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import type { HostTensor } from "../model/fixture.ts";
import { attnGridLogits, initAttnGrid, initLinearGrid, linearGridLogits } from "./probe_heads.ts";
import { evalGrid, type GridParam, trainGrid } from "./grid_train.ts";
import { holdoutSplit, rowsTensor, takeLabels, takeRows } from "./splits.ts";
import { top1 } from "./metrics.ts";

const OFFICIAL_LRS = [1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2];

export const ClassProbeConfig = z.strictObject({
  lrs: z.array(z.number().positive()).min(1).default(OFFICIAL_LRS)
    .describe("base learning rates of the grid, scaled by batchSize/256 (official grid, capi eval_classification.py)"),
  wds: z.array(z.number().nonnegative()).min(1).default([5e-4, 1e-3, 5e-2])
    .describe("weight decays of the grid (official grid); biases get 0"),
  iterations: z.number().int().positive().default(1000)
    .describe("training iterations; official 12500 at batch 1024 on IN-1k, scaled down for 2 CPU cores"),
  warmupFraction: z.number().min(0).max(1).default(0.1).describe("linear warmup share (official 1250/12500)"),
  batchSize: z.number().int().positive().default(256).describe("batch size (official 128/GPU x 8 = 1024)"),
  holdoutFraction: z.number().gt(0).lt(1).default(0.1).describe("share of train held out to pick (lr, wd)"),
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

/** Labelled features of one split: `[N, Din]` vectors (linear) or `[N, T, D]` tokens (attentive). */
export interface LabelledFeatures {
  x: HostTensor<Float32Array>;
  labels: Int32Array;
}

export interface ClassProbeResult {
  top1: number;
  /** Selected grid point and its held-out accuracy. */
  lr: number;
  wd: number;
  holdoutTop1: number;
  /** Held-out accuracy of every grid point, lr-major. */
  grid: { lr: number; wd: number; holdoutTop1: number }[];
  seconds: number;
}

/** Train the grid of `kind` heads on `train`, select on a held-out 10% of it, report on `val`. */
export async function runClassProbe(
  kind: "linear" | "attentive",
  train: LabelledFeatures,
  val: LabelledFeatures,
  classes: number,
  cfg: ClassProbeConfig,
  log: (msg: string) => void = () => {},
): Promise<ClassProbeResult> {
  const t0 = performance.now();
  const rank = kind === "linear" ? 2 : 3;
  for (const [name, s] of [["train", train], ["val", val]] as const) {
    if (s.x.shape.length !== rank) {
      throw new Error(`${kind} probe: ${name} features have shape [${s.x.shape}], expected rank ${rank}`);
    }
    if (s.labels.length !== s.x.shape[0]) {
      throw new Error(`${kind} probe: ${name} has ${s.x.shape[0]} feature rows but ${s.labels.length} labels`);
    }
    const bad = s.labels.findIndex((l) => l < 0 || l >= classes);
    if (bad >= 0) {
      throw new Error(`${kind} probe: ${name} label ${s.labels[bad]} at sample ${bad} not in [0, ${classes})`);
    }
  }
  const split = holdoutSplit(train.labels.length, cfg.holdoutFraction, cfg.seed, "class-holdout"); // shared by linear, attentive and kNN
  const fitX = takeRows(train.x, split.fit);
  const fitY = takeLabels(train.labels, split.fit);
  const holdX = takeRows(train.x, split.hold);
  const holdY = takeLabels(train.labels, split.hold);
  const grid = cfg.lrs.flatMap((lr) => cfg.wds.map((wd) => ({ lr, wd })));
  const g = grid.length;
  const bs = Math.min(cfg.batchSize, fitY.length);
  const rng = Rng.from(cfg.seed, "eval", kind);
  const d = train.x.shape[rank - 1];
  const init = kind === "linear"
    ? initLinearGrid(rng.fork("init"), d, classes, g)
    : initAttnGrid(rng.fork("init"), d, classes, g);
  const params: Record<string, GridParam> = kind === "linear"
    ? {
      w: { init: init.w, layout: { kind: "cols", per: classes }, isBias: false },
      b: { init: init.b, layout: { kind: "cols", per: classes }, isBias: true },
    }
    : {
      query: { init: init.query, layout: { kind: "lead", rank: 2 }, isBias: false },
      kvW: { init: init.kvW, layout: { kind: "cols", per: 2 * d }, isBias: false },
      kvB: { init: init.kvB, layout: { kind: "cols", per: 2 * d }, isBias: true },
      w: { init: init.w, layout: { kind: "lead", rank: 3 }, isBias: false },
      b: { init: init.b, layout: { kind: "lead", rank: 3 }, isBias: true },
    };
  const forward = (x: tf.Tensor, p: Record<string, tf.Tensor>) =>
    kind === "linear"
      ? linearGridLogits(x, p.w, p.b, classes)
      : attnGridLogits(x, p as Parameters<typeof attnGridLogits>[1]);
  const trained = await trainGrid(params, fitY.length, fitY, (idx) => rowsTensor(fitX, idx), forward, {
    lrs: grid.map((c) => c.lr * bs / 256),
    wds: grid.map((c) => c.wd),
    iterations: cfg.iterations,
    warmup: Math.round(cfg.iterations * cfg.warmupFraction),
    batchSize: bs,
    classes,
    rng: rng.fork("batches"),
    onLog: (it, loss) => log(`${kind} probe it ${it}/${cfg.iterations} loss ${loss.toFixed(4)}`),
    logEvery: Math.max(1, Math.floor(cfg.iterations / 5)),
  });
  const p = Object.fromEntries(Object.entries(trained).map(([k, v]) => [k, tf.tensor(v.data, v.shape, "float32")]));
  try {
    const logitsOf = (x: tf.Tensor) => forward(x, p);
    const chunk = kind === "linear" ? 1024 : 64;
    const hold = await evalGrid(holdY.length, holdY, (idx) => rowsTensor(holdX, idx), logitsOf, chunk);
    let best = 0;
    for (let k = 1; k < g; k++) if (hold.acc[k] > hold.acc[best]) best = k;
    const onVal = await evalGrid(val.labels.length, val.labels, (idx) => rowsTensor(val.x, idx), logitsOf, chunk);
    return {
      top1: top1(onVal.pred[best], val.labels),
      lr: grid[best].lr,
      wd: grid[best].wd,
      holdoutTop1: hold.acc[best],
      grid: grid.map((c, k) => ({ ...c, holdoutTop1: hold.acc[k] })),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const t of Object.values(p)) t.dispose();
  }
}
