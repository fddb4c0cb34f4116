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
import type { Ops, Tensor } from "../ops/ops.ts";

/** `[B, L, h*hd]` -> `[B, h, L, hd]`. */
export function splitHeads(o: Ops, x: Tensor, heads: number): Tensor {
  const [b, l, d] = x.shape;
  if (d % heads !== 0) throw new Error(`splitHeads: width ${d} is not divisible by ${heads} heads`);
  return o.transpose(o.reshape(x, [b, l, heads, d / heads]), [0, 2, 1, 3]);
}

/** `[B, h, L, hd]` -> `[B, L, h*hd]`. */
export function mergeHeads(o: Ops, x: Tensor): Tensor {
  const [b, h, l, hd] = x.shape;
  return o.reshape(o.transpose(x, [0, 2, 1, 3]), [b, l, h * hd]);
}

/**
 * `softmax(q k^T * scale + bias) v`.
 * q: `[B, h, Lq, hd]`, k and v: `[B, h, Lk, hd]`, bias broadcastable to `[B, h, Lq, Lk]`.
 * `scale` defaults to `hd^-0.5`.
 */
export function scaledDotProductAttention(
  o: Ops,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: { bias?: Tensor | null; scale?: number } = {},
): Tensor {
  return o.tidy(() => {
    const hd = q.shape[q.shape.length - 1];
    const scale = opts.scale ?? 1 / Math.sqrt(hd);
    let logits = o.matMul(o.mul(q, scale), k, false, true); // [B, h, Lq, Lk]
    if (opts.bias) logits = o.add(logits, opts.bias);
    return o.matMul(o.softmax(logits, -1), v); // [B, h, Lq, hd]
  });
}
