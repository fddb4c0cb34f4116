/**
 * MAE (mae:models_mae.py `MaskedAutoencoderViT`): encoder on the kept tokens, lightweight
 * decoder over all tokens, norm-pix MSE on the removed patches. Parameters carry the
 * official state-dict names (`cls_token`, `blocks.0.attn.qkv.weight`, `decoder_pred.bias`, ...).
 *
 * Order as in timm: forward pieces, model class, initialisation. Patchify happens on the
 * host (`../nn/patch_embed.ts`): the patch embedding is a matmul, so no conv2d is trained.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import { ParamStore } from "../params.ts";
import type { Rng } from "../rng.ts";
import { constant, defaultBias, normal, xavierUniform, zeros } from "../init.ts";
import { layerNorm, linear, patchEmbed } from "../nn/mod.ts";
import { repeatToken, vitBlock, type VitBlockOptions, vitBlockShapes, vitBlockWeights } from "../nn/vit_block.ts";
import { type MaeConfig, type MaeDims, maeDims } from "./config.ts";
import { sincos2d } from "./sincos.ts";
import type { MaeMasking } from "./masking.ts";

/** Per-patch normalised target (models_mae.py:198-214): `(t - mean) / sqrt(var_unbiased + 1e-6)`. */
export function normPixTarget(target: HostTensor<Float32Array>): HostTensor<Float32Array> {
  const dim = target.shape[target.shape.length - 1];
  const out = new Float32Array(target.data.length);
  for (let off = 0; off < target.data.length; off += dim) {
    let mean = 0;
    for (let k = 0; k < dim; k++) mean += target.data[off + k];
    mean /= dim;
    let ss = 0;
    for (let k = 0; k < dim; k++) ss += (target.data[off + k] - mean) ** 2;
    const inv = 1 / Math.sqrt(ss / (dim - 1) + 1e-6); // torch .var() is unbiased
    for (let k = 0; k < dim; k++) out[off + k] = (target.data[off + k] - mean) * inv;
  }
  return { shape: [...target.shape], data: out };
}

/** Absolute row indices into a `[B*L, ...]` flattening of per-image indices `[B, n]`. */
export function absoluteIndices(ids: Int32Array, batch: number, length: number): Int32Array {
  const n = ids.length / batch;
  return Int32Array.from(ids, (v, i) => Math.floor(i / n) * length + v);
}

export class MaeModel {
  readonly config: MaeConfig;
  readonly dims: MaeDims;
  readonly params: ParamStore;
  readonly #enc: VitBlockOptions;
  readonly #dec: VitBlockOptions;

  constructor(config: MaeConfig, params: ParamStore) {
    this.config = config;
    this.dims = maeDims(config);
    this.params = params;
    const common = { eps: config.normEps, qkvBias: "fused", layerScale: false } as const;
    this.#enc = { ...common, heads: config.numHeads };
    this.#dec = { ...common, heads: config.decoderNumHeads };
  }

  /** A model with freshly initialised weights (models_mae.py:65-93), drawn from `rng`. */
  static create(config: MaeConfig, rng: Rng): MaeModel {
    const store = new ParamStore();
    for (const [name, value, trainable] of initialParams(config, rng)) store.add(name, value, trainable);
    return new MaeModel(config, store);
  }

