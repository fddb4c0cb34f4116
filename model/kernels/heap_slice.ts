/**
 * `Slice` and `SplitV` on the wasm heap without reading the whole source first.
 *
 * tfjs-backend-wasm's `Slice` starts with `backend.readSync(x)`, a copy of the entire source,
 * before copying the slice out of that copy; splitting a ViT's fused qkv `[B, N, 3D]` three ways
 * thus copied it four times (7% of a training step). Here the slice is copied straight from heap
 * to heap with `copyWithin`, in runs as long as the slice is contiguous.
 *
 * @module
 */
import type { TensorInfoLike, WasmHeapBackend } from "./blas_matmul.ts";

/** Copy `x[begin : begin + size]` (float32 or int32, any rank) into a new heap tensor. */
export function heapSlice(
  backend: WasmHeapBackend,
  x: TensorInfoLike,
  begin: number[],
  size: number[],
): TensorInfoLike {
  let rank = x.shape.length;
  const out = backend.makeOutput(size, x.dtype as "float32");
  const total = size.reduce((p, d) => p * d, 1);
  if (total === 0) return out;
  if (rank === 0) [size, begin, x, rank] = [[1], [0], { ...x, shape: [1] }, 1]; // a scalar: 1-element vector
  const heap = new Int32Array(backend.wasm.HEAPU8.buffer); // 4-byte elements: float32 and int32 alike
  const src0 = backend.dataIdMap.get(x.dataId).memoryOffset / 4;
  let dst = backend.dataIdMap.get(out.dataId).memoryOffset / 4;
  const strides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    strides[i] = s;
    s *= x.shape[i];
  }
  // Innermost run: the last axis plus every fully-taken axis before it that it extends.
  let run = size[rank - 1], first = rank - 1;
  while (first > 0 && size[first] === x.shape[first]) {
    first--;
    run *= size[first];
  }
  // Odometer over the axes before `first` (outer), copying one run per position.
  const idx = new Array<number>(first).fill(0);
  const runs = total / run;
  for (let r = 0; r < runs; r++) {
    let src = src0 + begin[first] * strides[first];
    for (let a = 0; a < first; a++) src += (begin[a] + idx[a]) * strides[a];
    for (let a = first + 1; a < rank; a++) src += begin[a] * strides[a];
    heap.copyWithin(dst, src, src + run);
    dst += run;
    for (let a = first - 1; a >= 0; a--) {
      if (++idx[a] < size[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

/** Split `x` along `axis` into pieces of `sizes` (already resolved, summing to the axis length). */
export function heapSplit(
  backend: WasmHeapBackend,
  x: TensorInfoLike,
  sizes: number[],
  axis: number,
): TensorInfoLike[] {
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const piece = heapSlice(backend, x, [...begin], size);
    begin[axis] += s;
    return piece;
  });
}
