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
 * @module
 */
import type { LossOutput } from "../train_step.ts";
import type { Ops, ParamGetter, Tensor, Trace } from "../ops/ops.ts";
import type { CapiConfig } from "./config.ts";
import { l2NormLinear, meanEntropy, onlineClustering, softCrossEntropy } from "./heads.ts";
import { type CapiGeometry, dropPathFrom, fullEncode, studentForward } from "./model.ts";

/** The input names `capiLoss` reads (besides drop path). */
export const CAPI_INPUTS = ["patches", "visible_indices", "predict_indices", "coords_enc", "coords_dec"] as const;

/** `loss_capi + loss_clustering` of one batch; metrics `loss_capi`, `loss_clustering`, `target_entropy`. */
export function capiLoss(
  o: Ops,
  get: ParamGetter,
  inputs: Record<string, Tensor>,
  c: CapiConfig,
  g: CapiGeometry,
  trace?: Trace,
): LossOutput {
  for (const k of CAPI_INPUTS) {
    if (!inputs[k]) throw new Error(`capiLoss: no input '${k}' (draws come from CapiMethod.draw)`);
  }
  const patches = inputs.patches, b = patches.shape[0], n = g.d.nTokens;
  // Teacher = EMA backbone on the full image, registers dropped (train_capi.py:99).
  const t = fullEncode(o, get, "ema.backbone.", patches, g, { trace, tracePrefix: "teacher." });
  trace?.("teacher.enc_norm_out", t.out);
  trace?.("teacher.coords_enc", t.coords);
  const feats = o.slice(t.out, [0, c.nRegisters, 0], [b, n, c.embedDim]); // [B, N, D]
  const bias = c.clusteringBias ? get("teacher_head.layer.bias") : null;
  const cl = onlineClustering(o, feats, get("teacher_head.layer.weight"), bias, c);
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
