/**
 * `linear`: torch `nn.Linear` on tensors of any rank, with a `[out, in]` weight.
 *
 * The weight is transposed explicitly before the product: tfjs-wasm runs
 * `matMul(x, w, false, true)` 5-10x slower than a plain product.
 *
 * @module
 */
import { tf } from "../engine.ts";

/** `x @ w^T + b` over the last axis. x: `[..., in]`, w: `[out, in]`, b: `[out]`. */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const [out, inp] = w.shape;
    if (x.shape[x.rank - 1] !== inp) {
      throw new Error(`linear: input has ${x.shape[x.rank - 1]} features, weight [${w.shape}] expects ${inp}`);
    }
    const lead = x.shape.slice(0, -1);
    let y = tf.matMul(tf.reshape(x, [-1, inp]), tf.transpose(w)); // [n, out]
    if (b) y = tf.add(y, b);
    return tf.reshape(y, [...lead, out]);
  });
}
