/**
 * The tensor engine: the only module that imports tfjs and chooses a backend.
 *
 * Everything else imports `tf` from here, so that the backend (`wasm`, `cpu` or
 * `tensorflow`) is a runtime choice and the gradient fixes below are always in
 * force before the first op runs.
 *
 * Two gradients are replaced, both for speed or availability on the wasm backend:
 * - `BatchMatMul`: tfjs differentiates `a @ b` into products with `transposeA/B`,
 *   which the wasm kernel runs at 1-2 GFLOP/s against ~20 for the plain product
 *   (measured on 2 cores, 512^3). Transposing explicitly first is 4x faster in training.
 * - `GatherV2`: tfjs differentiates gather through `UnsortedSegmentSum`, a kernel the
 *   wasm backend does not have. `ScatterNd` (which sums duplicate indices) does the same.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

export { tf };

/**
 * Backends the suite can run on. `tensorflow` is tfjs-node-gpu (or tfjs-node), loaded on demand.
 * `blas` is `wasm` with matrix products by the system BLAS (model/kernels/blas_backend.ts); without
 * a BLAS library it prints one notice and runs on `wasm`.
 */
export const BACKENDS = ["wasm", "cpu", "tensorflow", "blas", "webgpu"] as const;
export type Backend = typeof BACKENDS[number];

/** Install hint printed when the `tensorflow` backend is asked for but not installed. */
export const TENSORFLOW_INSTALL_HINT =
  "the 'tensorflow' backend needs @tensorflow/tfjs-node-gpu (CUDA 11.2 and cuDNN 8.1 on the machine) " +
  "or @tensorflow/tfjs-node (CPU), whose install script downloads libtensorflow. Install it with " +
  "`deno install --allow-scripts=npm:@tensorflow/tfjs-node-gpu` (or `npm:@tensorflow/tfjs-node`), " +
  "or choose --backend wasm";

let gradientsRegistered = false;
/** The backend last asked for when it is not the one running (`blas` without a BLAS library runs `wasm`). */
let fallbackFrom: Backend | null = null;

/** Versions of the backend packages `initBackend` loaded (records: what computed a number). */
const loadedVersions: Record<string, string> = {};

/** The backend asked for when `initBackend` fell back to another one, else null: records name what actually ran. */
export function backendFallback(): Backend | null {
  return fallbackFrom;
}

/** `@tensorflow/tfjs-core` and the versions of the backend packages loaded so far (tfjs-backend-wasm, ...). */
export function backendVersions(): Record<string, string> {
  return { "@tensorflow/tfjs-core": tf.version["tfjs-core"], ...loadedVersions };
}

/** Swap the last two axes of `x` (rank >= 2) with an explicit transpose. */
export function swapLastAxes(x: tf.Tensor): tf.Tensor {
  const r = x.rank;
  if (r === 2) return tf.transpose(x);
  if (r === 3) return tf.transpose(x, [0, 2, 1]);
  // Fold leading axes into one: rank-3 transposes are far cheaper than rank >= 5 on wasm.
  const [m, n] = x.shape.slice(-2);
  const lead = x.shape.slice(0, -2);
  const flat = tf.reshape(x, [-1, m, n]);
  return tf.reshape(tf.transpose(flat, [0, 2, 1]), [...lead, n, m]);
}

/** Sum a broadcast gradient back down to `shape` (leading axes only, as matMul broadcasts). */
function reduceTo(g: tf.Tensor, shape: number[]): tf.Tensor {
  if (g.rank === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const extra = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank - 2; i++) {
    if (i < extra || shape[i - extra] === 1 && g.shape[i] !== 1) axes.push(i);
  }
  return tf.reshape(tf.sum(g, axes), shape);
}

function registerGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: tf.BatchMatMul,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
      const g = dy as tf.Tensor;
      if (tf.getBackend() === "blas") {
        // BLAS transposes for free: tfjs's own form, no explicit transposes.
        const m = (x: tf.Tensor, y: tf.Tensor, tx: boolean, ty: boolean) => () => tf.matMul(x, y, tx, ty);
        const [da, db] = !transposeA && !transposeB
          ? [m(g, b, false, true), m(a, g, true, false)]
          : !transposeA
          ? [m(g, b, false, false), m(g, a, true, false)]
          : !transposeB
          ? [m(b, g, false, true), m(a, g, false, false)]
          : [m(b, g, true, true), m(g, a, true, true)];
        return { a: () => reduceTo(da(), a.shape), b: () => reduceTo(db(), b.shape) };
      }
      const mm = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
      const t = swapLastAxes;
      // y = op(a) @ op(b); the four cases of d/da and d/db with explicit transposes.
      let da: () => tf.Tensor, db: () => tf.Tensor;
      if (!transposeA && !transposeB) {
        da = () => mm(g, t(b));
        db = () => mm(t(a), g);
      } else if (!transposeA && transposeB) {
        da = () => mm(g, b);
        db = () => mm(t(g), a);
      } else if (transposeA && !transposeB) {
        da = () => mm(b, t(g));
        db = () => mm(a, g);
      } else {
        da = () => mm(t(b), t(g));
        db = () => mm(t(g), t(a));
      }
      return { a: () => reduceTo(da(), a.shape), b: () => reduceTo(db(), b.shape) };
    },
  });
  tf.registerGradient({
    kernelName: tf.GatherV2,
    inputsToSave: ["x", "indices"],
    gradFunc: (dy, saved, attrs) => {
      const [x, indices] = saved;
      const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
      if (batchDims !== 0) {
        throw new Error(`engine: gather gradient supports batchDims 0 only, got ${batchDims}`);
      }
      const ax = axis < 0 ? axis + x.rank : axis;
      return {
        x: () => {
          // dy: x.shape[:ax] + indices.shape + x.shape[ax+1:]; move the gathered axis first.
          const n = indices.size;
          const outer = x.shape.slice(0, ax);
          const inner = x.shape.slice(ax + 1);
          const vals = tf.reshape(dy as tf.Tensor, [...outer, n, ...inner]);
          const perm = [ax, ...outer.map((_, i) => i), ...inner.map((_, i) => ax + 1 + i)];
          const moved = tf.transpose(vals, perm);
          const idx = tf.reshape(tf.cast(indices, "int32"), [n, 1]);
          const scattered = tf.scatterND(idx, moved, [x.shape[ax], ...outer, ...inner]);
          const undo = perm.map((_, i) => perm.indexOf(i));
          return tf.transpose(scattered, undo);
        },
        indices: () => tf.zerosLike(indices),
      };
    },
  });
}

/** Folder holding the wasm binaries of the installed tfjs-backend-wasm, with a trailing slash. */
function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@tensorflow/tfjs-backend-wasm")) + "/";
}

/**
 * Select and initialise a backend. Idempotent; call once at program start.
 *
 * @example
 * ```ts
 * import { initBackend, tf } from "./engine.ts";
 * await initBackend("cpu");
 * tf.tidy(() => tf.add(1, 2));
 * ```
 */
export async function initBackend(name: Backend = "wasm"): Promise<void> {
  registerGradients();
  fallbackFrom = null;
  // Silences tfjs's "install tfjs-node" banner (printed through its prod-aware logger).
  tf.env().set("PROD", true);
  if (tf.getBackend() === name) return;
  switch (name) {
    case "cpu":
      break;
    case "wasm": {
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      wasm.setWasmPaths(wasmDir());
      loadedVersions["@tensorflow/tfjs-backend-wasm"] = wasm.version_wasm;
      break;
    }
    case "webgpu": {
      // tfjs-backend-webgpu on Deno's WebGPU (Vulkan); fails naming the missing driver piece (model/webgpu/).
      const { loadWebGpu } = await import("./webgpu/loader.ts");
      const a = await loadWebGpu();
      // The package exports no version; deno.json pins every tfjs package to tfjs-core's.
      loadedVersions["@tensorflow/tfjs-backend-webgpu"] = tf.version_core;
      loadedVersions.webgpuAdapter = `${a.vendor} ${a.architecture} ${a.device} (${a.description})`;
      break;
    }
    case "blas": {
      await initBackend("wasm");
      const { registerBlasBackend } = await import("./kernels/blas_backend.ts");
      if (!registerBlasBackend()) {
        fallbackFrom = "blas"; // no BLAS library: it printed why; we stay on wasm
        return;
      }
      break;
    }
    case "tensorflow": {
      try {
        const node = await import("@tensorflow/tfjs-node-gpu");
        loadedVersions["@tensorflow/tfjs-node-gpu"] = node.version["tfjs-node"] ?? "unknown";
      } catch (gpuError) {
        try {
          const node = await import(["@tensorflow", "tfjs-node"].join("/"));
          loadedVersions["@tensorflow/tfjs-node"] = node.version?.["tfjs-node"] ?? "unknown";
        } catch {
          throw new Error(`${TENSORFLOW_INSTALL_HINT} (import failed: ${(gpuError as Error).message})`);
        }
      }
      break;
    }
    default: {
      const never: never = name;
      throw new Error(`unknown backend '${never}': expected one of ${BACKENDS.join(", ")}`);
    }
  }
  if (!(await tf.setBackend(name))) {
    throw new Error(`engine: backend '${name}' failed to initialise`);
  }
  await tf.ready();
}

/** Parse a `--backend` value with an error that lists the valid ones. */
export function parseBackend(value: string | undefined): Backend {
  const v = value ?? "wasm";
  if ((BACKENDS as readonly string[]).includes(v)) return v as Backend;
  throw new Error(`--backend: unknown backend '${v}'; expected one of ${BACKENDS.join(", ")}`);
}
