/**
 * `Sum` over leading axes on the wasm heap by BLAS `sgemv` against a vector of ones.
 *
 * The gradient of a broadcast bias or norm weight is a sum over the batch and token axes
 * (`[B, N, D]` -> `[D]`). tfjs-backend-wasm reduces only innermost axes, so it first transposes
 * the whole activation (`[D, B*N]`) and then sums, which made `Sum` a quarter of a ViT training
 * step. Here `x` is viewed as `[R, C]` (R = product of the reduced leading axes) and
 * `y = x^T 1` is one sgemv, no transpose. Other axis sets return null (caller falls back).
 *
 * @module
 */
import type { Blas } from "./blas.ts";
import type { TensorInfoLike, WasmHeapBackend } from "./blas_matmul.ts";

// Ones for the sgemv, in JS memory outside the wasm heap. At least 64 KiB so that V8 keeps it
// off its GC heap (small typed arrays may live on-heap and move), and never shrunk.
let ones = new Float32Array(16384).fill(1);

/** `sum(x, axes)` if `axes` are exactly the leading ones of a float32 `x`; null otherwise. */
export function blasSumLeading(
  blas: Blas,
  backend: WasmHeapBackend,
  x: TensorInfoLike,
  axis: number | number[],
  keepDims: boolean,
): TensorInfoLike | null {
  if (x.dtype !== "float32") return null;
  const rank = x.shape.length;
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort((a, b) =>
    a - b
  );
  if (axes.length === 0 || axes.length === rank || axes.some((a, i) => a !== i)) return null;
  const k = axes.length;
  const r = x.shape.slice(0, k).reduce((p, d) => p * d, 1);
  const c = x.shape.slice(k).reduce((p, d) => p * d, 1);
  if (r === 0 || c === 0) return null;
  const outShape = keepDims ? [...x.shape.slice(0, k).map(() => 1), ...x.shape.slice(k)] : x.shape.slice(k);
  const out = backend.makeOutput(outShape, "float32");
  if (ones.length < r) ones = new Float32Array(Math.max(r, 2 * ones.length)).fill(1);
  const base = blas.addressOf(backend.wasm.HEAPU8);
  const px = base + backend.dataIdMap.get(x.dataId).memoryOffset;
  const py = base + backend.dataIdMap.get(out.dataId).memoryOffset;
  blas.sgemv(true, r, c, 1, px, c, blas.addressOf(ones), 0, py);
  return out;
}
