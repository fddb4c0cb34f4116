/**
 * SimMIM, ViT variant (simmim:models/simmim.py `VisionTransformerForSimMIM`, `SimMIM`), written
 * once against `Ops`: masked patch tokens are replaced by a learned `mask_token`, a BEiT-style ViT
 * (cls token, shared relative position bias, q/v biases without a key bias, LayerScale) encodes
 * all tokens, and a 1x1 conv + PixelShuffle decoder regresses the pixels with an L1 loss on the
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
import type { HostTensor } from "../fixture.ts";
import type { Rng } from "../rng.ts";
import { constant, defaultBias, truncNormal, zeros } from "../init.ts";
import { linear, patchEmbed } from "../nn/mod.ts";
import { repeatToken, vitBlock, type VitBlockOptions, vitBlockShapes, vitBlockWeights } from "../nn/vit_block.ts";
import type { Ops, ParamGetter, Tensor } from "../ops/ops.ts";
import { type SimmimConfig, simmimDims } from "./config.ts";
import { gatherRelPosBias, relativePositionIndex } from "./rel_pos_bias.ts";

const blockOptions = (c: SimmimConfig): VitBlockOptions => ({
  heads: c.numHeads,
  eps: c.normEps,
  qkvBias: "qv",
  layerScale: true,
});

/** The shared relative position bias `[h, 1+N, 1+N]` (the index is a constant of the grid). */
export function simmimRelPosBias(o: Ops, get: ParamGetter, c: SimmimConfig): Tensor {
  const { gridH, gridW } = simmimDims(c);
  const index = relativePositionIndex(gridH, gridW);
  return gatherRelPosBias(
    o,
    get("encoder.rel_pos_bias.relative_position_bias_table"),
    o.constant({
      shape: [index.length],
      data: index,
    }, "simmim.relative_position_index"),
  );
}

/**
 * Encoder. patches `[B, N, C*p*p]` (`chw`), mask `[B, N, 1]` (1 = masked) or null,
 * `dropPath` = per-block `[attn, mlp]` multipliers `[B, 1, 1]` or null.
 * Returns the final-norm patch tokens `[B, N, D]` (cls dropped).
 */
export function simmimEncode(
  o: Ops,
  get: ParamGetter,
  c: SimmimConfig,
  patches: Tensor,
  mask: Tensor | null,
  dropPath: [Tensor, Tensor][] | null = null,
): Tensor {
  return o.tidy(() => {
    const [b, n] = patches.shape;
    let x = patchEmbed(o, patches, get("encoder.patch_embed.proj.weight"), get("encoder.patch_embed.proj.bias"));
    if (mask) x = o.add(o.mul(x, o.sub(1, mask)), o.mul(get("encoder.mask_token"), mask)); // x*(1-w) + mask_token*w
    x = o.concat([repeatToken(o, get("encoder.cls_token"), b, 1), x], 1); // [B, 1+N, D]
    const bias = simmimRelPosBias(o, get, c);
    const opts = blockOptions(c);
    for (let i = 0; i < c.depth; i++) {
      const w = vitBlockWeights(get, `encoder.blocks.${i}`, opts);
      x = vitBlock(o, x, w, opts, bias, dropPath ? dropPath[i] : [null, null]);
    }
    x = o.layerNorm(x, get("encoder.norm.weight"), get("encoder.norm.bias"), c.normEps);
    return o.slice(x, [0, 1, 0], [b, n, c.embedDim]);
  });
}

/** 1x1 conv decoder in patch space: `[B, N, D]` -> `[B, N, C*s*s]` (PixelShuffle channel order). */
export function simmimDecode(o: Ops, get: ParamGetter, z: Tensor): Tensor {
  const w = get("decoder.0.weight"); // [s*s*C, D, 1, 1]
  return linear(o, z, o.reshape(w, [w.shape[0], -1]), get("decoder.0.bias"));
}

/**
 * `sum(|x - x_rec| * m) / (sum(m) + 1e-5) / C` with m the pixel mask (one channel). target and
 * rec: `[B, N, C*p*p]`; mask `[B, N, 1]`. `sum(m)` = masked tokens * p*p, fixed by the config
 * (`maskedTokens` in all images): a number, not a data-dependent sum.
 */
export function simmimLossFrom(
  o: Ops,
  c: SimmimConfig,
  rec: Tensor,
  target: Tensor,
  mask: Tensor,
  maskedTokens: number,
): Tensor {
  const maskedPixels = maskedTokens * c.patchSize * c.patchSize;
  const l1 = o.sum(o.mul(o.abs(o.sub(target, rec)), mask), [0, 1, 2]);
  return o.div(l1, (maskedPixels + 1e-5) * c.inChans);
}

/** One training forward: latent tokens, reconstruction in patch space and the loss. */
export function simmimForward(
  o: Ops,
  get: ParamGetter,
  c: SimmimConfig,
  patches: Tensor,
  mask: Tensor,
  dropPath: [Tensor, Tensor][] | null = null,
): { z: Tensor; rec: Tensor; loss: Tensor } {
  const z = simmimEncode(o, get, c, patches, mask, dropPath);
  const rec = simmimDecode(o, get, z);
  const d = simmimDims(c);
  const maskedTokens = patches.shape[0] * d.maskCount * d.scale * d.scale;
  return { z, rec, loss: simmimLossFrom(o, c, rec, patches, mask, maskedTokens) };
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
