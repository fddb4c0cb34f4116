/**
 * One CAPI training iteration's loss (train_capi.py:71-106, SPEC 1.1), written once against `Ops`:
 * the EMA teacher on full images, the online clustering head and its Sinkhorn targets, the masked
 * student and its predictor, both cross-entropies. Every engine runs this function.
 *
 * Gradients: the teacher backbone is the EMA copy (not trainable), the Sinkhorn input is detached,
 * so `loss_clustering` trains only `teacher_head.*` and `loss_capi` only `student.*`; the two touch
 * disjoint parameters and one sum gives both gradients (the official code steps two optimizers).
 *
 * Per-step inputs (`capiDraws` in method.ts): `patches` `[B, N, 3p^2]`, `visible_indices` `[B*nVis]`,
 * `predict_indices` `[B*nPred]` (absolute over `B*N`), `coords_enc` `[B, R+nVis, 2]`, `coords_dec`
 * `[B, nPred, 2]`, and the drop-path subsets (model.ts `drawDropPath`).
 *
 * Micro-batches: the Sinkhorn targets normalise over the global batch (SPEC 1.5: the official code
 * all-reduces the batch-axis max and sums over its GPUs), so they cannot come from one micro-batch
 * alone. `capiBatchStats` gives the passes that collect them: the shift (max over the batch), then
 * one column sum per Sinkhorn iteration, each recomputing the iterate from the earlier statistics
 * (`Q = M u v`: the column factors `u` are global, the row factors `v` local). The teacher's
 * features are computed once, in the first pass, and kept per micro-batch for the later passes
 * and the loss (`keepTeacher`; `B x N x D` floats for the global batch) or recomputed in each.
 *
 * @module
 */
import type { BatchContext, BatchStatsPass, LossOutput } from "../train_step.ts";
import type { Ops, ParamGetter, Tensor, Trace } from "../ops/ops.ts";
import type { CapiConfig } from "./config.ts";
import {
  clusteringLogits,
  l2NormLinear,
  meanEntropy,
  onlineClustering,
  sinkhornFromStats,
  sinkhornInput,
  type SinkhornStats,
  softCrossEntropy,
} from "./heads.ts";
import { type CapiGeometry, dropPathFrom, fullEncode, studentForward } from "./model.ts";

/** The input names `capiLoss` reads (besides drop path). */
export const CAPI_INPUTS = ["patches", "visible_indices", "predict_indices", "coords_enc", "coords_dec"] as const;

/** The teacher's patch features `[B, N, D]`: the EMA backbone on full images, registers dropped (train_capi.py:99). */
export function teacherFeatures(
  o: Ops,
  get: ParamGetter,
  patches: Tensor,
  c: CapiConfig,
  g: CapiGeometry,
  trace?: Trace,
): Tensor {
  const t = fullEncode(o, get, "ema.backbone.", patches, g, { trace, tracePrefix: "teacher." });
  trace?.("teacher.enc_norm_out", t.out);
  trace?.("teacher.coords_enc", t.coords);
  return o.slice(t.out, [0, c.nRegisters, 0], [patches.shape[0], g.d.nTokens, c.embedDim]);
}

/** Names of the batch statistics and saved tensors of `capiBatchStats`. */
export const CAPI_BATCH = {
  teacherFeatures: "teacher_features",
  shift: "sinkhorn.shift",
  colSum: (i: number) => `sinkhorn.col_sum.${i}`,
};

/** The Sinkhorn statistics of the first `iterations` iterations, from a `BatchContext`. */
function sinkhornStats(batch: BatchContext, iterations: number): SinkhornStats {
  const colSums = Array.from({ length: iterations }, (_, i) => batch.stats[CAPI_BATCH.colSum(i)]);
  return { shift: batch.stats[CAPI_BATCH.shift], colSums };
}

/**
 * The passes over the micro-batches before CAPI's loss: the Sinkhorn shift (`max` over the batch
 * axis), then the column sum of each of the `nSkIter` iterations (`sum`).
 */
