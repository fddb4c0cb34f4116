/**
 * Joint training of a grid of classifiers on the same batches (capi:
 * eval_classification.py, SPEC 1.10): every classifier sees the same batch, the loss is
 * the cross-entropy averaged over the batch **and** the classifiers, and one AdamW step
 * (betas 0.9/0.95, model/adamw.ts) updates the whole grid at once because each parameter
 * holds all G classifiers and lr/wd are broadcast tensors.
 *
 * Schedule: `linspace(0, 1, W)` warmup then `(cos(linspace(0, pi, T-W)) + 1) / 2` as a
 * multiplier of each classifier's lr (official: T = 12500, W = 1250); lr is scaled by
 * `batch/256` by the caller; parameters flagged as biases get weight decay 0.
 *
 * Batches come from an async iterator (rows of a feature store, or images through the
 * frozen encoder with augmentations, as the official code trains), so the trainer never
 * holds more than one batch. It also reports each classifier's loss on the first batch and
 * averaged over the last 5% of iterations: the evidence that training went somewhere.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import { AdamW } from "../model/adamw.ts";
import type { HostTensor } from "../model/fixture.ts";

/** CAPI probe schedule multiplier at iteration `it` of `total` with `warmup` warmup iterations. */
export function probeSchedule(it: number, total: number, warmup: number): number {
  if (it < warmup) return warmup === 1 ? 1 : it / (warmup - 1);
  const n = total - warmup;
  if (n <= 1) return 1;
  const i = Math.min(it - warmup, n - 1);
  return (Math.cos(Math.PI * i / (n - 1)) + 1) / 2;
}

/** How a grid parameter lays out its G classifiers, to broadcast per-classifier lr/wd. */
export type GridLayout =
  /** Classifier k owns `per` consecutive entries of the last axis: `[..., G*per]`. */
  | { kind: "cols"; per: number }
  /** Classifier k owns slice k of the first axis of a rank-`rank` parameter. */
  | { kind: "lead"; rank: number };

export interface GridParam {
  init: HostTensor<Float32Array>;
  layout: GridLayout;
  /** Which slice of the global classifier list this parameter holds (its first classifier). */
  offset: number;
  /** Classifiers held. */
  count: number;
  /** Biases get no weight decay (official: `wd 0 if "bias" in name`). */
  isBias: boolean;
}

/** Broadcastable tensor of per-classifier values for a parameter of the given layout. */
function expand(vals: number[], layout: GridLayout): tf.Tensor {
  if (layout.kind === "cols") {
    const out = new Float32Array(vals.length * layout.per);
    vals.forEach((v, k) => out.fill(v, k * layout.per, (k + 1) * layout.per));
    return tf.tensor1d(out);
  }
  return tf.tensor(vals, [vals.length, ...new Array(layout.rank - 1).fill(1)]);
}

/** One training batch: named inputs (one per feature source) and labels. */
export interface GridBatch {
  inputs: Record<string, HostTensor<Float32Array>>;
  labels: Int32Array;
}

export interface GridTrainOptions {
  /** Per-classifier base lr (already scaled by batch/256) and weight decay, length G. */
  lrs: number[];
  wds: number[];
  iterations: number;
  warmup: number;
  classes: number;
  /** Called every `logEvery` iterations with the mean loss (read back only then). */
  onLog?: (it: number, loss: number) => void;
  logEvery?: number;
}

export interface GridTrainResult {
  params: Record<string, HostTensor<Float32Array>>;
  /** Per classifier: mean loss on the first batch, and over the last 5% of iterations. */
  firstLoss: number[];
  finalLoss: number[];
}

const upload = (inputs: Record<string, HostTensor<Float32Array>>) =>
  Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.data, v.shape, "float32")]));

/**
 * Train G classifiers jointly for `o.iterations` batches of `batches`. `forward(inputs,
 * params)` returns logits `[B, G, C]`. Returns the trained parameters on the host.
 */
