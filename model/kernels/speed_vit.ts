/**
 * The reference ViT of the speed benchmark (issue 8), twin of `bench/speed_torch.py`.
 *
 * Plain pre-LN ViT on 32x32 images with 4x4 patches (64 tokens), width 192, depth 6, 3 heads,
 * MLP 4x: a linear patch embedding on flattened patches, learned positions, a final LayerNorm and a
 * linear pixel head regressing each patch's 48 values with MSE. Built from model/nn blocks, so a
 * faster kernel here is a faster kernel for CAPI, MAE and SimMIM too.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { constant, normal, zeros } from "../init.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { layerNorm, linear, mergeHeads, mlp, scaledDotProductAttention, splitHeads } from "../nn/mod.ts";
import { fusedGelu } from "./fused_gelu.ts";
import { fusedLayerNorm } from "./fused_layer_norm.ts";

export interface SpeedVitConfig {
  /** Image side (pixels); 32 as CIFAR. */
  img: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /**
   * `nn`: model/nn's `mlp` and `layerNorm` as they are; `fused`: the same functions from
   * fused_gelu.ts and fused_layer_norm.ts (one kernel each way on the blas backend).
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
    return tf.tidy(() => {
      const p = (n: string) => this.params.get(n);
      const lin = (x: tf.Tensor, n: string) => linear(x, p(`${n}.weight`), p(`${n}.bias`));
      const norm = this.cfg.blocks === "fused" ? fusedLayerNorm : layerNorm;
      const ln = (x: tf.Tensor, n: string) => norm(x, p(`${n}.weight`), p(`${n}.bias`), 1e-6);
      let x = tf.add(lin(patches, "patch_embed"), p("pos_embed")); // [B, N, D]
      for (let i = 0; i < this.cfg.depth; i++) {
        const b = `blocks.${i}`;
        const qkv = lin(ln(x, `${b}.norm1`), `${b}.attn.qkv`); // [B, N, 3D]
        const [q, k, v] = tf.split(qkv, 3, -1).map((t) => splitHeads(t, this.cfg.heads)); // [B, h, N, hd]
        x = tf.add(x, lin(mergeHeads(scaledDotProductAttention(q, k, v)), `${b}.attn.proj`));
        const h = ln(x, `${b}.norm2`);
        const m = this.cfg.blocks === "fused" ? lin(fusedGelu(lin(h, `${b}.mlp.fc1`)), `${b}.mlp.fc2`) : mlp(h, {
          fc1: p(`${b}.mlp.fc1.weight`),
          fc1Bias: p(`${b}.mlp.fc1.bias`),
          fc2: p(`${b}.mlp.fc2.weight`),
          fc2Bias: p(`${b}.mlp.fc2.bias`),
        });
        x = tf.add(x, m);
      }
      const pred = lin(ln(x, "norm"), "head"); // [B, N, p*p*3]
      return tf.mean(tf.square(tf.sub(pred, patches)));
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
