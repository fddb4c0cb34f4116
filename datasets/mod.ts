/**
 * Datasets for the benchmark: ImageNet and ADE20K on real files, the embedded synthetic
 * default, torchvision-exact seeded transforms and a batch loader.
 *
 * Reading order: `dataset.ts` (the `ImageDataset` contract) -> `data_spec.ts` (`KIND:ROOT`
 * -> dataset) -> `transforms.ts` (+ `resample.ts`, Pillow-exact) -> `loader.ts` (batches)
 * -> `imagenet.ts`, `ade20k.ts`, `synthetic.ts` (adapters) -> `check.ts`, `strict_dataset.ts` (what every
 * reader applies: problems are errors unless `--allow-missing`), `data_cli.ts`
 * (`deno task data check`). Decoding is `npm:sharp`, so run with `--allow-ffi` (or `-A`).
 *
 * @example Train batches from the synthetic default (generated on first use), eval batches
 * in dataset order, and segmentation batches with label maps.
 * ```ts
 * import { DataLoader, openDataset, SyntheticConfig, ensureSynthetic } from "./mod.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * // A tiny synthetic copy in a temp folder; real runs use "synthetic" or "imagenet:/data/in1k".
 * const root = await ensureSynthetic({
 *   root: `${await Deno.makeTempDir()}/synthetic`,
 *   config: { trainPerClass: 2, valPerClass: 1, segTrain: 2, segVal: 2 },
 * });
 * const train = await openDataset(`synthetic:${root}`, "train");
 * const loader = new DataLoader(train, {
 *   batchSize: 8,
 *   transform: { kind: "train", size: 32, scale: [0.6, 1], ratio: [3 / 4, 4 / 3], hflip: 0.5 },
 *   seed: 0,
 *   dropLast: true,
 *   shard: { index: 0, count: 1 },
 * });
 * for await (const batch of loader.epoch(0)) {
 *   deepStrictEqual(batch.images.shape, [8, 3, 32, 32]); // float32 CHW, ImageNet-normalised
 *   deepStrictEqual(batch.labels.length, 8); // int32 class indices, batch.indices = dataset indices
 * }
 * const seg = await openDataset(`synthetic:${root}`, "val", { task: "segmentation" });
 * const segLoader = new DataLoader(seg, { batchSize: 2, transform: { kind: "segmentation", size: 32 }, seed: 0, shuffle: false });
 * for await (const batch of segLoader.epoch(0)) {
 *   deepStrictEqual(batch.labelMaps?.shape, [2, 32, 32]); // uint8; seg.ignoreLabels = [0, 255]
 * }
 * deepStrictEqual(SyntheticConfig.parse({}).trainPerClass, 200);
 * await Deno.remove(root.replace(/\/synthetic$/, ""), { recursive: true });
 * ```
 *
 * @module
 */
export type { ExpectedCounts, ImageDataset, Problem, Sample, Split, Task } from "./dataset.ts";
export type { Box, Pixels } from "./resample.ts";
export { BadSampleError } from "./decode.ts";
export {
  DATA_KINDS,
  DataConfig,
  type DataKind,
  type DataSpec,
  LoaderConfig,
  openDataset,
  parseDataSpec,
} from "./data_spec.ts";
export { type Batch, DataLoader, epochOrder, type LoaderOptions, type SkippedSample } from "./loader.ts";
export {
  AugConfig,
  evalResizeSize,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeToChw,
  outputSize,
  transformPixels,
  type TransformSpec,
} from "./transforms.ts";
export { ADE20K_CLASSES, ADE20K_IGNORE, openAde20k } from "./ade20k.ts";
export { IMAGENET_EXPECTED, openImagenet } from "./imagenet.ts";
export {
  defaultSyntheticRoot,
  ensureSynthetic,
  SYNTHETIC_CLASSES,
  SYNTHETIC_SEG_CLASSES,
  SyntheticConfig,
} from "./synthetic.ts";
export { checkDataset, type CheckReport, formatReport } from "./check.ts";
export { listProblems, type StrictDataset, strictDataset, type StrictOptions } from "./strict_dataset.ts";
export { FASHION_MNIST_CLASSES, FashionMnistConfig, writeFashionMnist } from "./fashion_mnist.ts";
