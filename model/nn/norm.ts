/**
 * Normalisation layers: torch `nn.RMSNorm` (CAPI) and `nn.LayerNorm` (MAE, SimMIM).
 *
 * @module
 */
import { tf } from "../engine.ts";

/** `x / sqrt(mean(x^2) + eps) * w` over the last axis; `w = null` for the weight-free final norms. */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor | null, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), -1, true);
    const y = tf.mul(x, tf.rsqrt(tf.add(ms, eps)));
    return w ? tf.mul(y, w) : y;
  });
}

/** LayerNorm over the last axis with the biased variance, as torch. */
export function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const centered = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centered), -1, true);
    return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), w), b);
  });
}
