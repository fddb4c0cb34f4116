/**
 * SimMIM, ViT variant (simmim:models/simmim.py `VisionTransformerForSimMIM`, `SimMIM`):
 * masked patch tokens are replaced by a learned `mask_token`, a BEiT-style ViT (cls token,
 * shared relative position bias, q/v biases without a key bias, LayerScale) encodes all
 * tokens, and a 1x1 conv + PixelShuffle decoder regresses the pixels with an L1 loss on the
 * masked ones. Parameters carry the official names (`encoder.blocks.0.attn.q_bias`,
 * `decoder.0.weight`, ...).
 *
 * No conv2d is trained: the patch embedding is host patchify + matmul, the 1x1 conv is a
 * linear map, and PixelShuffle is done in patch space. With `stride = p` the decoder's
 * output channel `c*s^2 + i*s + j` of token (y, x) is pixel `(c, y*s+i, x*s+j)`, which is
 * exactly the `chw` patch order, so the loss compares against `patchify(x, p, "chw")`.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import { ParamStore } from "../params.ts";
import type { Rng } from "../rng.ts";
import { constant, defaultBias, truncNormal, zeros } from "../init.ts";
import { layerNorm, linear, patchEmbed } from "../nn/mod.ts";
import { repeatToken, vitBlock, type VitBlockOptions, vitBlockShapes, vitBlockWeights } from "../nn/vit_block.ts";
import { type SimmimConfig, type SimmimDims, simmimDims } from "./config.ts";
import { gatherRelPosBias, relativePositionIndex } from "./rel_pos_bias.ts";

export class SimmimModel {
  readonly config: SimmimConfig;
  readonly dims: SimmimDims;
  readonly params: ParamStore;
  /** `relative_position_index` (an int buffer in the official state dict), `[(1+N)^2]`. */
  readonly relPosIndex: tf.Tensor1D;
  readonly #block: VitBlockOptions;

  constructor(config: SimmimConfig, params: ParamStore) {
    this.config = config;
    this.dims = simmimDims(config);
    this.params = params;
    this.relPosIndex = tf.tensor1d(relativePositionIndex(this.dims.gridH, this.dims.gridW), "int32");
    this.#block = { heads: config.numHeads, eps: config.normEps, qkvBias: "qv", layerScale: true };
  }

  static create(config: SimmimConfig, rng: Rng): SimmimModel {
    const store = new ParamStore();
    for (const [name, value] of initialParams(config, rng)) store.add(name, value);
    return new SimmimModel(config, store);
  }

  #p(name: string): tf.Variable {
    return this.params.get(name);
  }

  /** The shared relative position bias `[h, 1+N, 1+N]`. */
  relPosBias(): tf.Tensor {
    return gatherRelPosBias(this.#p("encoder.rel_pos_bias.relative_position_bias_table"), this.relPosIndex);
  }

  /**
   * Encoder. patches `[B, N, C*p*p]` (`chw`), mask `[B*N]` (1 = masked) or null,
   * `dropPath` = per-block `[attn, mlp]` multipliers `[B, 1, 1]` or null.
   * Returns the final-norm patch tokens `[B, N, D]` (cls dropped).
   */
  encode(patches: tf.Tensor, mask: Int32Array | null, dropPath: [tf.Tensor, tf.Tensor][] | null = null): tf.Tensor {
    return tf.tidy(() => {
      const [b, n] = patches.shape;
      const d = this.config.embedDim;
      let x = patchEmbed(patches, this.#p("encoder.patch_embed.proj.weight"), this.#p("encoder.patch_embed.proj.bias"));
      if (mask) {
        const w = tf.tensor3d(Float32Array.from(mask), [b, n, 1]);
        x = tf.add(tf.mul(x, tf.sub(1, w)), tf.mul(this.#p("encoder.mask_token"), w)); // x*(1-w) + mask_token*w
      }
      x = tf.concat([repeatToken(this.#p("encoder.cls_token"), b, 1), x], 1); // [B, 1+N, D]
      const bias = this.relPosBias();
      for (let i = 0; i < this.config.depth; i++) {
        const w = vitBlockWeights(this.params, `encoder.blocks.${i}`, this.#block);
        x = vitBlock(x, w, this.#block, bias, dropPath ? dropPath[i] : [null, null]);
      }
      x = layerNorm(x, this.#p("encoder.norm.weight"), this.#p("encoder.norm.bias"), this.config.normEps);
      return tf.slice(x, [0, 1, 0], [b, n, d]);
    });
  }

  /** 1x1 conv decoder in patch space: `[B, N, D]` -> `[B, N, C*s*s]` (PixelShuffle channel order). */
  decode(z: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const w = this.#p("decoder.0.weight"); // [s*s*C, D, 1, 1]
      return linear(z, tf.reshape(w, [w.shape[0], -1]), this.#p("decoder.0.bias"));
    });
  }

  /**
   * `sum(|x - x_rec| * m) / (sum(m) + 1e-5) / C` with m the pixel mask (one channel):
   * `sum(m) = masked tokens * p*p`. target and rec: `[B, N, C*p*p]`; mask `[B*N]`.
   */
  lossFrom(rec: tf.Tensor, target: tf.Tensor, mask: Int32Array): tf.Scalar {
    return tf.tidy(() => {
      const [b, n] = rec.shape;
      const p = this.config.patchSize;
      const maskedPixels = mask.reduce((a, v) => a + v, 0) * p * p;
      const w = tf.tensor3d(Float32Array.from(mask), [b, n, 1]);
      const l1 = tf.sum(tf.mul(tf.abs(tf.sub(target, rec)), w));
      return tf.div(l1, (maskedPixels + 1e-5) * this.config.inChans) as tf.Scalar;
    });
  }

  /** One training forward: latent tokens, reconstruction in patch space and the loss. */
  forward(
    patches: tf.Tensor,
    mask: Int32Array,
    dropPath: [tf.Tensor, tf.Tensor][] | null = null,
  ): { z: tf.Tensor; rec: tf.Tensor; loss: tf.Scalar } {
    return tf.tidy(() => {
      const z = this.encode(patches, mask, dropPath);
      const rec = this.decode(z);
      return { z, rec, loss: this.lossFrom(rec, patches, mask) };
    });
  }

  dispose(): void {
    this.params.dispose();
    this.relPosIndex.dispose();
  }
}

/**
 * Initial parameters (SPEC 3 "Init"): cls/mask tokens, Linear and patch Conv2d weights
 * `trunc_normal(0.02)` truncated at +-0.02 (SimMIM overrides `_trunc_normal_` with bounds
 * `[-std, std]`), biases 0, LayerNorm (1, 0), LayerScale `init_values`, RPB table 0, then
 * `attn.proj.weight` and `mlp.fc2.weight` of block `l` (1-based) divided by `sqrt(2l)`;
 * the decoder conv keeps torch's default init (U(+-1/sqrt(fan_in)) for weight and bias).
 */
export function initialParams(c: SimmimConfig, rng: Rng): [string, HostTensor<Float32Array>][] {
  const dims = simmimDims(c);
  const r = (name: string) => rng.fork(name);
  const d = c.embedDim, p = c.patchSize, std = 0.02;
  const tn = (name: string, shape: number[]) => truncNormal(r(name), shape, std, -std, std);
  const out: [string, HostTensor<Float32Array>][] = [];
  out.push(["encoder.cls_token", tn("encoder.cls_token", [1, 1, d])]);
  out.push(["encoder.mask_token", tn("encoder.mask_token", [1, 1, d])]);
  out.push(["encoder.patch_embed.proj.weight", tn("encoder.patch_embed.proj.weight", [d, c.inChans, p, p])]);
  out.push(["encoder.patch_embed.proj.bias", zeros([d])]);
  out.push(["encoder.rel_pos_bias.relative_position_bias_table", zeros([dims.tableSize, c.numHeads])]);
  const hidden = Math.trunc(d * c.mlpRatio);
  for (let i = 0; i < c.depth; i++) {
    const rescale = 1 / Math.sqrt(2 * (i + 1)); // fix_init_weight: layer_id is 1-based
    for (const [n, shape] of vitBlockShapes(d, hidden, { qkvBias: "qv", layerScale: true })) {
      const name = `encoder.blocks.${i}.${n}`;
      let value: HostTensor<Float32Array>;
      if (n.startsWith("gamma_")) value = constant(shape, c.initValues);
      else if (n.startsWith("norm") && n.endsWith(".weight")) value = constant(shape, 1);
      else if (shape.length === 2) {
        value = tn(name, shape);
        if (n === "attn.proj.weight" || n === "mlp.fc2.weight") value.data.forEach((v, k, a) => (a[k] = v * rescale));
      } else value = zeros(shape);
      out.push([name, value]);
    }
  }
  out.push(["encoder.norm.weight", constant([d], 1)], ["encoder.norm.bias", zeros([d])]);
  const decOut = c.encoderStride ** 2 * c.inChans;
  // kaiming_uniform(a=sqrt(5)) on fan_in = D*1*1 is U(+-1/sqrt(D)), the same law as the default bias.
  const dw = defaultBias(r("decoder.0.weight"), decOut * d, d);
  out.push(["decoder.0.weight", { shape: [decOut, d, 1, 1], data: dw.data }]);
  out.push(["decoder.0.bias", defaultBias(r("decoder.0.bias"), decOut, d)]);
  return out;
}
