/**
 * `TrainEngine`: what runs a `TrainStepSpec` (model/train_step.ts) iteration after iteration.
 *
 * The trainer (model/trainer.ts), the parity runners and `deno task speed` talk to this interface
 * only, so `--engine tfjs` and `--engine ort` share everything but the arithmetic. An engine owns
 * the parameters and the optimizer state between steps (tfjs variables; onnxruntime tensors,
 * on the device for a GPU execution provider) and hands them to the host only when asked
 * (checkpoints, parity), never every step.
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";
import type { Ops, Tensor } from "./ops/ops.ts";
import type { MicroBatch, StepDraws, StepHyper, TrainStepSpec } from "./train_step.ts";

/** What actually ran, for records: a fallback is recorded as the fallback. */
export interface EngineDescription {
  engine: "tfjs" | "ort";
  /** tfjs backend (`blas`, `wasm`, ...) or onnxruntime execution provider (`cpu`, `webgpu`, `cuda`). */
  device: string;
  /** Set when `device` is not what was asked for (e.g. `blas` asked, `wasm` ran: no OpenBLAS). */
  fallbackFrom?: string;
  /** Versions of the numeric libraries that ran (`@tensorflow/tfjs`, `onnxruntime-node`, BLAS). */
  versions: Record<string, string>;
}

/** AdamW state of one optimizer, torch names: `exp_avg.<param>`, `exp_avg_sq.<param>`. */
export interface OptimizerState {
  /** Steps taken (torch `state['step']`). */
  step: number;
  tensors: Map<string, HostTensor<Float32Array>>;
}

/** Everything a checkpoint holds of an engine. */
export interface EngineState {
  params: Map<string, HostTensor<Float32Array>>;
  optimizers: Record<string, OptimizerState>;
}

export interface StepOptions {
  /** Return the loss's named intermediates (`Trace` calls) on the host: parity only. */
  trace?: boolean;
  /** Return the gradient of every trainable parameter on the host: parity only. */
  grads?: boolean;
}

/** One iteration's results. Scalars may live on the device until `read` is called. */
export interface StepResult {
  /**
   * `loss` and the method's metrics, read back on demand (at the log cadence). Of an accumulated
   * step: the sample-weighted mean of the micro-batches' values (each is a mean over its samples).
   */
  read(): Promise<Record<string, number>>;
  /** With `StepOptions.trace`: intermediates by trace name (a one-shot step). */
  traced?: Map<string, HostTensor<Float32Array>>;
  /** With `StepOptions.trace` on an accumulated step: each micro-batch's intermediates, in order. */
  tracedMicro?: Map<string, HostTensor<Float32Array>>[];
  /** With `StepOptions.grads`: gradients by parameter name (before clipping; accumulated over micro-batches). */
  grads?: Map<string, HostTensor<Float32Array>>;
  /**
   * The most bytes of tensors live at once during the step, by the engine's own accounting
   * (tfjs: its live-tensor byte count; ort: the arrays the engine holds between program runs).
   */
  peakTensorBytes?: number;
  /** Release device-side handles this result holds. */
  dispose(): void;
}

export interface TrainEngine {
  readonly description: EngineDescription;
  /** One iteration: loss, gradients, every optimizer, the EMA. */
  step(draws: StepDraws, hyper: StepHyper, opts?: StepOptions): Promise<StepResult>;
  /**
   * One iteration over micro-batches, with the result of one large batch: the spec's `batchStats`
   * passes over every micro-batch, then each micro-batch's loss and gradients, accumulated as
   * `sum_m (samples_m / total) grad_m`, then every optimizer (clipping on the accumulated gradient)
   * and the EMA once. One micro-batch is exactly `step`.
   */
  stepMicro(micro: MicroBatch[], hyper: StepHyper, opts?: StepOptions): Promise<StepResult>;
  /** Parameters and optimizer state on the host. */
  snapshot(): Promise<EngineState>;
  /** Replace parameters (and optimizer state, when given) from the host; shapes must match. */
  restore(state: Partial<EngineState>): Promise<void>;
  /**
   * Run a computation on the current parameters without gradients (evaluation forwards, unit
   * checks): `fn` builds named outputs from `Ops` (its per-call data through `o.input`); they come
   * back on the host. A graph engine compiles `fn` once per `key` and input shapes and reuses it.
   */
  evaluate(
    key: string,
    fn: (o: Ops, get: (name: string) => Tensor) => Record<string, Tensor>,
  ): Promise<Record<string, HostTensor<Float32Array>>>;
  dispose(): void;
}

/**
 * Builds an engine for a method's step spec (added with the tfjs engine: the trainer, parity and
 * speed take the engine as a parameter, and an ORT engine compiles asynchronously).
 */
export type EngineFactory = (spec: TrainStepSpec) => Promise<TrainEngine>;
