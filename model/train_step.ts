/**
 * `TrainStepSpec`: one training iteration of a method, described once for every engine.
 *
 * A method gives its parameters (official names, initial values, trainability), its optimizers
 * (AdamW with parameter groups, torch semantics), its EMA pairs, and a loss written against
 * `Ops` (model/ops/ops.ts). An engine runs the iteration:
 *
 * - tfjs (`TfTrainEngine`): the loss on `TfOps` under tfjs's tape, then AdamW and the EMA eagerly;
 * - ort (`OrtTrainEngine`): the loss recorded by `GraphOps`, differentiated by model/ops/autodiff.ts,
 *   AdamW and the EMA appended, all in one ONNX graph run by onnxruntime.
 *
 * The iteration, for every engine (capi:train_capi.py:271-314 for CAPI):
 *   1. loss and gradients of `loss` with respect to every trainable parameter;
 *   2. each optimizer in order: optional global-norm clipping of its parameters' gradients, then
 *      AdamW on each group (`p *= 1 - lr*wd`; `m = b1 m + (1-b1) g`; `v = b2 v + (1-b2) g^2`;
 *      `p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`);
 *   3. the EMA from the post-step parameters: `ema = m*ema + (1-m)*p`.
 *
 * Per-step host values (every random draw, index and coordinate array the loss consumes) arrive
 * as `StepDraws`, named host tensors; schedule values as `StepHyper`. Both are computed on the
 * host from the suite's seeded `Rng` and schedules, so a fixture can supply its recorded ones.
 *
 * Micro-batches (`batchPerDevice` below the global batch, as the official code's per-GPU shares):
 * the step's images arrive as several `MicroBatch`es. Each micro-batch's loss is the mean over
 * its own samples, exactly what one GPU of the official code computes, and the engine accumulates
 * `(B_m / B) * grad_m` before step 2, which is the gradient data-parallel training averages. Where
 * a loss couples the samples of the global batch (CAPI's Sinkhorn normalises over it), the spec
 * declares `batchStats`: ordered passes over every micro-batch whose partial statistics are
 * combined (`sum`, `max`: the official all-reduce) and handed to later passes and to the loss.
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";
import type { Ops, ParamGetter, Tensor, Trace } from "./ops/ops.ts";

/** Named host tensors one iteration consumes; each becomes `o.input(name, value)`. */
export type StepDraws = Record<string, HostTensor>;

/** A tensor of the method: its initial value and whether an optimizer trains it. */
export interface ParamSpec {
  value: HostTensor<Float32Array>;
  trainable: boolean;
}

/** Parameters that share lr and weight decay at every iteration (a torch param group). */
export interface ParamGroupSpec {
  /** Short name for logs and graph inputs, e.g. `patch_embed`, `no_decay`. */
  id: string;
  params: string[];
}

/** One AdamW optimizer (CAPI has two: the student's and the clustering head's). */
export interface OptimizerSpec {
  /** Checkpoint prefix: `student`, `clustering`, `main`. */
  id: string;
  groups: ParamGroupSpec[];
  betas: [number, number];
  eps: number;
  /** Clip the global gradient norm of this optimizer's parameters to this value first (SimMIM: 5). */
  clipGradNorm?: number;
}

/** `ema = m*ema + (1-m)*source` after the optimizers; pairs are `[ema name, source name]`. */
export interface EmaSpec {
  pairs: [string, string][];
}

export interface LossOutput {
  /** The scalar whose gradient trains every optimizer's parameters. */
  loss: Tensor;
  /** Scalars worth logging (CAPI `loss_capi`, `loss_clustering`, `target_entropy`). */
  metrics: Record<string, Tensor>;
}

/** One micro-batch of a step: its draws and how many of the step's images it holds. */
export interface MicroBatch {
  draws: StepDraws;
  /** Images in this micro-batch: its gradient enters the step with weight `samples / total`. */
  samples: number;
}

/** How the partial values of one statistic combine over the micro-batches (the official all-reduce). */
export type StatCombine = "sum" | "max";

