/**
 * The transformer MLP: `fc2(GELU(fc1 x))` with exact (erf) GELU, hidden width `ratio*D`.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { linear } from "./linear.ts";

/** Exact GELU, `0.5 x (1 + erf(x / sqrt 2))` (torch `nn.GELU()` default, not the tanh form). */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

export interface MlpWeights {
  fc1: tf.Tensor;
  fc2: tf.Tensor;
  fc1Bias?: tf.Tensor | null;
  fc2Bias?: tf.Tensor | null;
}

/** x: `[..., D]` -> `[..., D]`. Biases are optional: CAPI has none, MAE and SimMIM have both. */
export function mlp(x: tf.Tensor, w: MlpWeights): tf.Tensor {
  return tf.tidy(() => linear(gelu(linear(x, w.fc1, w.fc1Bias)), w.fc2, w.fc2Bias));
}
