/**
 * Pieces shared by the suite presets: the subject list every suite compares (three methods,
 * each method's random-init floor, raw pixels) and the probe protocols.
 *
 * @module
 */
import type { DataSpecInput as DataSpec, ProbeSpecInput as ProbeSpec, SuiteInput } from "../suite.ts";

/** capi, mae, simmim, their encoders at initialisation, and raw pixels. */
export const ALL_SUBJECTS: SuiteInput["subjects"] = [
  { kind: "pretrained", method: "capi" },
  { kind: "pretrained", method: "mae" },
  { kind: "pretrained", method: "simmim" },
  { kind: "random_init", method: "capi" },
  { kind: "random_init", method: "mae" },
  { kind: "random_init", method: "simmim" },
  { kind: "raw_pixels" },
];

/** The classification probes of the CAPI paper (SPEC 1.10), top-1 as the main score. */
export function classificationProbes(
  train: DataSpec,
  val: DataSpec,
  config: Partial<Record<"knn" | "linear" | "attentive", Record<string, unknown>>> = {},
): ProbeSpec[] {
  return [
    { probe: "knn", train, eval: val, mainMetric: "top1", config: config.knn ?? {} },
    { probe: "linear", train, eval: val, mainMetric: "top1", config: config.linear ?? {} },
    { probe: "attentive", train, eval: val, mainMetric: "top1", config: config.attentive ?? {} },
  ];
}

/** The segmentation probes (kNN and logistic regression on patch features), mIoU as the main score. */
export function segmentationProbes(train: DataSpec, val: DataSpec): ProbeSpec[] {
  return [
    { probe: "seg_knn", train, eval: val, mainMetric: "miou", config: {} },
    { probe: "seg_logreg", train, eval: val, mainMetric: "miou", config: {} },
  ];
}

/** An ImageNet-layout folder's split as a data spec. */
export function imagenet(root: string, split: "train" | "val", name = "imagenet-1k"): DataSpec {
  return { kind: "imagenet", root, split, name };
}

/** An ADE20K-layout folder's split as a data spec. */
export function ade20k(root: string, split: "train" | "val"): DataSpec {
  return { kind: "ade20k", root, split, name: "ade20k" };
}

/** Where real datasets are looked for unless `IMAGENET_ROOT` / `ADE20K_ROOT` say otherwise. */
export const IMAGENET_ROOT = Deno.env.get("IMAGENET_ROOT") ?? "data/imagenet";
export const ADE20K_ROOT = Deno.env.get("ADE20K_ROOT") ?? "data/ADEChallengeData2016";
