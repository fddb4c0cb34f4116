/**
 * Host-memory reuse for the per-step outputs of onnxruntime-node.
 *
 * onnxruntime-node 1.30 returns every output in a freshly allocated ArrayBuffer (pre-allocated
 * outputs are written and then copied again; upstream microsoft/onnxruntime#32346 would change
 * that). A training step returns the new parameters and both AdamW moments, 32 MiB for the
 * reference ViT. With glibc's default dynamic mmap threshold each such buffer (up to 0.6 MiB) is
 * a fresh mmap, so every step page-faults all 32 MiB in again: measured 110-160 CPU-ms per step
 * on our VM. Two changes make it a few ms:
 *
 * - `keepFreedMemory()`: glibc `mallopt` (through Deno's FFI) with a fixed 32 MiB mmap threshold
 *   and a 256 MiB trim threshold, so freed buffers stay in the heap for the next step. This is a
 *   process-wide tuning from a library, a hack: acceptable because a training process holds its
 *   peak memory anyway, and it only changes where glibc takes memory from, never values. Without
 *   glibc or FFI permission it does nothing (one slower step, no error).
 * - `release(array)`: detach a buffer the engine no longer needs (`ArrayBuffer.transfer(0)`), so
 *   it is freed now rather than at V8's next garbage collection.
 *
 * @module
 */

let tuned: boolean | null = null;

/** Tune glibc once per process (see the header); returns whether it took effect. */
export function keepFreedMemory(): boolean {
  if (tuned !== null) return tuned;
  tuned = false;
  if (Deno.build.os !== "linux") return tuned;
  try {
    const libc = Deno.dlopen("libc.so.6", { mallopt: { parameters: ["i32", "i32"], result: "i32" } });
    const M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
    tuned = libc.symbols.mallopt(M_MMAP_THRESHOLD, 32 << 20) === 1 &&
      libc.symbols.mallopt(M_TRIM_THRESHOLD, 256 << 20) === 1;
    libc.close();
  } catch {
    // Not glibc, or no --allow-ffi: buffers are simply freed by the garbage collector.
  }
  return tuned;
}

/** Free the memory behind `a` now; `a` must not be used afterwards (it becomes empty). */
export function release(a: Float32Array): void {
  const buf = a.buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
  if (buf.byteLength > 0 && typeof buf.transfer === "function") buf.transfer(0);
}
