/**
 * `ClassData` computed on the fly from images (the `online` class-probe input, as capi
 * eval_classification.py trains): every training batch is decoded with the official training
 * augmentation (RandomResizedCrop bicubic, default scale (0.08, 1), + horizontal flip), run
 * through the frozen encoder in micro-batches of `batchPerDevice`, and pooled into each
 * feature source; the held-out part of train and the val split go through the evaluation
 * transform (Resize 256 + CenterCrop 224 at 224 px). Nothing is stored: memory is one batch
 * of features (and the loader's prefetch), whatever the data size.
 *
 * The training stream runs epoch after epoch of a seeded shuffle of the fit images without
 * stopping at epoch ends (the official loader is infinite too); each image's augmentation is
 * seeded by (seed, epoch, index), so a run is reproducible.
 *
 * @module
 */
import type { ImageDataset } from "../datasets/dataset.ts";
import { DataLoader } from "../datasets/loader.ts";
import type { TransformSpec } from "../datasets/transforms.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import type { HostTensor } from "../model/fixture.ts";
import type { GridBatch } from "./grid_train.ts";
import { checkLabels, type ClassData, rowsTensor } from "./class_probe.ts";
import { encoderSourceRows, type FeatureSource } from "./feature_sources.ts";
import { concatArrays } from "./feature_table.ts";
import { evalTransform, subsetDataset } from "./dataset_source.ts";
import { holdoutSplit } from "./splits.ts";

export interface OnlineOptions {
  classes: number;
  holdoutFraction: number;
  seed: number;
  /** Images per encoder call (the batch of one device). */
  batchPerDevice: number;
  /** Images per evaluation chunk. */
  evalBatch: number;
  cropScale: [number, number];
  concurrency?: number;
}

/** Encode `images` in micro-batches and return each source's rows, concatenated. */
async function encodeRows(
  encoder: VisionEncoder,
  images: HostTensor<Float32Array>,
  sources: FeatureSource[],
  micro: number,
): Promise<Record<string, Float32Array[]>> {
  const [b, c, h, w] = images.shape;
  const per = c * h * w;
  const out: Record<string, Float32Array[]> = Object.fromEntries(sources.map((s) => [s, []]));
  for (let s = 0; s < b; s += micro) {
    const n = Math.min(micro, b - s);
    const f = await encoder.encode({ shape: [n, c, h, w], data: images.data.subarray(s * per, (s + n) * per) });
    for (const src of sources) out[src].push(encoderSourceRows(f, src));
  }
  return out;
}

/** Class-probe input that runs the encoder on every batch (`shapes` holds the sources it can give). */
export async function onlineClassData(
  encoder: VisionEncoder,
  train: ImageDataset,
  val: ImageDataset,
  wanted: FeatureSource[],
  o: OnlineOptions,
): Promise<ClassData> {
  const size = encoder.info.imageSize;
  const labels = (ds: ImageDataset) => Int32Array.from({ length: ds.length }, (_, i) => ds.label(i));
  checkLabels(labels(train), o.classes, "train");
  checkLabels(labels(val), o.classes, "val");
  const split = holdoutSplit(train.length, o.holdoutFraction, o.seed, "class-holdout");
  const fitDs = subsetDataset(train, split.fit), holdDs = subsetDataset(train, split.hold);
  // Row shapes from one encoder call on the first held-out image.
  const probe = new DataLoader(holdDs, {
    batchSize: 1,
    transform: evalTransform(holdDs, size),
    seed: 0,
    shuffle: false,
  });
  const firstIt = probe.epoch(0);
  const first = (await firstIt.next()).value;
  await firstIt.return(undefined);
  if (!first) throw new Error(`class probe: the held-out part of ${train.description} is empty`);
  const f0 = await encoder.encode(first.images);
  const [, gh, gw, d] = f0.patches.shape;
  // `cls` sources only where the encoder has a global representation (as with extracted features).
  const sources = wanted.filter((s) => f0.global !== null || (s !== "cls" && s !== "cls_avg_patch"));
  const shapes = Object.fromEntries(sources.map((s) => {
    const len = encoderSourceRows(f0, s).length;
    return [s, s === "patch" ? [gh * gw, d] : [len]];
  }));
  const extra = o.concurrency ? { concurrency: o.concurrency } : {};

  async function* evalOver(ds: ImageDataset): AsyncGenerator<GridBatch> {
    const loader = new DataLoader(ds, {
      batchSize: o.evalBatch,
      transform: evalTransform(ds, size),
      seed: 0,
      shuffle: false,
      ...extra,
    });
    for await (const b of loader.epoch(0)) {
      const rows = await encodeRows(encoder, b.images, sources, o.batchPerDevice);
      const inputs = Object.fromEntries(
        sources.map((s) => [s, rowsTensor(concatArrays(Float32Array, rows[s]), shapes[s])]),
      );
      yield { inputs, labels: b.labels };
    }
  }
  return {
    shapes,
    fitCount: split.fit.length,
    async *trainBatches(batchSize: number) {
      const transform: TransformSpec = {
        kind: "train",
        size,
        scale: o.cropScale,
        ratio: [3 / 4, 4 / 3],
        hflip: 0.5,
      };
      const loader = new DataLoader(fitDs, {
        batchSize: o.batchPerDevice,
        transform,
        seed: o.seed,
        shuffle: true,
        ...extra,
      });
      let parts: Record<string, Float32Array[]> = Object.fromEntries(sources.map((s) => [s, []]));
      let ys: number[] = [];
      for (let epoch = 0;; epoch++) {
        for await (const b of loader.epoch(epoch)) {
          for (let s = 0; s < b.labels.length;) {
            // Take what this global batch still needs from the micro-batch.
            const take = Math.min(batchSize - ys.length, b.labels.length - s);
            const [, c, h, w] = b.images.shape, per = c * h * w;
            const images = { shape: [take, c, h, w], data: b.images.data.subarray(s * per, (s + take) * per) };
            const rows = await encodeRows(encoder, images, sources, o.batchPerDevice);
            for (const src of sources) parts[src].push(...rows[src]);
            ys.push(...b.labels.subarray(s, s + take));
            s += take;
            if (ys.length === batchSize) {
              const inputs = Object.fromEntries(
                sources.map((src) => [src, rowsTensor(concatArrays(Float32Array, parts[src]), shapes[src])]),
              );
              yield { inputs, labels: Int32Array.from(ys) };
              parts = Object.fromEntries(sources.map((src) => [src, []]));
              ys = [];
            }
          }
        }
      }
    },
    holdout: () => evalOver(holdDs),
    val: () => evalOver(val),
  };
}
