/**
 * `linear`: torch `nn.Linear` on tensors of any rank, with a `[out, in]` weight.
 *
 * One product `x @ w^T` on the flattened rows: the engine transposes for free (BLAS, ONNX `Gemm`)
 * or explicitly where a transposed product is slow (tfjs-wasm, model/ops/tf_ops.ts).
 *
 * @module
 */
import type { Ops, Tensor } from "../ops/ops.ts";

/** `x @ w^T + b` over the last axis. x: `[..., in]`, w: `[out, in]`, b: `[out]`. */
export function linear(o: Ops, x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const [out, inp] = w.shape;
  if (x.shape[x.shape.length - 1] !== inp) {
    throw new Error(`linear: input has ${x.shape[x.shape.length - 1]} features, weight [${w.shape}] expects ${inp}`);
  }
  const lead = x.shape.slice(0, -1);
  let y = o.matMul(o.reshape(x, [-1, inp]), w, false, true); // [n, out]
  if (b) y = o.add(y, b);
  return o.reshape(y, [...lead, out]);
}
