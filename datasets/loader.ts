/**
 * The batch loader: seeded shuffling per epoch, per-sample seeded transforms, bounded decode
 * concurrency and prefetch, sharding across machines, and the bad-sample policy.
 *
 * Batches hold plain CPU typed arrays with explicit shapes (the trainer uploads them):
 * `images` float32 `[B, 3, H, W]` (normalised CHW), `labels` int32 `[B]`, for segmentation
 * `labelMaps` uint8 `[B, H, W]`, and the dataset `indices` `[B]`.
 *
 * Determinism: epoch order = `Rng.from(seed, "shuffle", epoch).permutation(n)`; sample i's
 * augmentation uses `Rng.from(seed, "aug", epoch, i)`. Neither depends on concurrency,
 * prefetch or shard count, so batches are byte-identical however the loader is tuned.
 * Shard `{index, count}` takes every count-th position of the epoch order starting at
 * `index` (torch DistributedSampler's split); with `dropLast` the order is first truncated
 * to a multiple of `count` so every shard runs the same number of steps.
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";
import { Rng } from "../model/rng.ts";
import type { ImageDataset } from "./dataset.ts";
import { BadSampleError } from "./decode.ts";
import type { Pixels } from "./resample.ts";
import { normalizeToChw, outputSize, transformPixels, type TransformSpec } from "./transforms.ts";

export interface Batch {
  /** float32 `[B, 3, H, W]`, ImageNet-normalised. */
  images: HostTensor<Float32Array>;
  /** int32 `[B]`: class index, or -1 for segmentation samples. */
  labels: Int32Array;
  /** uint8 `[B, H, W]` label maps (segmentation only). */
  labelMaps: { shape: number[]; data: Uint8Array } | null;
  /** int32 `[B]`: dataset index of each sample. */
  indices: Int32Array;
}

export interface LoaderOptions {
  batchSize: number;
  transform: TransformSpec;
  seed: number;
  /** Shuffle each epoch (training); false keeps dataset order (evaluation). Default true. */
  shuffle?: boolean;
  /** Drop the last partial batch (training). Default false. */
  dropLast?: boolean;
  /** This machine's part of each epoch. Default {index: 0, count: 1}. */
  shard?: { index: number; count: number };
  /** Decodes in flight (default 8). */
  concurrency?: number;
  /** Batches buffered ahead of the consumer (default 2). */
  prefetch?: number;
  /** "fail" (default): the first bad sample throws; "skip": drop it and record it in `skipped`. */
  onBadSample?: "fail" | "skip";
}

/** A skipped sample (onBadSample "skip"). */
export interface SkippedSample {
  epoch: number;
  index: number;
  path: string;
  reason: string;
}

/** Dataset positions this shard visits in `epoch`, in order. */
export function epochOrder(
  length: number,
  options: {
    seed: number;
    epoch: number;
    shuffle?: boolean;
    dropLast?: boolean;
    shard?: { index: number; count: number };
  },
): Int32Array {
  const { index, count } = options.shard ?? { index: 0, count: 1 };
  if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(index) && index >= 0 && index < count)) {
    throw new Error(`loader: shard must satisfy 0 <= index < count, got ${index}/${count}`);
  }
  let order = options.shuffle === false
    ? Int32Array.from({ length }, (_, i) => i)
    : Rng.from(options.seed, "shuffle", options.epoch).permutation(length);
  if (options.dropLast) order = order.subarray(0, length - (length % count));
  return order.filter((_, k) => k % count === index);
}

type Loaded = { ok: true; index: number; image: Pixels; labelMap: Pixels | null; label: number } | {
  ok: false;
  error: unknown;
};

/** Batches over one dataset; `epoch(e)` yields that epoch's batches. */
export class DataLoader {
  readonly skipped: SkippedSample[] = [];
  readonly #ds: ImageDataset;
  readonly #o: Required<LoaderOptions>;

