/**
 * The `blas` backend: tfjs-backend-wasm with its matrix products computed by the system BLAS.
 *
 * `blas` is the very same `BackendWasm` instance as `wasm`, registered under a second name with
 * copies of all wasm kernels, of which these are replaced (each found by profiling a ViT step):
 * - `BatchMatMul`: `cblas_sgemm` with native transposes (blas_matmul.ts), 4-5x the wasm GFLOP/s;
 * - `Sum` over leading axes (bias and norm-weight gradients): `cblas_sgemv`, no transpose (blas_sum.ts);
 * - `Identity` and same-dtype `Cast`: share the buffer instead of copying it (zero_copy.ts), which
 *   also halves the peak heap, since tfjs clones every tensor saved for the backward pass;
 * - `Slice`, `SplitV`: heap-to-heap copies without first copying the whole source (heap_slice.ts);
 * - `Erf` (exact GELU): a rational approximation without `exp`, 5-6x faster (heap_erf.ts);
 * and it adds the fused GELU and LayerNorm kernels of fused_gelu.ts and fused_layer_norm.ts. Sharing the
 * instance matters: the wasm kernels bind their C functions into module-level variables when a
 * backend is set up, so a second wasm instance would rebind them under the first one's feet. It also
 * means tensors move between `wasm` and `blas` for free (same heap), which the agreement tests use.
 *
 * Call `registerBlasBackend()` after the `wasm` backend is initialised (engine.ts does).
 *
 * @module
 */
import { tf } from "../engine.ts";
import { type Blas, blasUnavailableReason, loadBlas } from "./blas.ts";
import { blasBatchMatMul, type TensorInfoLike, type WasmHeapBackend } from "./blas_matmul.ts";
import { blasSumLeading } from "./blas_sum.ts";
import { type RefCountingBackend, shareData } from "./zero_copy.ts";
import { heapSlice, heapSplit } from "./heap_slice.ts";
import { heapErf } from "./heap_erf.ts";
import { registerGeluKernels } from "./fused_gelu.ts";
import { registerLayerNormKernels } from "./fused_layer_norm.ts";

/** Kernels the blas backend replaces; every other wasm kernel is used as is. */
export const BLAS_KERNELS: readonly string[] = [
  tf.BatchMatMul,
  tf.Sum,
  tf.Identity,
  tf.Cast,
  tf.Slice,
  tf.SplitV,
  tf.Erf,
];

/** The backend name; tfjs forbids `_` in backend names. */
export const BLAS_BACKEND = "blas";

let registered: Blas | null = null;
let noticePrinted = false;

/** The BLAS behind the `blas` backend, or null before `registerBlasBackend` succeeded. */
export function activeBlas(): Blas | null {
  return registered;
}

/**
 * Register `blas` as an alias of the initialised `wasm` backend with BLAS matrix products.
 * Returns the loaded BLAS, or null (nothing registered, one notice printed) when no library is available.
 */
export function registerBlasBackend(): Blas | null {
  if (registered) return registered;
  const blas = loadBlas();
  if (!blas) {
    if (!noticePrinted) console.warn(`backend 'blas': falling back to the wasm kernels: ${blasUnavailableReason()}`);
    noticePrinted = true;
    return null;
  }
  const wasm = tf.findBackend("wasm");
  if (!wasm) throw new Error("registerBlasBackend: initialise the 'wasm' backend first (initBackend('wasm'))");
  for (const config of tf.getKernelsForBackend("wasm")) {
    if (BLAS_KERNELS.includes(config.kernelName)) continue;
    tf.registerKernel({ ...config, backendName: BLAS_BACKEND });
  }
  const wasmKernel = (name: string) => {
    const k = tf.getKernel(name, "wasm");
    if (!k) throw new Error(`registerBlasBackend: tfjs-backend-wasm has no '${name}' kernel to fall back on`);
    return k.kernelFunc;
  };
  const wasmSum = wasmKernel(tf.Sum), wasmCast = wasmKernel(tf.Cast);
  const wasmSlice = wasmKernel(tf.Slice), wasmSplitV = wasmKernel(tf.SplitV), wasmErf = wasmKernel(tf.Erf);
  tf.registerKernel({
    kernelName: tf.Erf,
    backendName: BLAS_BACKEND,
    kernelFunc: (args) => {
      const { x } = args.inputs as unknown as { x: TensorInfoLike };
      const out = heapErf(args.backend as unknown as WasmHeapBackend, x);
      return out ? out as tf.TensorInfo : wasmErf(args);
    },
  });
  const fourBytes = (dtype: string) => dtype === "float32" || dtype === "int32";
  tf.registerKernel({
    kernelName: tf.Slice,
    backendName: BLAS_BACKEND,
    kernelFunc: (args) => {
      const { x } = args.inputs as unknown as { x: tf.TensorInfo };
      if (!fourBytes(x.dtype)) return wasmSlice(args);
      const { begin, size } = args.attrs as unknown as tf.SliceAttrs;
      const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
      return heapSlice(args.backend as unknown as WasmHeapBackend, x, b, s) as tf.TensorInfo;
    },
  });
  tf.registerKernel({
    kernelName: tf.SplitV,
    backendName: BLAS_BACKEND,
    kernelFunc: (args) => {
      const { x } = args.inputs as unknown as { x: tf.TensorInfo };
      if (!fourBytes(x.dtype)) return wasmSplitV(args);
      const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
      const ax = tf.util.parseAxisParam(axis, x.shape)[0];
      const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
      return heapSplit(args.backend as unknown as WasmHeapBackend, x, sizes, ax) as tf.TensorInfo[];
    },
  });
  tf.registerKernel({
    kernelName: tf.Sum,
    backendName: BLAS_BACKEND,
    kernelFunc: (args) => {
      const { x } = args.inputs as unknown as { x: TensorInfoLike };
      const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
      const out = blasSumLeading(blas, args.backend as unknown as WasmHeapBackend, x, axis, keepDims);
      return out ? out as tf.TensorInfo : wasmSum(args);
    },
  });
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: BLAS_BACKEND,
    kernelFunc: ({ inputs, backend }) => {
      const { x } = inputs as unknown as { x: TensorInfoLike };
      if (x.dtype === "string") throw new Error("Identity (blas): string tensors are not supported");
      return shareData(backend as unknown as RefCountingBackend, x) as tf.TensorInfo;
    },
  });
  tf.registerKernel({
    kernelName: tf.Cast,
    backendName: BLAS_BACKEND,
    kernelFunc: (args) => {
      const { x } = args.inputs as unknown as { x: TensorInfoLike };
      const { dtype } = args.attrs as unknown as tf.CastAttrs;
      if (dtype !== x.dtype) return wasmCast(args);
      return shareData(args.backend as unknown as RefCountingBackend, x) as tf.TensorInfo;
    },
  });
  tf.registerKernel({
    kernelName: tf.BatchMatMul,
    backendName: BLAS_BACKEND,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { a, b } = inputs as unknown as { a: TensorInfoLike; b: TensorInfoLike };
      const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
      return blasBatchMatMul(
        blas,
        backend as unknown as WasmHeapBackend,
        a,
        b,
        transposeA,
        transposeB,
      ) as tf.TensorInfo;
    },
  });
  registerGeluKernels(BLAS_BACKEND);
  registerLayerNormKernels(BLAS_BACKEND);
  // Priority 0: never picked automatically over the default backend.
  tf.registerBackend(BLAS_BACKEND, () => wasm, 0);
  registered = blas;
  return blas;
}
