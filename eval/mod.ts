/**
 * Frozen-encoder evaluation (SPEC 1.10): probes, metrics, feature extraction and storage.
 *
 * Reading order: `metrics.ts` (top-1, sklearn macro-Jaccard mIoU) -> `probe_heads.ts`
 * (grid-stacked linear / attentive heads) -> `grid_train.ts` (joint lr x wd training) ->
 * `class_probe.ts` with its inputs `class_data.ts` (extracted features) and `class_online.ts`
 * (images through the encoder) -> `topk.ts`, `knn_probe.ts` -> `seg_data.ts`, `seg_knn.ts`,
 * `labelled_patches.ts`, `lbfgs.ts`, `logreg_objective.ts`, `seg_logreg.ts` -> `feature_table.ts`, `feature_store.ts`, `features.ts`,
 * `feature_sources.ts`, `dataset_source.ts`, `splits.ts` -> `protocols.ts`, `probes.ts`
 * (registry) -> `checkpoint_encoder.ts` (tfjs or ONNX encoders from checkpoints). CLI: `bench/eval.ts`.
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
  type ClassData,
  ClassProbeConfig,
  type ClassProbeResult,
  runClassProbe,
} from "./class_probe.ts";
export { cachedClassData } from "./class_data.ts";
export { onlineClassData } from "./class_online.ts";
export { knnPredict, KnnProbeConfig, type KnnProbeResult, runKnnProbe, weightedVote } from "./knn_probe.ts";
export { type Patches, type SegFeatures, StandardScaler, toPatches } from "./seg_data.ts";
export { runSegKnn, SegKnnConfig, type SegProbeResult } from "./seg_knn.ts";
export { lbfgs, type LbfgsOptions, type LbfgsResult, type LbfgsStatus, minimize } from "./lbfgs.ts";
export { fitLogregGrid, predictLogreg, runSegLogreg, SegLogregConfig } from "./seg_logreg.ts";
export { holdoutSplit, stratifiedSubset } from "./splits.ts";
export { type FeatureDims, type FeatureTable, MemoryFeatureTable } from "./feature_table.ts";
export { DiskFeatureTable, FeatureStoreWriter, openFeatureStore } from "./feature_store.ts";
export { type EvalImageSource, extractFeatures, type ExtractOptions, type SourceBatch } from "./features.ts";
export { type EvalMethod, FEATURE_SOURCES, type FeatureSource, sourcesFor } from "./feature_sources.ts";
export { datasetSource, subsetDataset } from "./dataset_source.ts";
export { EVAL_PROTOCOLS, EvalProtocol, PAPER_SETTINGS, parseProtocol } from "./protocols.ts";
export {
  isSegmentation,
  parseProbe,
  PROBE_CONFIGS,
  probeImageSize,
  probeInput,
  type ProbeName,
  type ProbeOutput,
  PROBES,
  type ProbeStatus,
  resolveProbeConfig,
  runProbe,
} from "./probes.ts";
export { type OpenedEncoder, openEncoder, type OpenEncoderOptions, RELEASED_FORMAT } from "./checkpoint_encoder.ts";
export { MicroBatchEncoder } from "./micro_batch_encoder.ts";
