/**
 * `fusedGelu`: exact (erf) GELU as one kernel forward and one backward on the `blas` backend.
 *
 * model/nn/mlp.ts's `gelu` is five tfjs ops (`0.5 x (1 + erf(x / sqrt 2))`) whose autodiff adds ten
 * more, each a full pass over the `[B, N, 4D]` hidden activation: profiled, GELU was half of the
 * non-matmul kernel time of a ViT training step on wasm. Here the forward is one loop over the wasm
 * heap (erf by heap_erf.ts's rational approximation) and the gradient
 * `dy (0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi))` another; only `x` is saved.
 * On other backends it is model/nn's `gelu` unchanged. Agrees with it within 1e-6 (tested).
 *
 * @module
 */
import { tf } from "../engine.ts";
import { gelu } from "../nn/mlp.ts";
import { erfRational } from "./heap_erf.ts";
import type { TensorInfoLike, WasmHeapBackend } from "./blas_matmul.ts";

/** Kernel names registered for the `blas` backend by `registerGeluKernels`. */
export const GELU_KERNEL = "BlasGelu";
export const GELU_GRAD_KERNEL = "BlasGeluGrad";

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function heapViews(backend: WasmHeapBackend, ts: TensorInfoLike[], n: number): Float32Array[] {
  const buf = backend.wasm.HEAPU8.buffer;
  return ts.map((t) => new Float32Array(buf, backend.dataIdMap.get(t.dataId).memoryOffset, n));
}

/** Register the forward and gradient kernels for `backendName` (a wasm-heap backend). */
export function registerGeluKernels(backendName: string): void {
  tf.registerKernel({
    kernelName: GELU_KERNEL,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x } = inputs as unknown as { x: TensorInfoLike };
      const b = backend as unknown as WasmHeapBackend;
      const out = b.makeOutput(x.shape, "float32");
      const n = x.shape.reduce((p, d) => p * d, 1);
      const [src, dst] = heapViews(b, [x, out], n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        dst[i] = 0.5 * v * (1 + erfRational(v * Math.SQRT1_2));
      }
      return out as tf.TensorInfo;
    },
  });
  tf.registerKernel({
    kernelName: GELU_GRAD_KERNEL,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x, dy } = inputs as unknown as { x: TensorInfoLike; dy: TensorInfoLike };
      const b = backend as unknown as WasmHeapBackend;
      const out = b.makeOutput(x.shape, "float32");
      const n = x.shape.reduce((p, d) => p * d, 1);
      const [xs, g, dst] = heapViews(b, [x, dy, out], n);
      for (let i = 0; i < n; i++) {
        const v = xs[i];
        dst[i] = g[i] * (0.5 * (1 + erfRational(v * Math.SQRT1_2)) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
      }
      return out as tf.TensorInfo;
    },
  });
}

// tfjs types customGrad's arguments as one variadic list of tensors and the save function.
const fused = tf.customGrad(
  ((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return {
      value: tf.engine().runKernel(GELU_KERNEL, { x }, {}) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(GELU_GRAD_KERNEL, { x: saved[0], dy }, {}) as tf.Tensor,
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0],
);

/** Exact GELU; fused on backends with the kernels registered (blas), `nn.gelu` elsewhere. */
export function fusedGelu(x: tf.Tensor): tf.Tensor {
  if (x.dtype !== "float32" || !tf.getKernel(GELU_KERNEL, tf.getBackend())) return gelu(x);
  return fused(x);
}
