/**
 * Frozen-encoder evaluation (SPEC 1.10): probes, metrics, feature extraction.
 *
 * Reading order: `metrics.ts` (top-1, sklearn macro-Jaccard mIoU) -> `probe_heads.ts`
 * (grid-stacked linear / attentive heads) -> `grid_train.ts` (joint lr x wd training) ->
 * `class_probe.ts`, `knn_probe.ts` -> `seg_data.ts`, `seg_knn.ts`, `seg_logreg.ts` ->
 * `features.ts`, `feature_sources.ts`, `dataset_source.ts` -> `probes.ts` (registry) ->
 * `checkpoint_encoder.ts` (tfjs or ONNX encoders from checkpoints). CLI: `bench/eval.ts`.
 *
 * @module
 */
export { argmaxRows, IGNORE_LABELS, SegMetricAccumulator, type SegScores, segScores, top1 } from "./metrics.ts";
export {
  attnGridFromTorch,
  attnGridLogits,
  attnPoolHeads,
  initAttnGrid,
  initLinearGrid,
  linearGridFromTorch,
  linearGridLogits,
} from "./probe_heads.ts";
export { runProbeParity } from "./probe_parity.ts";
export { evalGrid, probeSchedule, trainGrid } from "./grid_train.ts";
export {
  AttentiveProbeConfig,
  ClassProbeConfig,
  type ClassProbeResult,
  type LabelledFeatures,
  runClassProbe,
} from "./class_probe.ts";
export { knnPredict, KnnProbeConfig, type KnnProbeResult, runKnnProbe, weightedVote } from "./knn_probe.ts";
export { type Patches, type SegFeatures, StandardScaler, toPatches } from "./seg_data.ts";
export { runSegKnn, SegKnnConfig, type SegProbeResult } from "./seg_knn.ts";
export { fitLogreg, predictLogreg, runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";
export { holdoutSplit } from "./splits.ts";
export {
  type EvalImageSource,
  type ExtractedFeatures,
  extractFeatures,
  type ExtractOptions,
  type SourceBatch,
} from "./features.ts";
export { type EvalMethod, FEATURE_SOURCES, type FeatureSource, featureVectors, sourcesFor } from "./feature_sources.ts";
export { datasetSource } from "./dataset_source.ts";
export {
  isSegmentation,
  needsPatches,
  parseProbe,
  PROBE_CONFIGS,
  type ProbeName,
  type ProbeOutput,
  PROBES,
  runProbe,
} from "./probes.ts";
export { type OpenedEncoder, openEncoder, type OpenEncoderOptions, RELEASED_FORMAT } from "./checkpoint_encoder.ts";
export { MicroBatchEncoder } from "./micro_batch_encoder.ts";