export async function trainGrid(
  params: Record<string, GridParam>,
  batches: AsyncIterator<GridBatch>,
  forward: (x: Record<string, tf.Tensor>, p: Record<string, tf.Tensor>) => tf.Tensor,
  o: GridTrainOptions,
): Promise<GridTrainResult> {
  const g = o.lrs.length;
  const vars = new Map<string, tf.Variable>();
  const lrT = new Map<string, tf.Tensor>();
  const wdT = new Map<string, tf.Tensor>();
  for (const [name, p] of Object.entries(params)) {
    const t = tf.tensor(p.init.data, p.init.shape, "float32");
    vars.set(name, tf.variable(t, true, `${name}#${crypto.randomUUID()}`));
    t.dispose();
    const slice = (v: number[]) => v.slice(p.offset, p.offset + p.count);
    lrT.set(name, expand(slice(o.lrs), p.layout));
    wdT.set(name, expand(p.isBias ? new Array(p.count).fill(0) : slice(o.wds), p.layout));
  }
  const opt = new AdamW({ betas: [0.9, 0.95], eps: 1e-8 });
  const logEvery = o.logEvery ?? 100;
  const tail = Math.max(1, Math.ceil(o.iterations / 20));
  let tailSum: tf.Tensor = tf.zeros([g]);
  let firstLoss: number[] = [];
  try {
    for (let it = 0; it < o.iterations; it++) {
      const next = await batches.next();
      if (next.done) throw new Error(`trainGrid: the batch stream ended after ${it} of ${o.iterations} iterations`);
      const { inputs, labels } = next.value;
      const bs = labels.length;
      const s = probeSchedule(it, o.iterations, o.warmup);
      const x = upload(inputs);
      const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, "int32"), o.classes)); // [B, C]
      let perClassifier: tf.Tensor | null = null;
      const { value, grads } = tf.variableGrads(() => {
        const logits = forward(x, Object.fromEntries(vars)); // [B, G, C]
        const ce = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.expandDims(y, 1)), -1)); // [B, G]
        perClassifier = tf.keep(tf.mean(ce, 0)); // [G]
        return tf.div(tf.sum(ce), bs * g) as tf.Scalar;
      }, [...vars.values()]);
      const byName = new Map([...vars].map(([n, v]) => [n, grads[v.name]]));
      const stepLr = new Map([...lrT].map(([n, t]) => [n, tf.mul(t, s)]));
      opt.step(vars, byName, (n) => ({ lr: stepLr.get(n)!, weightDecay: wdT.get(n)! }));
      const pc = perClassifier! as tf.Tensor;
      if (it === 0) firstLoss = [...(await pc.data())];
      if (it >= o.iterations - tail) {
        const sum = tf.add(tailSum, pc);
        tailSum.dispose();
        tailSum = sum;
      }
      for (const t of [...stepLr.values(), ...Object.values(grads), ...Object.values(x), y, pc]) t.dispose();
      if (o.onLog && (it % logEvery === 0 || it === o.iterations - 1)) o.onLog(it, (await value.data())[0]);
      value.dispose();
    }
    const finalLoss = [...(await tailSum.data())].map((v) => v / Math.min(tail, o.iterations));
    const out: Record<string, HostTensor<Float32Array>> = {};
    for (const [n, v] of vars) out[n] = { shape: [...v.shape], data: (await v.data()) as Float32Array };
    return { params: out, firstLoss, finalLoss };
  } finally {
    opt.dispose();
    tailSum.dispose();
    for (const t of [...vars.values(), ...lrT.values(), ...wdT.values()]) t.dispose();
  }
}

/**
 * Accuracy of every classifier of a grid on labelled batches, and the number of distinct
 * classes each predicts (1 = a constant prediction). `logitsOf` returns `[b, G, C]`.
 */
export async function evalGrid(
  batches: AsyncIterable<GridBatch>,
  logitsOf: (x: Record<string, tf.Tensor>) => tf.Tensor,
  classes: number,
): Promise<{ acc: number[]; distinct: number[]; n: number }> {
  let hits: number[] = [];
  let seen: Uint8Array[] = [];
  let n = 0;
  for await (const { inputs, labels } of batches) {
    const x = upload(inputs);
    const am = tf.tidy(() => tf.argMax(logitsOf(x), -1)); // [b, G]
    const data = (await am.data()) as Int32Array;
    const [b, g] = am.shape;
    am.dispose();
    for (const t of Object.values(x)) t.dispose();
    if (hits.length === 0) {
      hits = new Array(g).fill(0);
      seen = Array.from({ length: g }, () => new Uint8Array(classes));
    }
    for (let i = 0; i < b; i++) {
      for (let k = 0; k < g; k++) {
        const p = data[i * g + k];
        seen[k][p] = 1;
        if (p === labels[i]) hits[k]++;
      }
    }
    n += b;
  }
  if (n === 0) throw new Error("evalGrid: no samples to score");
  return {
    acc: hits.map((h) => h / n),
    distinct: seen.map((s) => s.reduce((a, v) => a + v, 0)),
    n,
  };
}
