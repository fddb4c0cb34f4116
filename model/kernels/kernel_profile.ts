/**
 * Per-kernel wall-clock profile of a tfjs backend, for `deno task speed`'s time shares.
 *
 * Every kernel registered for the backend is re-registered wrapped in a timer (the wasm and blas
 * kernels are synchronous, so wall time is the kernel's time); `stop()` puts the originals back.
 * Gradients run the same kernels, so forward and backward are both counted. Kernels called from
 * inside other kernels (wasm's Reshape inside BatchMatMul) bypass the registry and are counted in
 * their caller.
 *
 * @module
 */
import { tf } from "../engine.ts";

/** Time and call count of one kernel. */
export interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
}

/** Coarse kinds for the time-share summary. */
export const KERNEL_KINDS: Record<string, string[]> = {
  matmul: ["BatchMatMul", "_FusedMatMul"],
  transpose: ["Transpose"],
  copy: ["Slice", "Concat", "SplitV", "Pack", "Unpack", "Tile", "Reshape", "Identity", "Cast", "GatherV2", "ScatterNd"],
  softmax: ["Softmax", "Max", "Exp", "LogSoftmax"],
  reduce: ["Sum", "Mean", "Prod", "Min"],
  gelu: ["Erf"],
};

/** The kind of `kernel` (`elementwise` when not listed in KERNEL_KINDS). */
export function kernelKind(kernel: string): string {
  for (const [kind, names] of Object.entries(KERNEL_KINDS)) if (names.includes(kernel)) return kind;
  return "elementwise";
}

export class KernelProfile {
  readonly backend: string;
  readonly #times = new Map<string, KernelTime>();
  readonly #originals: tf.KernelConfig[] = [];

  /** Start timing every kernel of `backend`. */
  constructor(backend: string) {
    this.backend = backend;
    for (const config of tf.getKernelsForBackend(backend)) {
      this.#originals.push(config);
      const entry: KernelTime = { kernel: config.kernelName, ms: 0, calls: 0 };
      this.#times.set(config.kernelName, entry);
      const inner = config.kernelFunc;
      tf.unregisterKernel(config.kernelName, backend);
      tf.registerKernel({
        ...config,
        kernelFunc: (args) => {
          const t0 = performance.now();
          const out = inner(args);
          entry.ms += performance.now() - t0;
          entry.calls++;
          return out;
        },
      });
    }
  }

  /** Clear the counters (e.g. after warm-up). */
  reset(): void {
    for (const t of this.#times.values()) t.ms = t.calls = 0;
  }

  /** Kernels with at least one call, slowest first. */
  kernels(): KernelTime[] {
    return [...this.#times.values()].filter((t) => t.calls > 0).sort((a, b) => b.ms - a.ms);
  }

  /** Milliseconds per kind, slowest first. */
  kinds(): { kind: string; ms: number }[] {
    const by = new Map<string, number>();
    for (const t of this.kernels()) by.set(kernelKind(t.kernel), (by.get(kernelKind(t.kernel)) ?? 0) + t.ms);
    return [...by].map(([kind, ms]) => ({ kind, ms })).sort((a, b) => b.ms - a.ms);
  }

  /** Restore the untimed kernels. */
  stop(): void {
    for (const config of this.#originals) {
      tf.unregisterKernel(config.kernelName, this.backend);
      tf.registerKernel(config);
    }
    this.#originals.length = 0;
  }
}
