/**
 * `@mim/model`: the tensor engine, the ViT building blocks, CAPI, MAE and SimMIM,
 * their optimisers and the method-agnostic trainer.
 *
 * @module
 */
export { type Backend, BACKENDS, initBackend, parseBackend, tf } from "./engine.ts";
export { Rng } from "./rng.ts";
export { Fixture, type HostTensor, loadFixture } from "./fixture.ts";
export { ParamStore } from "./params.ts";
export { AdamW, type AdamWOptions, clipGradNorm, type ParamHyper } from "./adamw.ts";
export { maeLr, simmimLr, warmupThenCosine, type WarmupThenCosineOptions } from "./schedules.ts";
export { METHOD_NAMES, type MethodName, type MimMethod, type OptimizerSpec } from "./method.ts";
export type { EncoderFeatures, EncoderInfo, VisionEncoder } from "./encoder.ts";
export { PARITY_TOLERANCE, ParityReport } from "./parity.ts";
export * from "./nn/mod.ts";
