/**
 * Zero-copy `Identity` and same-dtype `Cast` for the wasm heap.
 *
 * tfjs clones (kernel `Identity`) every tensor it saves for the backward pass, and `tf.cast` to the
 * same dtype is an `Identity` in disguise. tfjs-backend-wasm implements both as a full copy into a
 * fresh heap buffer, which in a ViT step means ~500 copies and a second copy of every saved
 * activation (half the 3 GB peak heap at batch 64). tfjs kernels never write into their inputs,
 * so sharing the buffer with a reference count, as wasm's own `Reshape` and the cpu backend's
 * `Identity` do, is safe.
 *
 * @module
 */
import type { TensorInfoLike } from "./blas_matmul.ts";

/** The wasm backend's reference counting. */
export interface RefCountingBackend {
  incRef(dataId: object): void;
}

/** A view of `x`'s buffer with one more reference. */
export function shareData(backend: RefCountingBackend, x: TensorInfoLike, dtype = x.dtype): TensorInfoLike {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype };
}
