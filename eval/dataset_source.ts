/**
 * `EvalImageSource` over a datasets/ `ImageDataset`: the evaluation transforms of SPEC 1.10
 * at the encoder's resolution, in dataset order (no shuffling), through the shared
 * `DataLoader` (parallel decoding, prefetch).
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

/** A source for `ds` at `size` (`[H, W]`); `dataId` names the data for cache keys (spec + split). */
export function datasetSource(
  ds: ImageDataset,
  dataId: string,
  size: [number, number],
  opts: { concurrency?: number; limit?: number } = {},
): EvalImageSource {
  const transform: TransformSpec = ds.task === "segmentation" ? { kind: "segmentation", size } : { kind: "eval", size };
  const length = Math.min(ds.length, opts.limit ?? Infinity);
  return {
    id: `${dataId} ${ds.task} n=${length} ${JSON.stringify(transform)}`,
    length,
    async *batches(batchSize: number): AsyncIterable<SourceBatch> {
      // Only pass concurrency when set: the loader spreads options over its defaults.
      const extra = opts.concurrency ? { concurrency: opts.concurrency } : {};
      const loader = new DataLoader(ds, { batchSize, transform, seed: 0, shuffle: false, ...extra });
      let seen = 0;
      for await (const b of loader.epoch(0)) {
        const take = Math.min(b.images.shape[0], length - seen);
        if (take <= 0) break;
        const [, c, h, w] = b.images.shape;
        const images = { shape: [take, c, h, w], data: b.images.data.subarray(0, take * c * h * w) };
        const labelMaps = b.labelMaps
          ? {
            shape: [take, ...b.labelMaps.shape.slice(1)],
            data: Int32Array.from(b.labelMaps.data.subarray(0, take * h * w)),
          }
          : undefined;
        yield { images, labels: ds.task === "classification" ? b.labels.subarray(0, take) : undefined, labelMaps };
        seen += take;
      }
    },
  };
}
