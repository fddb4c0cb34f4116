/**
 * The `MimMethod` contract: what the method-agnostic trainer needs from CAPI, MAE or SimMIM.
 *
 * A method owns its parameters (official state-dict names), draws its per-batch randomness
 * (masks) on the host from the trainer's `Rng`, computes a scalar loss synchronously, and
 * describes its optimizers. The trainer differentiates the loss with respect to every
 * optimizer's parameters, steps the optimizers in order, then calls `afterStep` (CAPI's EMA).
 *
 * @module
 */
import type { tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";
import type { ParamHyper } from "./adamw.ts";
import type { ParamStore } from "./params.ts";
import type { Rng } from "./rng.ts";
import type { VisionEncoder } from "./encoder.ts";

export const METHOD_NAMES = ["capi", "mae", "simmim"] as const;
export type MethodName = typeof METHOD_NAMES[number];

/** One optimizer of a method (CAPI has two: the student's and the clustering head's). */
export interface OptimizerSpec {
  /** Short id, used as a checkpoint prefix: `student`, `clustering`, `main`. */
  id: string;
  /** Names (in the method's `ParamStore`) this optimizer updates. */
  params: string[];
  betas: [number, number];
  eps: number;
  /** Clip the global gradient norm of `params` to this value before the step (SimMIM: 5). */
  clipGradNorm?: number;
  /** Learning rate and weight decay of parameter `name` at iteration `it` (0-based). */
  hyper(it: number, name: string): ParamHyper;
}

/** A batch after the method drew its masks: opaque to the trainer. */
export interface PreparedBatch {
  images: HostTensor<Float32Array>;
  /**
   * Release tensors `prepare` computed outside the gradient tape (CAPI: teacher targets);
   * the trainer calls it after the step.
   */
  dispose?(): void;
}

/** A loss and the scalars worth logging, all owned by the caller. */
export interface LossOutput {
  loss: tf.Scalar;
  /** Extra scalars to log (e.g. CAPI `target_entropy`, `loss_clustering`). */
  metrics: Record<string, tf.Scalar>;
}

export interface MimMethod {
  readonly name: MethodName;
  /** Every tensor of the method, including non-trainable state such as CAPI's EMA. */
  readonly params: ParamStore;
  readonly optimizers: OptimizerSpec[];
  /** Draw this batch's masks (and any other per-batch randomness) from `rng`. */
  prepare(images: HostTensor<Float32Array>, rng: Rng): PreparedBatch;
  /**
   * Training loss on a prepared batch; synchronous so that the trainer can wrap it in
   * `tf.variableGrads`. `rng` feeds stochastic depth where the method has it.
   */
  loss(batch: PreparedBatch, rng: Rng): LossOutput;
  /** Called after every optimizer stepped at iteration `it` (CAPI: EMA update). */
  afterStep?(it: number): void;
  /** Schedule values worth logging at iteration `it` (e.g. `lr`, CAPI `momentum`); host numbers. */
  logScalars?(it: number): Record<string, number>;
  /** The frozen encoder for evaluation, sharing this method's current weights. */
  encoder(): VisionEncoder;
  dispose(): void;
}