export function capiBatchStats(c: CapiConfig, g: CapiGeometry, opts: { keepTeacher: boolean }): BatchStatsPass[] {
  const features = (o: Ops, get: ParamGetter, inputs: Record<string, Tensor>, batch: BatchContext) =>
    batch.saved[CAPI_BATCH.teacherFeatures] ?? teacherFeatures(o, get, inputs.patches, c, g);
  const scaledLogits = (o: Ops, get: ParamGetter, feats: Tensor) =>
    sinkhornInput(o, clusteringLogits(o, feats, get("teacher_head.layer.weight"), headBias(get, c)), c);
  const shift: BatchStatsPass = {
    combine: { [CAPI_BATCH.shift]: "max" },
    compute: (o, get, inputs, batch) => {
      const feats = features(o, get, inputs, batch);
      return {
        partial: { [CAPI_BATCH.shift]: o.max(scaledLogits(o, get, feats), 0, true) },
        save: opts.keepTeacher ? { [CAPI_BATCH.teacherFeatures]: feats } : undefined,
      };
    },
  };
  const colSums = Array.from({ length: c.nSkIter }, (_, i): BatchStatsPass => ({
    combine: { [CAPI_BATCH.colSum(i)]: "sum" },
    compute: (o, get, inputs, batch) => {
      const m = scaledLogits(o, get, features(o, get, inputs, batch));
      const q = sinkhornFromStats(o, m, sinkhornStats(batch, i), m.shape.length - 1);
      return { partial: { [CAPI_BATCH.colSum(i)]: o.sum(q, 0, true) } };
    },
  }));
  return [shift, ...colSums];
}

function headBias(get: ParamGetter, c: CapiConfig): Tensor | null {
  return c.clusteringBias ? get("teacher_head.layer.bias") : null;
}

/**
 * `loss_capi + loss_clustering` of one batch; metrics `loss_capi`, `loss_clustering`, `target_entropy`.
 * With `batch` (a micro-batch of a larger step): the teacher features saved by `capiBatchStats` (or
 * recomputed) and Sinkhorn over the global batch; each loss is still the mean over this micro-batch.
 */
export function capiLoss(
  o: Ops,
  get: ParamGetter,
  inputs: Record<string, Tensor>,
  c: CapiConfig,
  g: CapiGeometry,
  trace?: Trace,
  batch?: BatchContext,
): LossOutput {
  for (const k of CAPI_INPUTS) {
    if (!inputs[k]) throw new Error(`capiLoss: no input '${k}' (draws come from CapiMethod.draw)`);
  }
  const patches = inputs.patches, b = patches.shape[0], n = g.d.nTokens;
  const feats = batch?.saved[CAPI_BATCH.teacherFeatures] ?? teacherFeatures(o, get, patches, c, g, trace); // [B, N, D]
  const stats = batch ? sinkhornStats(batch, c.nSkIter) : undefined;
  const cl = onlineClustering(o, feats, get("teacher_head.layer.weight"), headBias(get, c), c, stats);
  trace?.("teacher.head.logits", cl.logits);
  trace?.("teacher.head.assignments", cl.assignments);
  trace?.("loss.clustering", cl.loss);
  const targets = o.gather(o.reshape(cl.assignments, [b * n, c.numClusters]), inputs.predict_indices); // [B*nPred, K]
  trace?.("teacher.targets", targets);
  const targetEntropy = meanEntropy(o, targets);
  trace?.("metric.target_entropy", targetEntropy);

  const pred = studentForward(
    o,
    get,
    "student.backbone.",
    patches,
    {
      visibleIndices: inputs.visible_indices,
      coordsEnc: inputs.coords_enc,
      coordsDec: inputs.coords_dec,
    },
    g,
    { drop: c.dropPathRate > 0 ? dropPathFrom(inputs, c) : undefined, trace },
  );
  const logits = l2NormLinear(
    o,
    pred,
    get("student.head.last_layer.weight_v"),
    get("student.head.last_layer.weight_g"),
  );
  trace?.("student.head.logits", logits);
  const lossCapi = softCrossEntropy(o, targets, logits, c.studentTemp);
  trace?.("loss.capi", lossCapi);
  return {
    loss: o.add(lossCapi, cl.loss),
    metrics: { loss_capi: lossCapi, loss_clustering: cl.loss, target_entropy: targetEntropy },
  };
}
