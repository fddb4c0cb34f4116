/**
 * The `blas` backend: tfjs-backend-wasm with its matrix products computed by the system BLAS.
 *
 * `blas` is the very same `BackendWasm` instance as `wasm`, registered under a second name with
 * copies of all wasm kernels, of which `BatchMatMul` is replaced by `blasBatchMatMul`. Sharing the
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
    if (config.kernelName === tf.BatchMatMul) continue;
    tf.registerKernel({ ...config, backendName: BLAS_BACKEND });
  }
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
  // Priority 0: never picked automatically over the default backend.
  tf.registerBackend(BLAS_BACKEND, () => wasm, 0);
  registered = blas;
  return blas;
}
