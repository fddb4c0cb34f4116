/**
 * Evaluation inputs over a datasets/ `ImageDataset`: a subset view (`subsetDataset`, for the
 * stratified `--limit-*` samples and the held-out part of train) and the `EvalImageSource`
 * that extraction reads, with the evaluation transforms of SPEC 1.10 at the encoder's
 * resolution, in dataset order (no shuffling), through the shared `DataLoader`.
 *
 * - classification: Resize(short side, bicubic) + CenterCrop (`eval` transform);
 * - segmentation: image Resize((H, W), bicubic), label map Resize((H, W), nearest).
 *
 * @module
 */
import type { ImageDataset } from "../datasets/dataset.ts";
import { DataLoader } from "../datasets/loader.ts";
import type { TransformSpec } from "../datasets/transforms.ts";
import type { EvalImageSource, SourceBatch } from "./features.ts";
import { stratifiedSubset } from "./splits.ts";

/** The samples `indices` of `ds` as a dataset of their own (sample i is `ds`'s `indices[i]`). */
export function subsetDataset(ds: ImageDataset, indices: Int32Array): ImageDataset {
  return {
    description: `${ds.description} [${indices.length} of ${ds.length}]`,
    task: ds.task,
    split: ds.split,
    length: indices.length,
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    ignoreLabels: ds.ignoreLabels,
    expected: ds.expected,
    layoutProblems: ds.layoutProblems,
    path: (i) => ds.path(indices[i]),
    label: (i) => ds.label(indices[i]),
    load: async (i) => ({ ...(await ds.load(indices[i])), index: i }),
  };
}

/**
 * `ds`, or `n` of its samples stratified by class with `seed` (`eval --limit-*`, a suite's
 * `runtime.limitTrain/limitVal`); the description then names the subset.
 */
export function limitedDataset(ds: ImageDataset, n: number | undefined, seed: number): ImageDataset {
  if (n === undefined || n >= ds.length) return ds;
  const labels = Int32Array.from({ length: ds.length }, (_, i) => ds.label(i));
  const sub = subsetDataset(ds, stratifiedSubset(labels, n, seed));
  return { ...sub, description: `${ds.description} [stratified ${n} of ${ds.length}, seed ${seed}]` };
}

/** The transform a split is evaluated with at `size` (`[H, W]`). */
export function evalTransform(ds: ImageDataset, size: [number, number]): TransformSpec {
  return ds.task === "segmentation" ? { kind: "segmentation", size } : { kind: "eval", size };
}

/**
 * A source for `ds` at `size`; `dataId` names the data for cache keys (spec + split, and the
 * subset when one was drawn: a `--limit` sample must not share a cache entry with the full split).
 */
export function datasetSource(
  ds: ImageDataset,
  dataId: string,
  size: [number, number],
  opts: { concurrency?: number } = {},
): EvalImageSource {
  const transform = evalTransform(ds, size);
  return {
    id: `${dataId} ${ds.task} n=${ds.length} ${JSON.stringify(transform)}`,
    length: ds.length,
    async *batches(batchSize: number): AsyncIterable<SourceBatch> {
      // Only pass concurrency when set: the loader spreads options over its defaults.
      const extra = opts.concurrency ? { concurrency: opts.concurrency } : {};
      const loader = new DataLoader(ds, { batchSize, transform, seed: 0, shuffle: false, ...extra });
      for await (const b of loader.epoch(0)) {
        const take = b.images.shape[0];
        const [, , h, w] = b.images.shape;
        const labelMaps = b.labelMaps ? { shape: [take, h, w], data: Int32Array.from(b.labelMaps.data) } : undefined;
        yield { images: b.images, labels: ds.task === "classification" ? b.labels : undefined, labelMaps };
      }
    },
  };
}
