/**
 * The system BLAS through Deno's FFI: `cblas_sgemm` on addresses inside the wasm heap.
 *
 * Looked up in this order: `$BLAS_LIB` (a path or soname), OpenBLAS (`libopenblas.so.0`, Debian's
 * `libopenblas0-pthread`; `libopenblas.so`, `libopenblas.dylib`), then Apple's Accelerate framework.
 * When none loads, `loadBlas()` returns `null` and `blasUnavailableReason()` says why, so callers can
 * fall back to the wasm kernels with a one-line notice.
 *
 * Determinism: OpenBLAS splits an sgemm between threads over the rows and columns of the output,
 * never over the inner dimension, so each output element is summed in the same order by the same
 * micro-kernel whatever the load; the result depends only on the thread count, which we set
 * explicitly (`BLAS_THREADS`, default: the number of logical cores) instead of inheriting
 * `OPENBLAS_NUM_THREADS` or the library's own guess.
 *
 * @module
 */

/** CBLAS enum values (cblas.h). */
export const CBLAS_ROW_MAJOR = 101;
export const CBLAS_NO_TRANS = 111;
export const CBLAS_TRANS = 112;

const SGEMM_PARAMS = [
  "i32", // order
  "i32", // transA
  "i32", // transB
  "i32", // M
  "i32", // N
  "i32", // K
  "f32", // alpha
  // The three matrices are passed as raw addresses (usize, ABI-identical to `float*` on the 64-bit
  // targets Deno supports): they point into the wasm heap, and numbers keep the call on V8's fast path.
  "usize", // A
  "i32", // lda
  "usize", // B
  "i32", // ldb
  "f32", // beta
  "usize", // C
  "i32", // ldc
] as const;

const SYMBOLS = {
  cblas_sgemm: { parameters: SGEMM_PARAMS, result: "void" },
  // order, trans, M, N, alpha, A, lda, X, incX, beta, Y, incY (addresses as usize, as above)
  cblas_sgemv: {
    parameters: ["i32", "i32", "i32", "i32", "f32", "usize", "i32", "usize", "i32", "f32", "usize", "i32"],
    result: "void",
  },
} as const;

const OPENBLAS_THREADS = {
  openblas_set_num_threads: { parameters: ["i32"], result: "void" },
  openblas_get_num_threads: { parameters: [], result: "i32" },
  openblas_get_config: { parameters: [], result: "pointer" },
} as const;

/** Row-major `C = alpha op(A) op(B) + beta C` on raw addresses (bytes). */
export type Sgemm = (
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: number,
  lda: number,
  b: number,
  ldb: number,
  beta: number,
  c: number,
  ldc: number,
) => void;

/** Row-major `y = alpha op(A) x + beta y` (A is M x N before op), unit strides, raw addresses. */
export type Sgemv = (
  trans: boolean,
  m: number,
  n: number,
  alpha: number,
  a: number,
  lda: number,
  x: number,
  beta: number,
  y: number,
) => void;

/** A loaded BLAS: its sgemm, where it came from and how many threads it uses. */
export interface Blas {
  sgemm: Sgemm;
  sgemv: Sgemv;
  /** The path or soname that loaded, e.g. `libopenblas.so.0`. */
  library: string;
  /** e.g. `OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64`, or `Accelerate`. */
  description: string;
  /** Threads the library was told to use (null where it cannot be set, e.g. Accelerate). */
  threads: number | null;
  /** The address of the first byte of `view`'s buffer, for computing addresses into the wasm heap. */
  addressOf(view: ArrayBufferView): number;
}

const CANDIDATES = [
  "libopenblas.so.0",
  "libopenblas.so",
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "libopenblas.dylib",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/System/Library/Frameworks/Accelerate.framework/Accelerate",
];

/** Install hint shown when no BLAS library is found. */
export const BLAS_INSTALL_HINT = "install OpenBLAS (Debian/Ubuntu: `apt-get install libopenblas0-pthread`; " +
  "macOS: Accelerate is built in) or point BLAS_LIB at a library exporting cblas_sgemm";

let cached: Blas | null | undefined;
let reason = "";

/** Why `loadBlas()` returned null (empty when it did not). */
export function blasUnavailableReason(): string {
  return reason;
}

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name) ?? undefined;
  } catch {
    return undefined; // no --allow-env: use the defaults
  }
}

/** Threads for the BLAS: `BLAS_THREADS`, else every logical core (why: the matrix products dominate). */
export function blasThreadsWanted(): number {
  const v = envOr("BLAS_THREADS");
  if (v !== undefined) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`BLAS_THREADS: expected a positive integer, got '${v}'`);
    return n;
  }
  return navigator.hardwareConcurrency || 1;
}

/** Load the system BLAS once; null (with `blasUnavailableReason()`) when there is none. */
export function loadBlas(): Blas | null {
  if (cached !== undefined) return cached;
  const tried: string[] = [];
  const explicit = envOr("BLAS_LIB");
  for (const path of explicit ? [explicit] : CANDIDATES) {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch (e) {
      tried.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
      continue;
    }
    cached = wrap(lib, path);
    return cached;
  }
  reason = `no BLAS library found (${tried.join("; ")}); ${BLAS_INSTALL_HINT}`;
  cached = null;
  return null;
}

function wrap(lib: Deno.DynamicLibrary<typeof SYMBOLS>, path: string): Blas {
  let threads: number | null = null;
  let description = path.includes("Accelerate") ? "Accelerate" : path;
  try {
    const ob = Deno.dlopen(path, OPENBLAS_THREADS);
    ob.symbols.openblas_set_num_threads(blasThreadsWanted());
    threads = ob.symbols.openblas_get_num_threads();
    const cfg = ob.symbols.openblas_get_config();
    if (cfg) description = new Deno.UnsafePointerView(cfg).getCString();
  } catch {
    // Not OpenBLAS (Accelerate, reference BLAS): no thread control; results still deterministic per machine.
  }
  // Deno types usize as bigint but accepts numbers (addresses here are far below 2^53).
  const f = lib.symbols.cblas_sgemm as unknown as (...args: number[]) => void;
  const sgemm: Sgemm = (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
    f(
      CBLAS_ROW_MAJOR,
      transA ? CBLAS_TRANS : CBLAS_NO_TRANS,
      transB ? CBLAS_TRANS : CBLAS_NO_TRANS,
      m,
      n,
      k,
      alpha,
      a,
      lda,
      b,
      ldb,
      beta,
      c,
      ldc,
    );
  const g = lib.symbols.cblas_sgemv as unknown as (...args: number[]) => void;
  const sgemv: Sgemv = (trans, m, n, alpha, a, lda, x, beta, y) =>
    g(CBLAS_ROW_MAJOR, trans ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, alpha, a, lda, x, 1, beta, y, 1);
  const addressOf = (view: ArrayBufferView) =>
    Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(view as Uint8Array<ArrayBuffer>))) - view.byteOffset;
  return { sgemm, sgemv, library: path, description, threads, addressOf };
}
