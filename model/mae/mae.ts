/**
 * MAE (mae:models_mae.py `MaskedAutoencoderViT`) written once against `Ops`: encoder on the kept
 * tokens, lightweight decoder over all tokens, norm-pix MSE on the removed patches. Parameters
 * carry the official state-dict names (`cls_token`, `blocks.0.attn.qkv.weight`, `decoder_pred.bias`, ...).
 *
 * Order as in timm: forward pieces, initialisation. Patchify and the norm-pix target happen on the
 * host (`../nn/patch_embed.ts`): the patch embedding is a matmul, so no conv2d is trained.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { Rng } from "../rng.ts";
import { constant, defaultBias, normal, xavierUniform, zeros } from "../init.ts";
import { linear, patchEmbed } from "../nn/mod.ts";
import { repeatToken, vitBlock, type VitBlockOptions, vitBlockShapes, vitBlockWeights } from "../nn/vit_block.ts";
import type { Ops, ParamGetter, Tensor } from "../ops/ops.ts";
import { type MaeConfig, maeDims } from "./config.ts";
import { sincos2d } from "./sincos.ts";

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

const blockOptions = (c: MaeConfig, heads: number): VitBlockOptions => ({
  heads,
  eps: c.normEps,
  qkvBias: "fused",
  layerScale: false,
});

/**
 * Encoder (models_mae.py:150-170). patches: `[B, L, C*p*p]` in `chw` order; `keep`: absolute
 * indices (`b*L + ids_keep`, `[B*n]`) of the kept tokens, or null for no masking.
 * Returns the latent `[B, 1 + n, D]` after the final norm, cls first.
 */
export function maeEncode(o: Ops, get: ParamGetter, c: MaeConfig, patches: Tensor, keep: Tensor | null): Tensor {
  return o.tidy(() => {
    const d = c.embedDim;
    const [b, l] = patches.shape;
    const pos = get("pos_embed"); // [1, 1+L, D]
    let x = o.add(
      patchEmbed(o, patches, get("patch_embed.proj.weight"), get("patch_embed.proj.bias")),
      o.slice(pos, [0, 1, 0], [1, l, d]),
    );
    if (keep) {
      const n = keep.shape[0] / b;
      x = o.reshape(o.gather(o.reshape(x, [b * l, d]), keep), [b, n, d]); // [B, n, D]
    }
    const cls = repeatToken(o, o.add(get("cls_token"), o.slice(pos, [0, 0, 0], [1, 1, d])), b, 1);
    x = o.concat([cls, x], 1);
    const opts = blockOptions(c, c.numHeads);
    for (let i = 0; i < c.depth; i++) x = vitBlock(o, x, vitBlockWeights(get, `blocks.${i}`, opts), opts);
    return o.layerNorm(x, get("norm.weight"), get("norm.bias"), c.normEps);
  });
}

/**
 * Decoder (models_mae.py:172-196). latent `[B, 1+keep, D]`, `restore` = `b*L + ids_restore` (`[B*L]`).
 * Returns the prediction `[B, L, p*p*C]` (cls dropped), inner order `(py, px, c)`.
 */
export function maeDecode(o: Ops, get: ParamGetter, c: MaeConfig, latent: Tensor, restore: Tensor): Tensor {
  return o.tidy(() => {
    const dd = c.decoderEmbedDim;
    const [b, n1] = latent.shape;
    const l = restore.shape[0] / b;
    const keep = n1 - 1;
    let x = linear(o, latent, get("decoder_embed.weight"), get("decoder_embed.bias")); // [B, 1+keep, Dd]
    const maskTokens = repeatToken(o, get("mask_token"), b, l - keep); // [B, L-keep, Dd]
    let rest = o.concat([o.slice(x, [0, 1, 0], [b, keep, dd]), maskTokens], 1); // [B, L, Dd] shuffled
    rest = o.reshape(o.gather(o.reshape(rest, [b * l, dd]), restore), [b, l, dd]);
    x = o.add(o.concat([o.slice(x, [0, 0, 0], [b, 1, dd]), rest], 1), get("decoder_pos_embed"));
    const opts = blockOptions(c, c.decoderNumHeads);
    for (let i = 0; i < c.decoderDepth; i++) {
      x = vitBlock(o, x, vitBlockWeights(get, `decoder_blocks.${i}`, opts), opts);
    }
    x = o.layerNorm(x, get("decoder_norm.weight"), get("decoder_norm.bias"), c.normEps);
    const pred = linear(o, x, get("decoder_pred.weight"), get("decoder_pred.bias")); // [B, 1+L, p*p*C]
    return o.slice(pred, [0, 1, 0], [b, l, pred.shape[2]]);
  });
}

/**
 * `sum(mask * mean_pixels((pred - target)^2)) / sum(mask)`; target `[B, L, p*p*C]` `hwc`, mask `[B, L]`
 * (1 = removed). `sum(mask)` is `B * (L - len_keep)` for every draw: a number, not a data-dependent sum.
 */
export function maeLossFrom(o: Ops, pred: Tensor, target: Tensor, mask: Tensor, removed: number): Tensor {
  const perPatch = o.mean(o.square(o.sub(pred, target)), -1); // [B, L]
  return o.div(o.sum(o.mul(perPatch, mask), [0, 1]), removed);
}

/** Inputs of one MAE training forward (`MaeMethod.draw`). */
export interface MaeInputs {
  /** `[B, L, C*p*p]` `chw` patches. */
  patches: Tensor;
  /** `[B, L, p*p*C]` `hwc` target (norm-pix normalised when the config says so). */
  target: Tensor;
  /** `[B*len_keep]` absolute kept indices, `[B*L]` absolute restore indices, `[B, L]` mask. */
  keep: Tensor;
  restore: Tensor;
  mask: Tensor;
}

/** Everything of one training forward, for the loss and for parity checks. */
export function maeForward(
  o: Ops,
  get: ParamGetter,
  c: MaeConfig,
  x: MaeInputs,
): { latent: Tensor; pred: Tensor; loss: Tensor } {
  const latent = maeEncode(o, get, c, x.patches, x.keep);
  const pred = maeDecode(o, get, c, latent, x.restore);
  const [b, l] = x.mask.shape;
  const removed = b * (l - (latent.shape[1] - 1));
  return { latent, pred, loss: maeLossFrom(o, pred, x.target, x.mask, removed) };
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
