/**
 * Joint training of an lr x wd grid of classifiers on the same batches (capi:
 * eval_classification.py, SPEC 1.10): every classifier sees the same batch, the loss is
 * the cross-entropy averaged over the batch **and** the classifiers, and one AdamW step
 * (betas 0.9/0.95, model/adamw.ts) updates the whole grid at once because each parameter
 * holds all G classifiers and lr/wd are broadcast tensors.
 *
 * Schedule: `linspace(0, 1, W)` warmup then `(cos(linspace(0, pi, T-W)) + 1) / 2` as a
 * multiplier of each classifier's lr (official: T = 12500, W = 1250); lr is scaled by
 * `batch/256`; parameters whose name contains `b` as a bias get weight decay 0.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import { AdamW } from "../model/adamw.ts";
import type { Rng } from "../model/rng.ts";
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

export interface GridTrainOptions {
  /** Per-classifier base lr (already scaled by batch/256) and weight decay, length G. */
  lrs: number[];
  wds: number[];
  iterations: number;
  warmup: number;
  batchSize: number;
  classes: number;
  rng: Rng;
  /** Called every `logEvery` iterations with the mean loss (read back only then). */
  onLog?: (it: number, loss: number) => void;
  logEvery?: number;
}

/**
 * Train G classifiers jointly. `makeBatch(indices)` returns the input tensor for those
 * training samples (the caller owns host data); `forward(x, params)` returns `[B, G, C]`.
 * Returns the trained parameters on the host.
 */
export async function trainGrid(
  params: Record<string, GridParam>,
  nTrain: number,
  labels: Int32Array,
  makeBatch: (idx: Int32Array) => tf.Tensor,
  forward: (x: tf.Tensor, p: Record<string, tf.Tensor>) => tf.Tensor,
  o: GridTrainOptions,
): Promise<Record<string, HostTensor<Float32Array>>> {
  const g = o.lrs.length;
  const vars = new Map<string, tf.Variable>();
  const lrT = new Map<string, tf.Tensor>();
  const wdT = new Map<string, tf.Tensor>();
  for (const [name, p] of Object.entries(params)) {
    const t = tf.tensor(p.init.data, p.init.shape, "float32");
    vars.set(name, tf.variable(t, true, `${name}#${crypto.randomUUID()}`));
    t.dispose();
    lrT.set(name, expand(o.lrs, p.layout));
    wdT.set(name, expand(p.isBias ? new Array(g).fill(0) : o.wds, p.layout));
  }
  const opt = new AdamW({ betas: [0.9, 0.95], eps: 1e-8 });
  const bs = Math.min(o.batchSize, nTrain);
  let order = o.rng.fork("epoch", 0).permutation(nTrain);
  let epoch = 0;
  let pos = 0;
  const idx = new Int32Array(bs);
  const logEvery = o.logEvery ?? 100;
  try {
    for (let it = 0; it < o.iterations; it++) {
      for (let i = 0; i < bs; i++) {
        if (pos === nTrain) {
          order = o.rng.fork("epoch", ++epoch).permutation(nTrain);
          pos = 0;
        }
        idx[i] = order[pos++];
      }
      const s = probeSchedule(it, o.iterations, o.warmup);
      const x = makeBatch(idx);
      const { value, grads } = tf.variableGrads(() => {
        const logits = forward(x, Object.fromEntries(vars)); // [B, G, C]
        const y = tf.oneHot(tf.tensor1d(idx.map((j) => labels[j]), "int32"), o.classes); // [B, C]
        const logp = tf.logSoftmax(logits);
        return tf.div(tf.neg(tf.sum(tf.mul(logp, tf.expandDims(y, 1)))), bs * g) as tf.Scalar;
      }, [...vars.values()]);
      const byName = new Map([...vars].map(([n, v]) => [n, grads[v.name]]));
      const stepLr = new Map([...lrT].map(([n, t]) => [n, tf.mul(t, s)]));
      opt.step(vars, byName, (n) => ({ lr: stepLr.get(n)!, weightDecay: wdT.get(n)! }));
      for (const t of [...stepLr.values(), ...Object.values(grads), x]) t.dispose();
      if (o.onLog && (it % logEvery === 0 || it === o.iterations - 1)) o.onLog(it, (await value.data())[0]);
      value.dispose();
    }
    const out: Record<string, HostTensor<Float32Array>> = {};
    for (const [n, v] of vars) out[n] = { shape: [...v.shape], data: (await v.data()) as Float32Array };
    return out;
  } finally {
    opt.dispose();
    for (const t of [...vars.values(), ...lrT.values(), ...wdT.values()]) t.dispose();
  }
}

/**
 * Accuracy of every classifier of a grid on a labelled set, evaluated in chunks.
 * Returns `[G]` accuracies and the argmax predictions `[G][n]`.
 */
export async function evalGrid(
  n: number,
  labels: Int32Array,
  makeBatch: (idx: Int32Array) => tf.Tensor,
  logitsOf: (x: tf.Tensor) => tf.Tensor,
  chunk = 512,
): Promise<{ acc: number[]; pred: Int32Array[] }> {
  let pred: Int32Array[] = [];
  for (let start = 0; start < n; start += chunk) {
    const idx = new Int32Array(Math.min(chunk, n - start)).map((_, i) => start + i);
    const x = makeBatch(idx);
    const am = tf.tidy(() => tf.argMax(logitsOf(x), -1)); // [b, G]
    const data = (await am.data()) as Int32Array;
    const [b, g] = am.shape;
    am.dispose();
    x.dispose();
    if (pred.length === 0) pred = Array.from({ length: g }, () => new Int32Array(n));
    for (let i = 0; i < b; i++) for (let k = 0; k < g; k++) pred[k][start + i] = data[i * g + k];
  }
  const acc = pred.map((p) => {
    let hit = 0;
    for (let i = 0; i < n; i++) if (p[i] === labels[i]) hit++;
    return hit / n;
  });
  return { acc, pred };
}
