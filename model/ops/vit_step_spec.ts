/**
 * The reference ViT of the speed benchmark (model/kernels/speed_vit.ts, twin of
 * bench/speed_torch.py) as a `TrainStepSpec`: the same parameters (timm names, the same seeded
 * initial values), the same pre-LN blocks with biased LayerNorms (MAE style), the same MSE pixel
 * loss, Adam (AdamW, weight decay 0, lr 1e-4), written once against `Ops`.
 *
 * Used by ort_speed.ts to time the one-graph step on onnxruntime against `deno task speed
 * --backend blas` and PyTorch, and by its test at a tiny size.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { constant, normal, zeros } from "../init.ts";
import { Rng } from "../rng.ts";
import type { ParamSpec, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import type { Ops, ParamGetter, Tensor } from "./ops.ts";

/**
 * The shape of the reference ViT. model/kernels/speed_vit.ts has the same type and values
 * (`SPEED_VIT`, checked equal in the test); it is not imported because it loads tfjs.
 */
export interface VitConfig {
  img: number;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
}

/** 32x32 images, patch 4 (64 tokens), width 192, depth 6, 3 heads, MLP 4x (issue 8). */
export const REFERENCE_VIT: VitConfig = { img: 32, patch: 4, dim: 192, depth: 6, heads: 3, mlpRatio: 4 };

/** `x @ W^T + b` for a torch-layout `[out, in]` weight. */
function linear(o: Ops, get: ParamGetter, x: Tensor, name: string): Tensor {
  return o.add(o.matMul(x, get(`${name}.weight`), false, true), get(`${name}.bias`));
}

/** Multi-head self-attention of one block on `[B, N, D]`. */
function attention(o: Ops, get: ParamGetter, x: Tensor, prefix: string, heads: number): Tensor {
  const [b, n, d] = x.shape, hd = d / heads;
  const qkv = linear(o, get, x, `${prefix}.qkv`); // [B, N, 3D]
  // [B, N, 3, h, hd] -> [3, B, h, N, hd], as the torch twin's permute(2, 0, 3, 1, 4)
  const split = o.transpose(o.reshape(qkv, [b, n, 3, heads, hd]), [2, 0, 3, 1, 4]);
  const [q, k, v] = o.split(split, [1, 1, 1], 0).map((t) => o.reshape(t, [b, heads, n, hd]));
  const attn = o.softmax(o.matMul(o.mul(q, hd ** -0.5), k, false, true), -1); // [B, h, N, N]
  const out = o.reshape(o.transpose(o.matMul(attn, v), [0, 2, 1, 3]), [b, n, d]); // [B, N, D]
  return linear(o, get, out, `${prefix}.proj`);
}

/** `[B, 3, H, W]` -> `[B, N, p*p*3]` in (row, col, channel) order, as the torch twin's `patchify`. */
function patchify(o: Ops, images: Tensor, p: number): Tensor {
  const [b, c, h, w] = images.shape;
  const x = o.transpose(o.reshape(images, [b, c, h / p, p, w / p, p]), [0, 2, 4, 3, 5, 1]);
  return o.reshape(x, [b, (h / p) * (w / p), p * p * c]);
}

/** The MSE of the pixel head against the patches of the `images` draw `[B, 3, H, W]`. */
export function vitLoss(cfg: VitConfig) {
  return (o: Ops, get: ParamGetter, inputs: Record<string, Tensor>) => {
    const patches = patchify(o, inputs.images, cfg.patch);
    const ln = (x: Tensor, name: string) => o.layerNorm(x, get(`${name}.weight`), get(`${name}.bias`), 1e-6);
    let x = o.add(linear(o, get, patches, "patch_embed"), get("pos_embed")); // [B, N, D]
    for (let i = 0; i < cfg.depth; i++) {
      const b = `blocks.${i}`;
      x = o.add(x, attention(o, get, ln(x, `${b}.norm1`), `${b}.attn`, cfg.heads));
      const h = o.gelu(linear(o, get, ln(x, `${b}.norm2`), `${b}.mlp.fc1`));
      x = o.add(x, linear(o, get, h, `${b}.mlp.fc2`));
    }
    const pred = linear(o, get, ln(x, "norm"), "head"); // [B, N, p*p*3]
    const loss = o.mean(o.square(o.sub(pred, patches)), [0, 1, 2]);
    return { loss, metrics: {} };
  };
}

/** Parameters exactly as `new SpeedVit(cfg, seed)` (model/kernels/speed_vit.ts) draws them. */
export function vitParams(cfg: VitConfig, seed = 0): Map<string, ParamSpec> {
  const rng = Rng.from(seed, "speed_vit");
  const d = cfg.dim, hid = cfg.mlpRatio * d, pdim = 3 * cfg.patch * cfg.patch, tokens = (cfg.img / cfg.patch) ** 2;
  const params = new Map<string, ParamSpec>();
  const add = (name: string, value: HostTensor<Float32Array>) => params.set(name, { value, trainable: true });
  const lin = (name: string, out: number, inp: number) => {
    add(`${name}.weight`, normal(rng.fork(name), [out, inp], 0.02));
    add(`${name}.bias`, zeros([out]));
  };
  const ln = (name: string) => {
    add(`${name}.weight`, constant([d], 1));
    add(`${name}.bias`, zeros([d]));
  };
  lin("patch_embed", d, pdim);
  add("pos_embed", normal(rng.fork("pos"), [1, tokens, d], 0.02));
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
  return params;
}

/** The reference ViT's training step: one AdamW (betas 0.9/0.999, eps 1e-8), one group. */
export function vitStepSpec(cfg: VitConfig = REFERENCE_VIT, seed = 0): TrainStepSpec {
  const params = vitParams(cfg, seed);
  return {
    params,
    optimizers: [{ id: "main", groups: [{ id: "all", params: [...params.keys()] }], betas: [0.9, 0.999], eps: 1e-8 }],
    ema: null,
    loss: vitLoss(cfg),
  };
}

/** The benchmark's fixed batch: N(0, 1) images, the same as bench/speed.ts draws. */
export function vitDraws(cfg: VitConfig, batch: number): StepDraws {
  const images = Rng.from(0, "speed", "images").fillNormal(new Float32Array(batch * 3 * cfg.img * cfg.img));
  return { images: { shape: [batch, 3, cfg.img, cfg.img], data: images } };
}

/** Adam at lr 1e-4, weight decay 0, as the torch twin. */
export const VIT_HYPER: StepHyper = { groups: { main: { all: { lr: 1e-4, weightDecay: 0 } } } };
