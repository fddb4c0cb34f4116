/**
 * The reference ViT of the speed benchmark (issue 8) as a `TrainStepSpec`, the one definition that
 * both engines run (`deno task speed --method vit --engine tfjs|ort`); `bench/speed_torch_vit.py`
 * is its PyTorch twin.
 *
 * A plain pre-LN ViT on 32x32 images with 4x4 patches (64 tokens), width 192, depth 6, 3 heads,
 * MLP 4x: a linear patch embedding of the flattened `(py, px, c)` patches, learned positions, MAE's
 * block (model/nn `vitBlock`: biased LayerNorms with eps 1e-6, fused qkv with bias, exact GELU), a
 * final LayerNorm and a linear pixel head regressing each patch's 48 values with MSE. Adam (AdamW
 * with weight decay 0, lr 1e-4). Built from model/nn, so a faster kernel here is a faster kernel for
 * CAPI, MAE and SimMIM too.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { constant, normal, zeros } from "../init.ts";
import { linear } from "../nn/linear.ts";
import { patchify } from "../nn/patch_embed.ts";
import { vitBlock, type VitBlockOptions, vitBlockShapes, vitBlockWeights } from "../nn/vit_block.ts";
import { Rng } from "../rng.ts";
import type { ParamSpec, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import type { Ops, ParamGetter, Tensor } from "./ops.ts";

/** The shape of the reference ViT. */
export interface VitConfig {
  /** Image side (pixels); 32 as CIFAR. */
  img: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
}

/** 32x32 images, patch 4 (64 tokens), width 192, depth 6, 3 heads, MLP 4x (issue 8). */
export const REFERENCE_VIT: VitConfig = { img: 32, patch: 4, dim: 192, depth: 6, heads: 3, mlpRatio: 4 };

const blockOptions = (cfg: VitConfig): VitBlockOptions => ({
  heads: cfg.heads,
  eps: 1e-6,
  qkvBias: "fused",
  layerScale: false,
});

/**
 * The MSE of the pixel head against the `patches` draw `[B, N, p*p*3]` (also the embedding's input:
 * the model regresses its own input, enough for timing and for checking against torch).
 */
export function vitLoss(cfg: VitConfig) {
  const opts = blockOptions(cfg);
  return (o: Ops, get: ParamGetter, inputs: Record<string, Tensor>) => {
    const patches = inputs.patches;
    const lin = (x: Tensor, name: string) => linear(o, x, get(`${name}.weight`), get(`${name}.bias`));
    let x = o.add(lin(patches, "patch_embed"), get("pos_embed")); // [B, N, D]
    for (let i = 0; i < cfg.depth; i++) x = vitBlock(o, x, vitBlockWeights(get, `blocks.${i}`, opts), opts);
    const pred = lin(o.layerNorm(x, get("norm.weight"), get("norm.bias"), opts.eps), "head"); // [B, N, p*p*3]
    return { loss: o.mean(o.square(o.sub(pred, patches)), [0, 1, 2]), metrics: {} };
  };
}

/**
 * Seeded initial parameters, timm names (`patch_embed`, `pos_embed`, `blocks.<i>.*`, `norm`, `head`):
 * weights ~ N(0, 0.02) (timm's trunc-normal std; the benchmark only needs sane activations), biases 0,
 * LayerNorms (1, 0).
 */
export function vitParams(cfg: VitConfig, seed = 0): Map<string, ParamSpec> {
  const rng = Rng.from(seed, "speed_vit");
  const d = cfg.dim, hid = cfg.mlpRatio * d, pdim = 3 * cfg.patch * cfg.patch, tokens = (cfg.img / cfg.patch) ** 2;
  const params = new Map<string, ParamSpec>();
  const add = (name: string, value: HostTensor<Float32Array>) => params.set(name, { value, trainable: true });
  const init = (name: string, shape: number[]) => {
    if (name.endsWith(".bias")) add(name, zeros(shape));
    else if (shape.length === 1) add(name, constant(shape, 1)); // LayerNorm weight
    else add(name, normal(rng.fork(name.slice(0, -".weight".length)), shape, 0.02));
  };
  init("patch_embed.weight", [d, pdim]);
  init("patch_embed.bias", [d]);
  add("pos_embed", normal(rng.fork("pos"), [1, tokens, d], 0.02));
  const block = vitBlockShapes(d, hid, { qkvBias: "fused", layerScale: false });
  for (let i = 0; i < cfg.depth; i++) for (const [n, shape] of block) init(`blocks.${i}.${n}`, shape);
  init("norm.weight", [d]);
  init("norm.bias", [d]);
  init("head.weight", [pdim, d]);
  init("head.bias", [pdim]);
  return params;
}

/** The reference ViT's training step: one AdamW (betas 0.9/0.999, eps 1e-8: torch's defaults), one group. */
export function vitStepSpec(cfg: VitConfig = REFERENCE_VIT, seed = 0): TrainStepSpec {
  const params = vitParams(cfg, seed);
  return {
    params,
    optimizers: [{ id: "main", groups: [{ id: "all", params: [...params.keys()] }], betas: [0.9, 0.999], eps: 1e-8 }],
    ema: null,
    loss: vitLoss(cfg),
  };
}

/** The benchmark's fixed batch: N(0, 1) images `[B, 3, img, img]` from the seeded stream `speed/images`. */
export function vitImages(cfg: VitConfig, batch: number): HostTensor<Float32Array> {
  const data = Rng.from(0, "speed", "images").fillNormal(new Float32Array(batch * 3 * cfg.img * cfg.img));
  return { shape: [batch, 3, cfg.img, cfg.img], data };
}

/** The step's draws: `images` patchified on the host in the torch twin's `(py, px, c)` order. */
export function vitDraws(cfg: VitConfig, images: HostTensor<Float32Array>): StepDraws {
  return { patches: patchify(images, cfg.patch, "hwc") };
}

/** Adam at lr 1e-4, weight decay 0, as the torch twin. */
export const VIT_HYPER: StepHyper = { groups: { main: { all: { lr: 1e-4, weightDecay: 0 } } } };
