/**
 * The transformer MLP: `fc2(GELU(fc1 x))` with exact (erf) GELU, hidden width `ratio*D`.
 *
 * @module
 */
import type { Ops, Tensor } from "../ops/ops.ts";
import { linear } from "./linear.ts";

export interface MlpWeights {
  fc1: Tensor;
  fc2: Tensor;
  fc1Bias?: Tensor | null;
  fc2Bias?: Tensor | null;
}

/** x: `[..., D]` -> `[..., D]`. Biases are optional: CAPI has none, MAE and SimMIM have both. */
export function mlp(o: Ops, x: Tensor, w: MlpWeights): Tensor {
  return o.tidy(() => linear(o, o.gelu(linear(o, x, w.fc1, w.fc1Bias)), w.fc2, w.fc2Bias));
}
