/**
 * CAPI heads and losses (capi:model.py:466-563, train_capi.py:71-106, SPEC 1.5): the student's
 * `L2NormLinear`, the teacher's `OnlineClustering` with positionwise Sinkhorn-Knopp, both
 * cross-entropies and the `target_entropy` metric.
 *
 * Layout: teacher tensors stay `[B, N, K]` (the official code transposes to `[N, B, K]`);
 * Sinkhorn normalises over the batch axis 0, which is the same computation.
 *
 * @module
 */
import { tf } from "../engine.ts";

/** `x / max(||x||, eps)` over the last axis. */
export function l2Normalize(x: tf.Tensor, eps: number): tf.Tensor {
  return tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), -1, true)), eps));
}

/**
 * Student head: `x̂ W^T` with `W_k = v_k g_k / (||v_k|| + 1e-8)` (weight norm) and
 * `x̂ = x / max(||x||, 1e-12)`. x `[T, D]`, v `[K, D]`, g `[K, 1]` -> `[T, K]`.
 */
export function l2NormLinear(x: tf.Tensor, v: tf.Tensor, g: tf.Tensor): tf.Tensor {
  const w = tf.mul(tf.div(v, tf.add(tf.sqrt(tf.sum(tf.square(v), -1, true)), 1e-8)), g); // [K, D]
  return tf.matMul(l2Normalize(x, 1e-12), tf.transpose(w));
}

/** Teacher head logits: `l2norm(x) W^T + b` (W not normalised). x `[..., D]` -> `[..., K]`. */
export function clusteringLogits(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null): tf.Tensor {
  const d = x.shape[x.rank - 1]!;
  const k = w.shape[0];
  const xw = tf.matMul(tf.reshape(l2Normalize(x, 1e-7), [-1, d]), tf.transpose(w)); // [B*N, K]
  const y = b ? tf.add(xw, b) : xw;
  return tf.reshape(y, [...x.shape.slice(0, -1), k]);
}

/**
 * Sinkhorn-Knopp (model.py:490-523): `M = exp(M - max_n M + 50)`, then `nIter` times divide
 * by `sum_n + 1e-8` and by `sum_k + 1e-8`. `axisN` is the normalised (batch) axis, `axisK`
 * the prototype axis.
 */
export function sinkhornKnopp(m: tf.Tensor, nIter: number, axisN: number, axisK: number): tf.Tensor {
  return tf.tidy(() => {
    let q = tf.exp(tf.add(tf.sub(m, tf.max(m, axisN, true)), 50));
    for (let i = 0; i < nIter; i++) {
      q = tf.div(q, tf.add(tf.sum(q, axisN, true), 1e-8));
      q = tf.div(q, tf.add(tf.sum(q, axisK, true), 1e-8));
    }
    return q;
  });
}

/**
 * Teacher assignments from logits `[B, N, K]`: Sinkhorn of `logits / targetTemp`, per position
 * over the batch axis (`positionwise_sk=True`), or over all `B*N` tokens at once.
 */
export function clusterAssignments(
  logits: tf.Tensor,
  o: { targetTemp: number; nSkIter: number; positionwiseSk: boolean },
): tf.Tensor {
  return tf.tidy(() => {
    const m = tf.div(logits, o.targetTemp);
    if (o.positionwiseSk) return sinkhornKnopp(m, o.nSkIter, 0, 2);
    const k = logits.shape[2]!;
    return tf.reshape(sinkhornKnopp(tf.reshape(m, [-1, k]), o.nSkIter, 0, 1), logits.shape); // over B*N rows
  });
}

/** Identity whose gradient is zero (torch `.detach()`). */
export const detach: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as (x: tf.Tensor) => tf.Tensor;

/** `mean_rows(-sum_k targets * log_softmax(logits / temp))`; both `[..., K]`. */
export function softCrossEntropy(targets: tf.Tensor, logits: tf.Tensor, temp: number): tf.Scalar {
  const k = logits.shape[logits.rank - 1]!;
  const lsm = tf.logSoftmax(tf.reshape(tf.div(logits, temp), [-1, k]));
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.reshape(targets, [-1, k]), lsm), -1))) as tf.Scalar;
}

/** `mean_rows(-sum_k T log T)` with `0 log 0 = 0`. */
export function meanEntropy(t: tf.Tensor): tf.Scalar {
  const k = t.shape[t.rank - 1]!;
  const flat = tf.reshape(t, [-1, k]);
  const tlogt = tf.where(tf.greater(flat, 0), tf.mul(flat, tf.log(tf.maximum(flat, 1e-38))), tf.zerosLike(flat));
  return tf.neg(tf.mean(tf.sum(tlogt, -1))) as tf.Scalar;
}

export interface ClusteringOut {
  /** Logits `[B, N, K]`. */
  logits: tf.Tensor;
  /** Sinkhorn assignments `[B, N, K]` (no gradient). */
  assignments: tf.Tensor;
  /** Clustering loss (gradient reaches only the head's weight and bias). */
  loss: tf.Scalar;
}

/** `OnlineClustering.forward` on teacher patch features `[B, N, D]` (no gradient into them). */
export function onlineClustering(
  feats: tf.Tensor,
  w: tf.Tensor,
  b: tf.Tensor | null,
  o: { targetTemp: number; predTemp: number; nSkIter: number; positionwiseSk: boolean },
): ClusteringOut {
  const logits = clusteringLogits(feats, w, b); // [B, N, K]
  const assignments = clusterAssignments(detach(logits), o);
  const loss = softCrossEntropy(assignments, logits, o.predTemp);
  return { logits, assignments, loss };
}
