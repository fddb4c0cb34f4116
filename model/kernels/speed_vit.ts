/**
 * The reference ViT of the speed benchmark (issue 8), twin of `bench/speed_torch.py`.
 *
 * Plain pre-LN ViT on 32x32 images with 4x4 patches (64 tokens), width 192, depth 6, 3 heads,
 * MLP 4x: a linear patch embedding on flattened patches, learned positions, a final LayerNorm and a
 * linear pixel head regressing each patch's 48 values with MSE. Built from model/nn blocks on `TfOps`,
 * so a faster kernel here is a faster kernel for CAPI, MAE and SimMIM too.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { constant, normal, zeros } from "../init.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { linear, mergeHeads, mlp, scaledDotProductAttention, splitHeads } from "../nn/mod.ts";
import type { Tensor } from "../ops/ops.ts";
import { fromTf, TfOps, toTf } from "../ops/tf_ops.ts";

export interface SpeedVitConfig {
  /** Image side (pixels); 32 as CIFAR. */
  img: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /**
   * `nn`: GELU and LayerNorm as tfjs compositions (`TfOps` with `fused: false`); `fused`: the
   * kernels of fused_gelu.ts and fused_layer_norm.ts (one kernel each way on the blas backend).
   */
  blocks?: "nn" | "fused";
}

/** The reference model of issue 8. */
export const SPEED_VIT: SpeedVitConfig = { img: 32, patch: 4, dim: 192, depth: 6, heads: 3, mlpRatio: 4 };

/** The ViT's parameters (timm names) and its training loss. */
export class SpeedVit {
  readonly cfg: SpeedVitConfig;
  readonly params = new ParamStore();

  constructor(cfg: SpeedVitConfig, seed = 0) {
    this.cfg = cfg;
    const rng = Rng.from(seed, "speed_vit");
    const d = cfg.dim, hid = cfg.mlpRatio * d, pdim = 3 * cfg.patch * cfg.patch;
    const tokens = (cfg.img / cfg.patch) ** 2;
    // Weights ~ N(0, 0.02) (timm's trunc-normal std): the speed benchmark only needs sane activations.
    const lin = (name: string, out: number, inp: number) => {
      this.params.add(`${name}.weight`, normal(rng.fork(name), [out, inp], 0.02));
      this.params.add(`${name}.bias`, zeros([out]));
    };
    const ln = (name: string) => {
      this.params.add(`${name}.weight`, constant([d], 1));
      this.params.add(`${name}.bias`, zeros([d]));
    };
    lin("patch_embed", d, pdim);
    this.params.add("pos_embed", normal(rng.fork("pos"), [1, tokens, d], 0.02));
    for (let i = 0; i < cfg.depth; i++) {
      ln(`blocks.${i}.norm1`);
      lin(`blocks.${i}.attn.qkv`, 3 * d, d);
      lin(`blocks.${i}.attn.proj`, d, d);
      ln(`blocks.${i}.norm2`);
      lin(`blocks.${i}.mlp.fc1`, hid, d);
      lin(`blocks.${i}.mlp.fc2`, d, hid);
    }
    ln("norm");
    lin("head", pdim, d);
  }

  /** MSE of the pixel head against `patches` `[B, N, p*p*3]`. */
  loss(patches: tf.Tensor): tf.Scalar {
    const o = new TfOps({ fused: this.cfg.blocks === "fused" });
    return tf.tidy(() => {
      const p = (n: string) => fromTf(this.params.get(n));
      const lin = (x: Tensor, n: string) => linear(o, x, p(`${n}.weight`), p(`${n}.bias`));
      const ln = (x: Tensor, n: string) => o.layerNorm(x, p(`${n}.weight`), p(`${n}.bias`), 1e-6);
      const target = fromTf(patches);
      let x = o.add(lin(target, "patch_embed"), p("pos_embed")); // [B, N, D]
      for (let i = 0; i < this.cfg.depth; i++) {
        const b = `blocks.${i}`;
        const qkv = lin(ln(x, `${b}.norm1`), `${b}.attn.qkv`); // [B, N, 3D]
        const d = qkv.shape[2] / 3;
        const [q, k, v] = o.split(qkv, [d, d, d], -1).map((t) => splitHeads(o, t, this.cfg.heads)); // [B, h, N, hd]
        x = o.add(x, lin(mergeHeads(o, scaledDotProductAttention(o, q, k, v)), `${b}.attn.proj`));
        const h = ln(x, `${b}.norm2`);
        const w = (n: string) => p(`${b}.mlp.${n}`);
        x = o.add(
          x,
          mlp(o, h, { fc1: w("fc1.weight"), fc1Bias: w("fc1.bias"), fc2: w("fc2.weight"), fc2Bias: w("fc2.bias") }),
        );
      }
      const pred = lin(ln(x, "norm"), "head"); // [B, N, p*p*3]
      return toTf(o.mean(o.square(o.sub(pred, target)), [0, 1, 2])) as tf.Scalar;
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** `[B, 3, H, W]` images (host, CHW) -> `[B, N, p*p*3]` patches in (row, col, channel) order, as torch. */
export function patchifyHost(images: Float32Array, b: number, img: number, patch: number): Float32Array {
  const g = img / patch, pd = patch * patch * 3;
  const out = new Float32Array(b * g * g * pd);
  for (let n = 0; n < b; n++) {
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        const o = ((n * g + gy) * g + gx) * pd;
        for (let py = 0; py < patch; py++) {
          for (let px = 0; px < patch; px++) {
            for (let c = 0; c < 3; c++) {
              out[o + (py * patch + px) * 3 + c] =
                images[((n * 3 + c) * img + gy * patch + py) * img + gx * patch + px];
            }
          }
        }
      }
    }
  }
  return out;
}
