/**
 * `BatchMatMul` for the wasm backend's heap, computed by the system BLAS (`cblas_sgemm`).
 *
 * The operands stay where tfjs-backend-wasm keeps them, in its `WebAssembly.Memory`: we read their
 * byte offsets from `backend.dataIdMap`, allocate the output with `backend.makeOutput`, and hand
 * BLAS the absolute addresses, so nothing is copied. `transposeA/B` become BLAS's own transpose
 * flags (free there, unlike the wasm kernel's 5-10x slower transposed path).
 *
 * Batch axes broadcast as numpy does (`[2, 1, M, K] @ [3, K, N]` -> `[2, 3, M, N]`). When `b` has
 * a single batch and `a` is not transposed, the whole batch is one sgemm on `[batch*M, K]`.
 *
 * @module
 */
import type { Blas } from "./blas.ts";

/** The slice of tfjs-backend-wasm's `BackendWasm` this kernel touches (not exported by tfjs). */
export interface WasmHeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: "float32"): TensorInfoLike;
}

/** tfjs's `TensorInfo`. */
export interface TensorInfoLike {
  dataId: object;
  shape: number[];
  dtype: string;
}

/** Broadcast two batch shapes (numpy rules) or throw naming both operands. */
export function broadcastBatch(a: number[], b: number[], aShape: number[], bShape: number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`matMul: batch axes of a [${aShape}] and b [${bShape}] do not broadcast`);
    }
    out.push(Math.max(da, db));
  }
  return out;
}

/**
 * For each output batch index, the batch index into an operand of batch shape `own`
 * (right-aligned against `out`, size-1 axes broadcast).
 */
export function batchIndices(own: number[], out: number[]): Int32Array {
  const total = out.reduce((p, d) => p * d, 1);
  const idx = new Int32Array(total);
  const off = out.length - own.length;
  for (let flat = 0; flat < total; flat++) {
    let rem = flat, src = 0, stride = 1;
    for (let ax = out.length - 1; ax >= 0; ax--) {
      const coord = rem % out[ax];
      rem = (rem - coord) / out[ax];
      const d = ax - off >= 0 ? own[ax - off] : 1;
      if (d !== 1) src += coord * stride;
      stride *= d;
    }
    idx[flat] = src;
  }
  return idx;
}

/** Run `op(a) @ op(b)` on the wasm heap with `blas`; returns the output's TensorInfo. */
export function blasBatchMatMul(
  blas: Blas,
  backend: WasmHeapBackend,
  a: TensorInfoLike,
  b: TensorInfoLike,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfoLike {
  if (a.dtype !== "float32" || b.dtype !== "float32") {
    throw new Error(`matMul (blas): float32 operands only, got ${a.dtype} and ${b.dtype}`);
  }
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`matMul (blas): operands need rank >= 2, got [${a.shape}] and [${b.shape}]`);
  }
  const ra = a.shape.length, rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new Error(
      `matMul: inner sizes ${k} and ${kb} of a [${a.shape}] and b [${b.shape}] ` +
        `(transposeA=${transposeA}, transposeB=${transposeB}) must match`,
    );
  }
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const outBatch = broadcastBatch(batchA, batchB, a.shape, b.shape);
  const out = backend.makeOutput([...outBatch, m, n], "float32");
  const batches = outBatch.reduce((p, d) => p * d, 1);
  if (batches * m * n === 0) return out;
  // makeOutput may have grown the heap: read the buffer and offsets only now.
  const heap = backend.wasm.HEAPU8;
  const base = blas.addressOf(heap);
  const pa = base + backend.dataIdMap.get(a.dataId).memoryOffset;
  const pb = base + backend.dataIdMap.get(b.dataId).memoryOffset;
  const outOffset = backend.dataIdMap.get(out.dataId).memoryOffset;
  if (k === 0) {
    new Float32Array(heap.buffer, outOffset, batches * m * n).fill(0);
    return out;
  }
  const pc = base + outOffset;
  const lda = transposeA ? m : k, ldb = transposeB ? k : n;
  const sizeA = m * k * 4, sizeB = k * n * 4, sizeC = m * n * 4;
  const nA = batchA.reduce((p, d) => p * d, 1), nB = batchB.reduce((p, d) => p * d, 1);
  if (nB === 1 && !transposeA && nA === batches) {
    // [batch, M, K] row-major is [batch*M, K]: one large product instead of `batch` small ones.
    blas.sgemm(false, transposeB, batches * m, n, k, 1, pa, lda, pb, ldb, 0, pc, n);
    return out;
  }
  const same = nA === batches && nB === batches;
  const ia = same ? null : batchIndices(batchA, outBatch);
  const ib = same ? null : batchIndices(batchB, outBatch);
  for (let i = 0; i < batches; i++) {
    const xa = ia ? ia[i] : i, xb = ib ? ib[i] : i;
    blas.sgemm(transposeA, transposeB, m, n, k, 1, pa + xa * sizeA, lda, pb + xb * sizeB, ldb, 0, pc + i * sizeC, n);
  }
  return out;
}
