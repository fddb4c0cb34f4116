/**
 * `fusedLayerNorm`: LayerNorm over the last axis as one kernel forward and one backward on `blas`.
 *
 * model/nn/norm.ts's `layerNorm` is nine tfjs ops forward and about fifteen backward, each a pass
 * over `[B, N, D]`; a ViT has 2 per block plus a final one. Here the forward is one loop per row
 * (mean, biased variance, normalise, scale, shift; saving the per-row mean and 1/std) and the
 * backward another, which also sums the weight and bias gradients:
 *   xhat = (x - mean) rstd,  dxhat = dy w,
 *   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dw = sum dy xhat,  db = sum dy.
 * Row sums accumulate in double precision, in a fixed order (deterministic). On other backends it
 * is `layerNormComposite`, the same computation as tfjs ops.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { TensorInfoLike, WasmHeapBackend } from "./blas_matmul.ts";

/** LayerNorm over the last axis with the biased variance, as torch, in tfjs ops (every backend without the kernels). */
export function layerNormComposite(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), -1, true);
    return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), w), b);
  });
}

export const LAYER_NORM_KERNEL = "BlasLayerNorm";
export const LAYER_NORM_GRAD_KERNEL = "BlasLayerNormGrad";

function view(b: WasmHeapBackend, t: TensorInfoLike, n: number): Float32Array {
  return new Float32Array(b.wasm.HEAPU8.buffer, b.dataIdMap.get(t.dataId).memoryOffset, n);
}

/** Register the forward and gradient kernels for `backendName` (a wasm-heap backend). */
export function registerLayerNormKernels(backendName: string): void {
  tf.registerKernel({
    kernelName: LAYER_NORM_KERNEL,
    backendName,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, w, b } = inputs as unknown as Record<"x" | "w" | "b", TensorInfoLike>;
      const eps = (attrs as unknown as { eps: number }).eps;
      const be = backend as unknown as WasmHeapBackend;
      const d = x.shape[x.shape.length - 1], n = x.shape.reduce((p, s) => p * s, 1), rows = n / d;
      const y = be.makeOutput(x.shape, "float32");
      const mean = be.makeOutput([rows], "float32"), rstd = be.makeOutput([rows], "float32");
      const [xs, ws, bs, ys, ms, rs] = [
        view(be, x, n),
        view(be, w, d),
        view(be, b, d),
        view(be, y, n),
        view(be, mean, rows),
        view(be, rstd, rows),
      ];
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        // One pass for both moments: in double precision E[x^2] - mean^2 loses nothing that
        // float32 inputs carry unless |mean| / std > 1e4.
        let s = 0, s2 = 0;
        for (let i = 0; i < d; i++) {
          const v = xs[o + i];
          s += v;
          s2 += v * v;
        }
        const mu = s / d;
        const inv = 1 / Math.sqrt(Math.max(s2 / d - mu * mu, 0) + eps);
        for (let i = 0; i < d; i++) ys[o + i] = (xs[o + i] - mu) * inv * ws[i] + bs[i];
        ms[r] = mu;
        rs[r] = inv;
      }
      return [y, mean, rstd] as tf.TensorInfo[];
    },
  });
  tf.registerKernel({
    kernelName: LAYER_NORM_GRAD_KERNEL,
    backendName,
    kernelFunc: ({ inputs, backend }) => {
      const { x, w, mean, rstd, dy } = inputs as unknown as Record<"x" | "w" | "mean" | "rstd" | "dy", TensorInfoLike>;
      const be = backend as unknown as WasmHeapBackend;
      const d = x.shape[x.shape.length - 1], n = x.shape.reduce((p, s) => p * s, 1), rows = n / d;
      const dx = be.makeOutput(x.shape, "float32");
      const dw = be.makeOutput([d], "float32"), db = be.makeOutput([d], "float32");
      const [xs, ws, ms, rs, gs, dxs] = [
        view(be, x, n),
        view(be, w, d),
        view(be, mean, rows),
        view(be, rstd, rows),
        view(be, dy, n),
        view(be, dx, n),
      ];
      const sw = new Float64Array(d), sb = new Float64Array(d);
      for (let r = 0, o = 0; r < rows; r++, o += d) {
        const mu = ms[r], inv = rs[r];
        let s1 = 0, s2 = 0;
        for (let i = 0; i < d; i++) {
          const xh = (xs[o + i] - mu) * inv, g = gs[o + i], dxh = g * ws[i];
          s1 += dxh;
          s2 += dxh * xh;
          sw[i] += g * xh;
          sb[i] += g;
        }
        const m1 = s1 / d, m2 = s2 / d;
        for (let i = 0; i < d; i++) {
          const xh = (xs[o + i] - mu) * inv;
          dxs[o + i] = inv * (gs[o + i] * ws[i] - m1 - xh * m2);
        }
      }
      view(be, dw, d).set(sw);
      view(be, db, d).set(sb);
      return [dx, dw, db] as tf.TensorInfo[];
    },
  });
}

function makeFused(eps: number) {
  // tfjs types customGrad's arguments as one variadic list of tensors and the save function.
  return tf.customGrad(
    ((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
      const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM_KERNEL, { x, w, b }, { eps }) as tf.Tensor[];
      save([x, w, mean, rstd]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, [sx, sw, sm, sr]: tf.Tensor[]) =>
          tf.engine().runKernel(LAYER_NORM_GRAD_KERNEL, { x: sx, w: sw, mean: sm, rstd: sr, dy }, {}) as tf.Tensor[],
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0],
  );
}

const byEps = new Map<number, ReturnType<typeof makeFused>>();

/** LayerNorm over the last axis (biased variance, as torch); fused where the kernels are registered. */
export function fusedLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  const d = x.shape[x.rank - 1];
  if (x.dtype !== "float32" || w.rank !== 1 || b.rank !== 1 || w.shape[0] !== d || b.shape[0] !== d) {
    return layerNormComposite(x, w, b, eps);
  }
  if (!tf.getKernel(LAYER_NORM_KERNEL, tf.getBackend())) return layerNormComposite(x, w, b, eps);
  let f = byEps.get(eps);
  if (!f) byEps.set(eps, f = makeFused(eps));
  return f(x, w, b);
}
