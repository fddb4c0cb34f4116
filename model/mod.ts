/**
 * `@mim/model`: the tensor engine, the `Ops` interface and its two implementations (tfjs eager,
 * the recorded graph run by onnxruntime), the ViT building blocks, CAPI, MAE and SimMIM, both
 * training engines, the engine choice of every task and the engine-neutral trainer.
 *
 * @module
 */
export { type Backend, BACKENDS, initBackend, parseBackend, tf } from "./engine.ts";
export { Rng } from "./rng.ts";
export { Fixture, type HostTensor, loadFixture } from "./fixture.ts";
export { ParamStore } from "./params.ts";
export { AdamW, type AdamWOptions, clipGradNorm, type ParamHyper } from "./adamw.ts";
export { maeLr, simmimLr, warmupThenCosine, type WarmupThenCosineOptions } from "./schedules.ts";
export {
  type EncoderForward,
  type EncoderOutputs,
  initialValues,
  METHOD_NAMES,
  type MethodName,
  type MimMethod,
} from "./method.ts";
export type { EncoderFeatures, EncoderInfo, VisionEncoder } from "./encoder.ts";
export type { Ops, ParamGetter, Tensor, Trace } from "./ops/ops.ts";
export { TfOps } from "./ops/tf_ops.ts";
export type * from "./train_step.ts";
export type * from "./train_engine.ts";
export { createTfTrainEngine, tfEncoder, tfEngineFactory, TfTrainEngine } from "./tf_train_engine.ts";
export { EngineEncoder, evalOnlySpec } from "./engine_encoder.ts";
export { GraphOps } from "./ops/graph_ops.ts";
export { gradients } from "./ops/autodiff.ts";
export { lowerToOnnx } from "./ops/onnx_lower.ts";
export { OrtProgram } from "./ops/ort_program.ts";
export { buildTrainStep } from "./ops/step_graph.ts";
export { OrtTrainEngine, type OrtTrainEngineOptions } from "./ops/ort_train_engine.ts";
export {
  describeChoice,
  ENGINE_NAMES,
  type EngineChoice,
  type EngineName,
  ORT_EPS,
  type OrtEp,
  parseEngineChoice,
  type StartedEngine,
  startEngine,
} from "./engine_choice.ts";
export { PARITY_TOLERANCE, ParityReport } from "./parity.ts";
export * from "./nn/mod.ts";
export { createMethod, type CreateMethodOptions, methodPreset } from "./methods.ts";
export {
  type BatchSource,
  readCheckpoint,
  saveCheckpoint,
  train,
  type TrainOptions,
  type TrainResult,
} from "./trainer.ts";
export {
  createSafetensorsWriter,
  decodeSafetensors,
  encodeSafetensors,
  openSafetensors,
  readSafetensors,
  writeSafetensors,
} from "./safetensors.ts";
export { missingTensorError, openTensorSource, type TensorEntry, type TensorSource } from "./tensor_source.ts";
export { openTorchCheckpoint, TorchCheckpoint } from "./torch/pth.ts";
export {
  checkParams,
  describeLoad,
  type ExpectedParam,
  type Layout,
  loadParams,
  type LoadReport,
} from "./state_dict.ts";
export { loadReleasedEncoder, releasedLayout, type ReleasedSpec } from "./released_encoder.ts";
export { sha256File, sha256Hex } from "./sha256.ts";
export { CAPI_PRESETS, CapiConfig, capiConfig } from "./capi/config.ts";
export { CapiEncoderForward, CapiMethod } from "./capi/method.ts";
export { MAE_PRESETS, MaeConfig, maeConfig } from "./mae/config.ts";
export { MaeEncoderForward, MaeMethod } from "./mae/method.ts";
export { SIMMIM_PRESETS, SimmimConfig, simmimConfig } from "./simmim/config.ts";
export { SimmimEncoderForward, SimmimMethod } from "./simmim/method.ts";
export { OnnxAdapterConfig, OrtEncoder } from "./onnx/ort_encoder.ts";