/** What a statistics pass or the loss of one micro-batch sees of the global batch. */
export interface BatchContext {
  /** Every statistic of the earlier passes, combined over all micro-batches of the step. */
  stats: Record<string, Tensor>;
  /** What earlier passes saved for this micro-batch (no gradient flows into them). */
  saved: Record<string, Tensor>;
}

/** One pass over every micro-batch before the loss, computing statistics of the global batch. */
export interface BatchStatsPass {
  /** The statistics this pass produces, each with how micro-batches' partial values combine. */
  combine: Record<string, StatCombine>;
  /**
   * The partial statistics of one micro-batch (`partial`, one per `combine` key) and tensors to keep
   * for this micro-batch's later passes and loss (`save`: e.g. features that are costly to recompute).
   * Runs without gradients.
   */
  compute(
    o: Ops,
    get: ParamGetter,
    inputs: Record<string, Tensor>,
    batch: BatchContext,
  ): { partial: Record<string, Tensor>; save?: Record<string, Tensor> };
}

/** What an engine needs to run one iteration of a method. */
export interface TrainStepSpec {
  params: Map<string, ParamSpec>;
  optimizers: OptimizerSpec[];
  ema: EmaSpec | null;
  /**
   * The loss of one batch, written once for every engine. `inputs` holds `o.input` of each draw.
   * Without `batch` the inputs are the whole batch (one micro-batch: everything is computed here);
   * with `batch` they are one micro-batch and `batch` holds the statistics of `batchStats`.
   */
  loss(o: Ops, get: ParamGetter, inputs: Record<string, Tensor>, trace?: Trace, batch?: BatchContext): LossOutput;
  /**
   * Passes that must see every micro-batch before any loss can be computed (CAPI: the Sinkhorn
   * shift and column sums over the global batch). Absent: each micro-batch's loss is its own.
   */
  batchStats?: BatchStatsPass[];
}

/** Schedule values of one iteration, computed on the host. */
export interface StepHyper {
  /** Per optimizer id: lr and weight decay of each group, by group id. */
  groups: Record<string, Record<string, { lr: number; weightDecay: number }>>;
  /** EMA momentum of this iteration (methods with an EMA). */
  emaMomentum?: number;
}

/**
 * The per-group scalars AdamW applies, as torch computes them in float64 on the host before
 * the float32 update: `decay = 1 - lr*wd`, `stepSize = lr / (1 - b1^t)`, `bc2Sqrt = sqrt(1 - b2^t)`.
 * `t` is the optimizer's 1-based step count after this step.
 */
export function adamwScalars(
  lr: number,
  weightDecay: number,
  betas: [number, number],
  t: number,
): { decay: number; stepSize: number; bc2Sqrt: number } {
  return {
    decay: 1 - lr * weightDecay,
    stepSize: lr / (1 - betas[0] ** t),
    bc2Sqrt: Math.sqrt(1 - betas[1] ** t),
  };
}

/**
 * Check what pass `index` of `batchStats` returned: exactly one partial per `combine` entry, no
 * statistic made and nothing saved twice (`stats`, `saved`: names from earlier passes).
 */
export function checkStatsPass(
  index: number,
  pass: BatchStatsPass,
  out: { partial: Record<string, unknown>; save?: Record<string, unknown> },
  earlier: { stats: ReadonlySet<string>; saved: ReadonlySet<string> },
): void {
  const where = `batchStats[${index}]`;
  for (const name of Object.keys(pass.combine)) {
    if (!out.partial[name]) {
      throw new Error(`${where}: combine names '${name}', but compute returned no partial '${name}'`);
    }
    if (earlier.stats.has(name)) throw new Error(`${where}: statistic '${name}' is already made by an earlier pass`);
  }
  const extra = Object.keys(out.partial).find((n) => !(n in pass.combine));
  if (extra) throw new Error(`${where}: partial '${extra}' has no entry in combine (sum or max?)`);
  const again = Object.keys(out.save ?? {}).find((n) => earlier.saved.has(n));
  if (again) throw new Error(`${where}: '${again}' is already saved by an earlier pass`);
}
