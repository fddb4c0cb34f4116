/**
 * Splitting a step's batch into micro-batches (`batchPerDevice`): equal, contiguous shares of the
 * global batch, as the official code's per-GPU batches (`global batch = GPUs x batch per GPU`).
 * The methods' `drawMicroBatches` (model/method.ts) slice their per-sample draws with these.
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";

/** Images `[start, start + size)` of a step's batch. */
export interface SampleRange {
  start: number;
  size: number;
}

/**
 * The micro-batches of a batch of `batch` images at `batchPerDevice` images each. `batchPerDevice`
 * at or above the batch gives one micro-batch (the whole batch); otherwise it must divide the batch.
 */
export function microBatchRanges(batch: number, batchPerDevice: number): SampleRange[] {
  if (!Number.isInteger(batchPerDevice) || batchPerDevice < 1) {
    throw new Error(`batchPerDevice: expected a positive integer, got ${batchPerDevice}`);
  }
  if (batchPerDevice >= batch) return [{ start: 0, size: batch }];
  if (batch % batchPerDevice !== 0) {
    let divisor = batchPerDevice;
    while (batch % divisor !== 0) divisor--;
    throw new Error(
      `batchPerDevice ${batchPerDevice} does not divide the batch of ${batch} images: micro-batches are equal ` +
        `shares, as the official per-GPU batches; use a divisor of ${batch} (e.g. ${divisor})`,
    );
  }
  return Array.from(
    { length: batch / batchPerDevice },
    (_, i) => ({ start: i * batchPerDevice, size: batchPerDevice }),
  );
}

/** Samples `[start, start + size)` of `t` along axis 0 (the tensor itself when that is all of it). */
export function sliceSamples<T extends Float32Array | Int32Array>(
  t: HostTensor<T>,
  { start, size }: SampleRange,
): HostTensor<T> {
  const n = t.shape[0];
  if (start === 0 && size === n) return t;
  if (start < 0 || size < 1 || start + size > n) {
    throw new Error(`sliceSamples: samples [${start}, ${start + size}) are outside a batch of ${n} ([${t.shape}])`);
  }
  const row = t.data.length / n;
  return { shape: [size, ...t.shape.slice(1)], data: t.data.slice(start * row, (start + size) * row) as T };
}
