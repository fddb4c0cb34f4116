/**
 * Load an MAE encoder from a `.safetensors` file as a `VisionEncoder`: a checkpoint of this
 * suite's trainer, or an official MAE checkpoint converted to safetensors (the `model`
 * state dict of `mae_pretrain_vit_*.pth`, encoder only, or of `mae_visualize_*`, with the
 * decoder). Keys are the official names, optionally under `model.` or `module.`.
 *
 * The architecture is read from the tensor shapes, except the number of heads, which no
 * shape carries: it defaults to the standard ViT's for the width (64 channels a head; 16
 * heads for ViT-H). The position embedding is the fixed sin-cos one, so a resolution other
 * than the checkpoint's is served by recomputing it for the new grid.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { EngineEncoder } from "../engine_encoder.ts";
import { readSafetensors } from "../safetensors.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { type MaeConfig, maeConfig, maeDims } from "./config.ts";
import { MaeEncoderForward } from "./method.ts";
import { sincos2d } from "./sincos.ts";

export const MAE_PREFIXES = ["", "model.", "module."];

/** Heads of the standard ViT of width D (timm `vit_*`; MAE's ViT-H/14 has 16 heads of 80). */
export function defaultHeads(width: number): number {
  return ({ 1280: 16 } as Record<number, number>)[width] ?? Math.max(1, Math.round(width / 64));
}

/** The encoder architecture implied by the tensors under `prefix`. */
export function maeConfigFromTensors(
  tensors: Map<string, HostTensor>,
  prefix: string,
  opts: { imageSize?: number | [number, number]; numHeads?: number },
  where = "checkpoint",
): MaeConfig {
  const shape = (n: string) => {
    const t = tensors.get(prefix + n);
    if (!t) throw new Error(`${where}: missing '${prefix}${n}' (not an MAE encoder state dict)`);
    return t.shape;
  };
  const [d, inChans, p] = shape("patch_embed.proj.weight");
  let depth = 0;
  while (tensors.has(`${prefix}blocks.${depth}.attn.qkv.weight`)) depth++;
  const nTokens = shape("pos_embed")[1] - 1;
  const side = Math.round(Math.sqrt(nTokens));
  if (opts.imageSize === undefined && side * side !== nTokens) {
    throw new Error(`${where}: pos_embed has ${nTokens} patch rows, not a square grid: pass imageSize [H, W]`);
  }
  const numHeads = opts.numHeads ?? defaultHeads(d);
  return maeConfig("vit_l", {
    imageSize: opts.imageSize ?? side * p,
    patchSize: p,
    inChans,
    embedDim: d,
    depth,
    numHeads,
    mlpRatio: shape("blocks.0.mlp.fc1.weight")[0] / d,
  });
}

/** Load the MAE encoder in `path` for evaluation (tfjs). */
export async function loadMaeEncoder(
  path: string,
  opts: { imageSize?: number | [number, number]; numHeads?: number } = {},
): Promise<EngineEncoder> {
  const { tensors } = await readSafetensors(path);
  const prefix = MAE_PREFIXES.find((p) => tensors.has(`${p}patch_embed.proj.weight`) && tensors.has(`${p}cls_token`));
  if (prefix === undefined) {
    throw new Error(
      `${path}: no MAE encoder found (looked for '<prefix>patch_embed.proj.weight' and '<prefix>cls_token' with ` +
        `prefixes ${MAE_PREFIXES.map((p) => `'${p}'`).join(", ")})`,
    );
  }
  const config = maeConfigFromTensors(tensors, prefix, opts, path);
  const { gridH, gridW, nTokens } = maeDims(config);
  const params = new Map<string, HostTensor<Float32Array>>();
  const encoderName = (n: string) => /^(cls_token|pos_embed|patch_embed\.|blocks\.|norm\.)/.test(n);
  for (const [key, t] of tensors) {
    const name = key.slice(prefix.length);
    if (!key.startsWith(prefix) || !encoderName(name) || !(t.data instanceof Float32Array)) continue;
    if (name === "pos_embed" && t.shape[1] !== nTokens + 1) {
      const pos = sincos2d(config.embedDim, [gridH, gridW], true); // fixed sin-cos: exact at any grid
      params.set(name, { shape: [1, ...pos.shape], data: pos.data });
    } else params.set(name, t as HostTensor<Float32Array>);
  }
  return tfEncoder(new MaeEncoderForward(config), params);
}
