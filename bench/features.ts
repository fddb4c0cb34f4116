/**
 * Frozen-encoder feature extraction for the harness's probes: streams a dataset split through
 * a `VisionEncoder` in evaluation order and keeps what the probes need.
 *
 * Classification: `global [N, D]` (the method's global representation, or the mean of the
 * patch tokens when it has none) and `tokens [N, T, D]` (patch tokens, for the attentive
 * probe); segmentation: `feats [N, Gh, Gw, D]` and pixel labels `[N, H, W]`.
 * (A hack until eval/ exports its shared extractor: same contract, swap the import then.)
 *
 * @module
 */
import type { HostTensor, VisionEncoder } from "../model/encoder.ts";
import type { ImageDataset } from "../datasets/dataset.ts";
import { DataLoader } from "../datasets/loader.ts";

export interface ClassFeatures {
  global: HostTensor<Float32Array>;
  tokens: HostTensor<Float32Array>;
  labels: Int32Array;
}

export interface SegFeatureSet {
  feats: HostTensor<Float32Array>;
  labels: HostTensor<Int32Array>;
}

function concat(chunks: Float32Array[], total: number): Float32Array {
  const out = new Float32Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Mean over the grid of `[B, Gh, Gw, D]` patches -> `[B, D]`. */
export function meanPatches(p: HostTensor<Float32Array>): Float32Array {
  const [b, gh, gw, d] = p.shape;
  const out = new Float32Array(b * d), t = gh * gw;
  for (let n = 0; n < b; n++) {
    for (let k = 0; k < t; k++) {
      const base = (n * t + k) * d;
      for (let c = 0; c < d; c++) out[n * d + c] += p.data[base + c] / t;
    }
  }
  return out;
}

/** Classification features of a whole split (eval transform: resize + center crop). */
export async function extractClassFeatures(
  encoder: VisionEncoder,
  ds: ImageDataset,
  opts: { batchSize: number; concurrency: number },
): Promise<ClassFeatures> {
  const [h, w] = encoder.info.imageSize;
  const loader = new DataLoader(ds, {
    batchSize: opts.batchSize,
    transform: { kind: "eval", size: [h, w] },
    seed: 0,
    shuffle: false,
    concurrency: opts.concurrency,
  });
  const g: Float32Array[] = [], t: Float32Array[] = [], labels: number[] = [];
  let dims = [0, 0, 0];
  for await (const batch of loader.epoch(0)) {
    const out = await encoder.encode(batch.images);
    const [b, gh, gw, d] = out.patches.shape;
    const global = out.global ?? { shape: [b, d], data: meanPatches(out.patches) };
    dims = [global.shape[1], gh * gw, d];
    g.push(global.data);
    t.push(out.patches.data);
    labels.push(...batch.labels);
  }
  const n = labels.length;
  return {
    global: { shape: [n, dims[0]], data: concat(g, n * dims[0]) },
    tokens: { shape: [n, dims[1], dims[2]], data: concat(t, n * dims[1] * dims[2]) },
    labels: Int32Array.from(labels),
  };
}

/** Segmentation features of a whole split (image bicubic, labels nearest, to the encoder's size). */
export async function extractSegFeatures(
  encoder: VisionEncoder,
  ds: ImageDataset,
  opts: { batchSize: number; concurrency: number },
): Promise<SegFeatureSet> {
  const [h, w] = encoder.info.imageSize;
  const loader = new DataLoader(ds, {
    batchSize: opts.batchSize,
    transform: { kind: "segmentation", size: [h, w] },
    seed: 0,
    shuffle: false,
    concurrency: opts.concurrency,
  });
  const f: Float32Array[] = [], l: Int32Array[] = [];
  let n = 0, grid = [0, 0, 0];
  for await (const batch of loader.epoch(0)) {
    const out = await encoder.encode(batch.images);
    grid = out.patches.shape.slice(1);
    f.push(out.patches.data);
    l.push(Int32Array.from(batch.labelMaps!.data));
    n += batch.images.shape[0];
  }
  const labels = new Int32Array(n * h * w);
  let o = 0;
  for (const c of l) {
    labels.set(c, o);
    o += c.length;
  }
  return {
    feats: { shape: [n, ...grid], data: concat(f, n * grid[0] * grid[1] * grid[2]) },
    labels: { shape: [n, h, w], data: labels },
  };
}
