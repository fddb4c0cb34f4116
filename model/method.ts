/**
 * The `MimMethod` contract: what the engine-neutral trainer needs from CAPI, MAE or SimMIM.
 *
 * A method is a description, not a holder of tensors. It gives
 * - `stepSpec()`: its parameters (official state-dict names, initial values from its seed,
 *   trainability), optimizers with their param groups, EMA pairs and its loss written once
 *   against `Ops` (model/train_step.ts), which any `TrainEngine` runs;
 * - `draw(images, rng)`: every random draw and host array of one iteration (masks, indices,
 *   coordinates, drop-path subsets, host patchify), from the trainer's seeded `Rng`;
 *   `drawMicroBatches(images, rng, batchPerDevice)`: the same iteration as micro-batches;
 * - `hyper(it)`: the schedules' values at iteration `it`;
 * - `encode(o, get, images)`: the evaluation forward (`EncoderForward`), which `EngineEncoder`
 *   (model/engine_encoder.ts) turns into a `VisionEncoder` on any engine.
 *
 * @module
 */
import type { EncoderInfo } from "./encoder.ts";
import type { HostTensor } from "./fixture.ts";
import type { Ops, ParamGetter, Tensor } from "./ops/ops.ts";
import type { Rng } from "./rng.ts";
import type { MicroBatch, StepDraws, StepHyper, TrainStepSpec } from "./train_step.ts";

export const METHOD_NAMES = ["capi", "mae", "simmim"] as const;
export type MethodName = typeof METHOD_NAMES[number];

/** One evaluation forward, as tensors of the engine that ran it (`VisionEncoder`'s `EncoderFeatures`). */
export interface EncoderOutputs {
  /** `[B, D]`, or null where the method has no global representation (SimMIM). */
  global: Tensor | null;
  /** Patch tokens after the final norm, `[B, Gh, Gw, D]`. */
  patches: Tensor;
  /** `[B, R, D]`, or null without registers. */
  registers: Tensor | null;
}

/** A frozen encoder written against `Ops`: what `EngineEncoder` evaluates on any engine. */
export interface EncoderForward {
  readonly encoderInfo: EncoderInfo;
  /**
   * Where the evaluated weights sit in the parameter names (`encode` reads the backbone under it):
   * CAPI `ema.backbone.` (the EMA teacher, as in the released checkpoints), MAE and SimMIM `""`.
   */
  readonly encoderPrefix: string;
  /** `images`: `[B, 3, H, W]` ImageNet-normalised (patchified on the host, fed through `o.input`). */
  encode(o: Ops, get: ParamGetter, images: HostTensor<Float32Array>): EncoderOutputs;
}

export interface MimMethod extends EncoderForward {
  readonly name: MethodName;
  /** Parameters with their initial values (from the method's seed), optimizers, EMA and loss. */
  stepSpec(): TrainStepSpec;
  /** Everything iteration-specific the loss consumes, drawn from `rng` (the trainer's `Rng.from(seed, "train", it)`). */
  draw(images: HostTensor<Float32Array>, rng: Rng): StepDraws;
  /**
   * The draws of one iteration as micro-batches of `batchPerDevice` images (`microBatchRanges`),
   * like the official code's per-GPU shares: per-sample draws (masks, noise, SimMIM's drop path)
   * come from the same streams as `draw`, drawn for the whole batch and split, indices re-based
   * to each micro-batch; per-device draws (CAPI's drop-path subsets, `randperm(B_m)[:n_keep]` on
   * each GPU) are drawn per micro-batch, one after another from `draw`'s stream. So one
   * micro-batch (`batchPerDevice` >= the batch) is exactly `draw`.
   */
  drawMicroBatches(images: HostTensor<Float32Array>, rng: Rng, batchPerDevice: number): MicroBatch[];
  /** Learning rates, weight decays and EMA momentum of iteration `it` (0-based). */
  hyper(it: number): StepHyper;
  /** Schedule values worth logging at iteration `it` (e.g. `lr`, CAPI `momentum`). */
  logScalars(it: number): Record<string, number>;
}

/** The initial parameter values of a step spec, by name (random-init evaluation, ONNX export). */
export function initialValues(spec: TrainStepSpec): Map<string, HostTensor<Float32Array>> {
  return new Map([...spec.params].map(([n, p]) => [n, p.value]));
}
