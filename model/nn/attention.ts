/**
 * Multi-head scaled dot-product attention pieces shared by the three ViTs.
 *
 * Heads are split head-major (channel `c` of head `t` is `t*hd + c`, as every reference
 * implementation does). Variants plug in from outside: RoPE is applied by the caller to
 * the split q and k (CAPI), a relative position bias is added to the logits (SimMIM),
 * and q/k/v come from separate or fused projections (CAPI / MAE, SimMIM).
 *
 * @module
 */
import { tf } from "../engine.ts";

/** `[B, L, h*hd]` -> `[B, h, L, hd]`. */
export function splitHeads(x: tf.Tensor, heads: number): tf.Tensor {
  const [b, l, d] = x.shape;
  if (d % heads !== 0) throw new Error(`splitHeads: width ${d} is not divisible by ${heads} heads`);
  return tf.transpose(tf.reshape(x, [b, l, heads, d / heads]), [0, 2, 1, 3]);
}

/** `[B, h, L, hd]` -> `[B, L, h*hd]`. */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [b, h, l, hd] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, l, h * hd]);
}

/**
 * `softmax(q k^T * scale + bias) v`.
 * q: `[B, h, Lq, hd]`, k and v: `[B, h, Lk, hd]`, bias broadcastable to `[B, h, Lq, Lk]`.
 * `scale` defaults to `hd^-0.5`.
 */
export function scaledDotProductAttention(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  opts: { bias?: tf.Tensor | null; scale?: number } = {},
): tf.Tensor {
  return tf.tidy(() => {
    const hd = q.shape[q.rank - 1] as number;
    const scale = opts.scale ?? 1 / Math.sqrt(hd);
    // Explicit transpose: the engine's fast path (see engine.ts).
    let logits = tf.matMul(tf.mul(q, scale), tf.transpose(k, [0, 1, 3, 2])); // [B, h, Lq, Lk]
    if (opts.bias) logits = tf.add(logits, opts.bias);
    return tf.matMul(tf.softmax(logits, -1), v); // [B, h, Lq, hd]
  });
}
