/**
 * Seeded train / held-out splits and host-side row gathering shared by the probes.
 *
 * The held-out part of train picks hyper-parameters; the reported split is never used for
 * selection (capi: eval_classification.py takes 10% of IN-1k train with
 * `np.random.default_rng(42).permutation`; we draw the permutation from model/rng.ts).
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import type { HostTensor } from "../model/fixture.ts";

export interface HoldoutSplit {
  /** Indices the candidates are fitted on (ascending). */
  fit: Int32Array;
  /** Indices they are scored on (ascending). */
  hold: Int32Array;
}

/** A fixed `fraction` of `0..n-1` held out, at least one sample on each side. */
export function holdoutSplit(n: number, fraction: number, seed: number, label = "holdout"): HoldoutSplit {
  if (n < 2) throw new Error(`holdoutSplit: need at least 2 training samples to hold some out, got ${n}`);
  const nHold = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  const perm = Rng.from(seed, "eval", label).permutation(n);
  const hold = perm.slice(0, nHold).sort();
  const fit = perm.slice(nHold).sort();
  return { fit, hold };
}

/** Rows `idx` of a host tensor `[N, ...]` as a host tensor `[idx.length, ...]`. */
export function takeRows<T extends Float32Array | Int32Array>(x: HostTensor<T>, idx: ArrayLike<number>): HostTensor<T> {
  const row = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const Ctor = x.data.constructor as { new (n: number): T };
  const out = new Ctor(idx.length * row);
  for (let i = 0; i < idx.length; i++) out.set(x.data.subarray(idx[i] * row, (idx[i] + 1) * row), i * row);
  return { shape: [idx.length, ...x.shape.slice(1)], data: out };
}

/** Entries `idx` of a label array. */
export function takeLabels(labels: Int32Array, idx: ArrayLike<number>): Int32Array {
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = labels[idx[i]];
  return out;
}

/** Rows `idx` of a host tensor, uploaded as a float32 tensor the caller disposes. */
export function rowsTensor(x: HostTensor<Float32Array>, idx: ArrayLike<number>): tf.Tensor {
  const t = takeRows(x, idx);
  return tf.tensor(t.data, t.shape, "float32");
}
