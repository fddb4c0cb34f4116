/**
 * CAPI heads and losses (capi:model.py:466-563, train_capi.py:71-106, SPEC 1.5): the student's
 * `L2NormLinear`, the teacher's `OnlineClustering` with positionwise Sinkhorn-Knopp, both
 * cross-entropies and the `target_entropy` metric, written against `Ops`.
 *
 * Layout: teacher tensors stay `[B, N, K]` (the official code transposes to `[N, B, K]`);
 * Sinkhorn normalises over the batch axis 0, which is the same computation.
 *
 * @module
 */
import type { Ops, Tensor } from "../ops/ops.ts";

/** `x / max(||x||, eps)` over the last axis. */
export function l2Normalize(o: Ops, x: Tensor, eps: number): Tensor {
  return o.div(x, o.maximum(o.sqrt(o.sum(o.square(x), -1, true)), eps));
}

/**
 * Student head: `x̂ W^T` with `W_k = v_k g_k / (||v_k|| + 1e-8)` (weight norm) and
 * `x̂ = x / max(||x||, 1e-12)`. x `[T, D]`, v `[K, D]`, g `[K, 1]` -> `[T, K]`.
 */
export function l2NormLinear(o: Ops, x: Tensor, v: Tensor, g: Tensor): Tensor {
  const w = o.mul(o.div(v, o.add(o.sqrt(o.sum(o.square(v), -1, true)), 1e-8)), g); // [K, D]
  return o.matMul(l2Normalize(o, x, 1e-12), w, false, true);
}

/** Teacher head logits: `l2norm(x) W^T + b` (W not normalised). x `[..., D]` -> `[..., K]`. */
export function clusteringLogits(o: Ops, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const d = x.shape[x.shape.length - 1];
  const k = w.shape[0];
  const xw = o.matMul(o.reshape(l2Normalize(o, x, 1e-7), [-1, d]), w, false, true); // [B*N, K]
  const y = b ? o.add(xw, b) : xw;
  return o.reshape(y, [...x.shape.slice(0, -1), k]);
}

/**
 * Sinkhorn-Knopp (model.py:490-523): `M = exp(M - max_n M + 50)`, then `nIter` times divide
 * by `sum_n + 1e-8` and by `sum_k + 1e-8`. `axisN` is the normalised (batch) axis, `axisK`
 * the prototype axis. No gradient flows through it (its input is detached).
 */
export function sinkhornKnopp(o: Ops, m: Tensor, nIter: number, axisN: number, axisK: number): Tensor {
  return o.tidy(() => {
    let q = o.exp(o.add(o.sub(m, o.max(m, axisN, true)), 50));
    for (let i = 0; i < nIter; i++) {
      q = o.div(q, o.add(o.sum(q, axisN, true), 1e-8));
      q = o.div(q, o.add(o.sum(q, axisK, true), 1e-8));
    }
    return q;
  });
}

/**
 * The statistics of the global batch that Sinkhorn-Knopp needs, keepDims: the shift `max_n M` and,
 * for each iteration, the column sum `sum_n Q` before its column normalisation. In multi-GPU
 * training they are all-reduced over the GPUs (SPEC 1.5); here, combined over micro-batches.
 */
export interface SinkhornStats {
  shift: Tensor;
  colSums: Tensor[];
}

/**
 * Sinkhorn-Knopp from the global batch's statistics: `sinkhornKnopp`'s iterate after
 * `stats.colSums.length` iterations for the rows `m` of one micro-batch. The column sums are
 * the global ones; the row sums (over `axisK`) are local, as in the official code. With the
 * statistics of `m` itself this is `sinkhornKnopp`, operation for operation.
 */
export function sinkhornFromStats(o: Ops, m: Tensor, stats: SinkhornStats, axisK: number): Tensor {
  return o.tidy(() => {
    let q = o.exp(o.add(o.sub(m, stats.shift), 50));
    for (const s of stats.colSums) {
      q = o.div(q, o.add(s, 1e-8));
      q = o.div(q, o.add(o.sum(q, axisK, true), 1e-8));
    }
    return q;
  });
}

/** The Sinkhorn input `logits / targetTemp` with the normalised (batch) axis first: `[B, N, K]`, or `[B*N, K]`. */
export function sinkhornInput(o: Ops, logits: Tensor, c: { targetTemp: number; positionwiseSk: boolean }): Tensor {
  const m = o.div(logits, c.targetTemp);
  return c.positionwiseSk ? m : o.reshape(m, [-1, logits.shape[2]]); // over B*N rows
}

/**
 * Teacher assignments from logits `[B, N, K]`: Sinkhorn of `logits / targetTemp`, per position
 * over the batch axis (`positionwise_sk=True`), or over all `B*N` tokens at once. With `stats`,
 * the batch axis is the global batch's (`sinkhornFromStats`), `logits` one micro-batch's.
 */
export function clusterAssignments(
  o: Ops,
  logits: Tensor,
  c: { targetTemp: number; nSkIter: number; positionwiseSk: boolean },
  stats?: SinkhornStats,
): Tensor {
  return o.tidy(() => {
    const m = sinkhornInput(o, logits, c);
    const axisK = m.shape.length - 1;
    const q = stats ? sinkhornFromStats(o, m, stats, axisK) : sinkhornKnopp(o, m, c.nSkIter, 0, axisK);
    return o.reshape(q, logits.shape);
  });
}

/** `mean_rows(-sum_k targets * log_softmax(logits / temp))`; both `[..., K]`. */
export function softCrossEntropy(o: Ops, targets: Tensor, logits: Tensor, temp: number): Tensor {
  const k = logits.shape[logits.shape.length - 1];
  const lsm = o.logSoftmax(o.reshape(o.div(logits, temp), [-1, k]));
  return o.neg(o.mean(o.sum(o.mul(o.reshape(targets, [-1, k]), lsm), -1), 0));
}

/** `mean_rows(-sum_k T log T)` with `0 log 0 = 0`: `T log max(T, 1e-38)` is exactly 0 at T = 0. */
export function meanEntropy(o: Ops, t: Tensor): Tensor {
  const k = t.shape[t.shape.length - 1];
  const flat = o.reshape(t, [-1, k]);
  return o.neg(o.mean(o.sum(o.mul(flat, o.log(o.maximum(flat, 1e-38))), -1), 0));
}

export interface ClusteringOut {
  /** Logits `[B, N, K]`. */
  logits: Tensor;
  /** Sinkhorn assignments `[B, N, K]` (no gradient). */
  assignments: Tensor;
  /** Clustering loss (gradient reaches only the head's weight and bias). */
  loss: Tensor;
}

/**
 * `OnlineClustering.forward` on teacher patch features `[B, N, D]` (the EMA backbone's: no gradient
 * into them); with `stats`, Sinkhorn over the global batch of which `feats` is one micro-batch.
 */
export function onlineClustering(
  o: Ops,
  feats: Tensor,
  w: Tensor,
  b: Tensor | null,
  c: { targetTemp: number; predTemp: number; nSkIter: number; positionwiseSk: boolean },
  stats?: SinkhornStats,
): ClusteringOut {
  const logits = clusteringLogits(o, feats, w, b); // [B, N, K]
  const assignments = clusterAssignments(o, o.stopGradient(logits), c, stats);
  const loss = softCrossEntropy(o, assignments, logits, c.predTemp);
  return { logits, assignments, loss };
}