  #p(name: string): tf.Variable {
    return this.params.get(name);
  }

  /**
   * Encoder (models_mae.py:150-170). patches: `[B, L, C*p*p]` in `chw` order; `keepAbs`:
   * absolute indices (`b*L + ids_keep`) of the kept tokens, or null for no masking.
   * Returns the latent `[B, 1 + n, D]` after the final norm, cls first.
   */
  encode(patches: tf.Tensor, keepAbs: Int32Array | null): tf.Tensor {
    return tf.tidy(() => {
      const { embedDim: d, depth } = this.config;
      const [b, l] = patches.shape;
      const pos = this.#p("pos_embed"); // [1, 1+L, D]
      let x = tf.add(
        patchEmbed(patches, this.#p("patch_embed.proj.weight"), this.#p("patch_embed.proj.bias")),
        tf.slice(pos, [0, 1, 0], [1, l, d]),
      );
      if (keepAbs) {
        const n = keepAbs.length / b;
        x = tf.reshape(tf.gather(tf.reshape(x, [b * l, d]), tf.tensor1d(keepAbs, "int32")), [b, n, d]); // [B, n, D]
      }
      const cls = repeatToken(tf.add(this.#p("cls_token"), tf.slice(pos, [0, 0, 0], [1, 1, d])), b, 1);
      x = tf.concat([cls, x], 1);
      for (let i = 0; i < depth; i++) {
        x = vitBlock(x, vitBlockWeights(this.params, `blocks.${i}`, this.#enc), this.#enc);
      }
      return layerNorm(x, this.#p("norm.weight"), this.#p("norm.bias"), this.config.normEps);
    });
  }

  /**
   * Decoder (models_mae.py:172-196). latent `[B, 1+keep, D]`, `restoreAbs` = `b*L + ids_restore`.
   * Returns the prediction `[B, L, p*p*C]` (cls dropped), inner order `(py, px, c)`.
   */
  decode(latent: tf.Tensor, restoreAbs: Int32Array): tf.Tensor {
    return tf.tidy(() => {
      const dd = this.config.decoderEmbedDim;
      const [b, n1] = latent.shape;
      const l = restoreAbs.length / b;
      const keep = n1 - 1;
      let x = linear(latent, this.#p("decoder_embed.weight"), this.#p("decoder_embed.bias")); // [B, 1+keep, Dd]
      const maskTokens = repeatToken(this.#p("mask_token"), b, l - keep); // [B, L-keep, Dd]
      let rest = tf.concat([tf.slice(x, [0, 1, 0], [b, keep, dd]), maskTokens], 1); // [B, L, Dd] shuffled
      rest = tf.reshape(tf.gather(tf.reshape(rest, [b * l, dd]), tf.tensor1d(restoreAbs, "int32")), [b, l, dd]);
      x = tf.add(tf.concat([tf.slice(x, [0, 0, 0], [b, 1, dd]), rest], 1), this.#p("decoder_pos_embed"));
      for (let i = 0; i < this.config.decoderDepth; i++) {
        x = vitBlock(x, vitBlockWeights(this.params, `decoder_blocks.${i}`, this.#dec), this.#dec);
      }
      x = layerNorm(x, this.#p("decoder_norm.weight"), this.#p("decoder_norm.bias"), this.config.normEps);
      const pred = linear(x, this.#p("decoder_pred.weight"), this.#p("decoder_pred.bias")); // [B, 1+L, p*p*C]
      return tf.slice(pred, [0, 1, 0], [b, l, pred.shape[2] as number]);
    });
  }

  /** `sum(mask * mean_pixels((pred - target)^2)) / sum(mask)`; target `[B, L, p*p*C]` `hwc`. */
  lossFrom(pred: tf.Tensor, target: tf.Tensor, mask: Float32Array): tf.Scalar {
    return tf.tidy(() => {
      const masked = mask.reduce((a, v) => a + v, 0);
      const perPatch = tf.mean(tf.square(tf.sub(pred, target)), -1); // [B, L]
      return tf.div(tf.sum(tf.mul(perPatch, tf.tensor(mask, perPatch.shape as number[]))), masked) as tf.Scalar;
    });
  }

  /** Everything of one training forward, for the loss and for parity checks. */
  forward(
    patchesChw: tf.Tensor,
    target: tf.Tensor,
    m: MaeMasking,
  ): { latent: tf.Tensor; pred: tf.Tensor; loss: tf.Scalar } {
    return tf.tidy(() => {
      const latent = this.encode(patchesChw, absoluteIndices(m.idsKeep, m.batch, m.length));
      const pred = this.decode(latent, absoluteIndices(m.idsRestore, m.batch, m.length));
      return { latent, pred, loss: this.lossFrom(pred, target, m.mask) };
    });
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** `[name, value, trainable]` for every parameter, in the official state-dict order. */
export function initialParams(c: MaeConfig, rng: Rng): [string, HostTensor<Float32Array>, boolean][] {
  const { gridH, gridW, patchDim } = maeDims(c);
  const r = (name: string) => rng.fork(name); // per-name streams: init does not depend on order
  const d = c.embedDim, dd = c.decoderEmbedDim, p = c.patchSize;
  const out: [string, HostTensor<Float32Array>, boolean][] = [];
  const posEmbed = sincos2d(d, [gridH, gridW], true);
  const decPosEmbed = sincos2d(dd, [gridH, gridW], true);
  out.push(["cls_token", normal(r("cls_token"), [1, 1, d], 0.02), true]);
  out.push(["pos_embed", { shape: [1, ...posEmbed.shape], data: posEmbed.data }, false]);
  // Conv2d weight: xavier_uniform on its [D, C*p*p] view; bias keeps the Conv2d default.
  const pe = xavierUniform(r("patch_embed.proj.weight"), [d, c.inChans * p * p]);
  out.push(["patch_embed.proj.weight", { shape: [d, c.inChans, p, p], data: pe.data }, true]);
  out.push(["patch_embed.proj.bias", defaultBias(r("patch_embed.proj.bias"), d, c.inChans * p * p), true]);
  const linearOrNorm = (prefix: string, dim: number) =>
    vitBlockShapes(dim, Math.trunc(dim * c.mlpRatio), { qkvBias: "fused", layerScale: false }).map(
      ([n, shape]): [string, HostTensor<Float32Array>, boolean] => {
        const name = `${prefix}.${n}`;
        if (n.endsWith(".weight") && shape.length === 2) return [name, xavierUniform(r(name), shape), true];
        return [name, n.startsWith("norm") && n.endsWith(".weight") ? constant(shape, 1) : zeros(shape), true];
      },
    );
  for (let i = 0; i < c.depth; i++) out.push(...linearOrNorm(`blocks.${i}`, d));
  out.push(["norm.weight", constant([d], 1), true], ["norm.bias", zeros([d]), true]);
  out.push(["decoder_embed.weight", xavierUniform(r("decoder_embed.weight"), [dd, d]), true]);
  out.push(["decoder_embed.bias", zeros([dd]), true]);
  out.push(["mask_token", normal(r("mask_token"), [1, 1, dd], 0.02), true]);
  out.push(["decoder_pos_embed", { shape: [1, ...decPosEmbed.shape], data: decPosEmbed.data }, false]);
  for (let i = 0; i < c.decoderDepth; i++) out.push(...linearOrNorm(`decoder_blocks.${i}`, dd));
  out.push(["decoder_norm.weight", constant([dd], 1), true], ["decoder_norm.bias", zeros([dd]), true]);
  out.push(["decoder_pred.weight", xavierUniform(r("decoder_pred.weight"), [patchDim, dd]), true]);
  out.push(["decoder_pred.bias", zeros([patchDim]), true]);
  return out;
}