  constructor(dataset: ImageDataset, options: LoaderOptions) {
    if (!(Number.isInteger(options.batchSize) && options.batchSize >= 1)) {
      throw new Error(`loader: batchSize must be a positive integer, got ${options.batchSize}`);
    }
    if (options.transform.kind === "segmentation" && dataset.task !== "segmentation") {
      throw new Error(`loader: segmentation transform on ${dataset.description}, which has no label maps`);
    }
    this.#ds = dataset;
    // An option given as `undefined` means "the default", not "unset": drop those keys
    // before spreading, or `concurrency: undefined` would stall the decode loop.
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.#o = {
      shuffle: true,
      dropLast: false,
      shard: { index: 0, count: 1 },
      concurrency: 8,
      prefetch: 2,
      onBadSample: "fail",
      ...given,
    } as Required<LoaderOptions>;
    if (!(Number.isInteger(this.#o.concurrency) && this.#o.concurrency >= 1)) {
      throw new Error(`loader: concurrency must be a positive integer, got ${this.#o.concurrency}`);
    }
  }

  /** Number of batches this shard yields per epoch (before any skipped samples). */
  get batchesPerEpoch(): number {
    const n = epochOrder(this.#ds.length, { ...this.#o, epoch: 0 }).length;
    return this.#o.dropLast ? Math.floor(n / this.#o.batchSize) : Math.ceil(n / this.#o.batchSize);
  }

  /** The batches of `epoch`; decoding runs ahead of the consumer within the bounds. */
  async *epoch(epoch: number): AsyncGenerator<Batch> {
    const o = this.#o, ds = this.#ds;
    const order = epochOrder(ds.length, { ...o, epoch });
    const results: Promise<Loaded>[] = [];
    let started = 0, inFlight = 0, consumed = 0;
    const window = (o.prefetch + 1) * o.batchSize;
    const pump = () => {
      while (started < order.length && inFlight < o.concurrency && started - consumed < window) {
        const index = order[started++];
        inFlight++;
        results.push(
          this.#loadOne(index, epoch).finally(() => {
            inFlight--;
            pump();
          }),
        );
      }
    };
    let pending: Extract<Loaded, { ok: true }>[] = [];
    pump();
    while (consumed < order.length) {
      const r = await results[consumed];
      delete results[consumed]; // let finished samples be collected
      consumed++;
      pump();
      if (!r.ok) {
        const e = r.error;
        if (o.onBadSample === "skip" && e instanceof BadSampleError) {
          this.skipped.push({ epoch, index: order[consumed - 1], path: e.path, reason: e.reason });
          continue;
        }
        throw e;
      }
      pending.push(r);
      if (pending.length === o.batchSize) {
        yield this.#assemble(pending);
        pending = [];
      }
    }
    if (pending.length > 0 && !o.dropLast) yield this.#assemble(pending);
  }

  async #loadOne(index: number, epoch: number): Promise<Loaded> {
    try {
      const s = await this.#ds.load(index);
      const t = transformPixels(this.#o.transform, s, Rng.from(this.#o.seed, "aug", epoch, index));
      return { ok: true, index, image: t.image, labelMap: t.labelMap, label: s.label };
    } catch (error) {
      return { ok: false, error };
    }
  }

  #assemble(samples: Extract<Loaded, { ok: true }>[]): Batch {
    const B = samples.length;
    const [H, W] = outputSize(this.#o.transform.size);
    const images = new Float32Array(B * 3 * H * W);
    const labels = new Int32Array(B), indices = new Int32Array(B);
    const seg = this.#o.transform.kind === "segmentation";
    const maps = seg ? new Uint8Array(B * H * W) : null;
    samples.forEach((s, b) => {
      normalizeToChw(s.image, images, b * 3 * H * W);
      labels[b] = s.label;
      indices[b] = s.index;
      if (maps && s.labelMap) maps.set(s.labelMap.data, b * H * W);
    });
    return {
      images: { shape: [B, 3, H, W], data: images },
      labels,
      labelMaps: maps ? { shape: [B, H, W], data: maps } : null,
      indices,
    };
  }
}
