/**
 * Load an MAE encoder as a `VisionEncoder` from any checkpoint file (`TensorSource`): a
 * checkpoint of this suite's trainer, the released `mae_pretrain_vit_*.pth` (`{"model":
 * encoder state dict}`, timm names, read as `model.*`), `mae_visualize_*` (with the decoder,
 * reported as unexpected keys like `load_state_dict(strict=False)` does), or either
 * converted to safetensors. Keys are the official names, optionally under `model.` or `module.`.
 *
 * The architecture is read from the tensor shapes, except the number of heads, which no
 * shape carries: it defaults to the standard ViT's for the width (64 channels a head; 16
 * heads for ViT-H). The position embedding is the fixed sin-cos one, so a resolution other
 * than the checkpoint's is served by recomputing it for the new grid.
 *
 * @module
 */
import { vitBlockShapes } from "../nn/vit_block.ts";
import type { EngineEncoder } from "../engine_encoder.ts";
import { loadedEncoder } from "../loaded_encoder.ts";
import type { EngineFactory } from "../train_engine.ts";
import { type ExpectedParam, type Layout, loadParams, type LoadReport } from "../state_dict.ts";
import { openTensorSource, type TensorSource } from "../tensor_source.ts";
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
  tensors: Map<string, { shape: number[] }>,
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

/** The encoder part of the MAE state dict (timm names) at the config's resolution. */
export function maeExpectedParams(c: MaeConfig): ExpectedParam[] {
  const d = c.embedDim, p = c.patchSize, { nTokens } = maeDims(c);
  const out: ExpectedParam[] = [
    { name: "cls_token", shape: [1, 1, d], use: "encode" },
    { name: "pos_embed", shape: [1, nTokens + 1, d], use: "encode" },
    { name: "patch_embed.proj.weight", shape: [d, c.inChans, p, p], use: "encode" },
    { name: "patch_embed.proj.bias", shape: [d], use: "encode" },
  ];
  const block = vitBlockShapes(d, Math.trunc(d * c.mlpRatio), { qkvBias: "fused", layerScale: false });
  for (let i = 0; i < c.depth; i++) {
    for (const [n, shape] of block) out.push({ name: `blocks.${i}.${n}`, shape, use: "encode" });
  }
  out.push({ name: "norm.weight", shape: [d], use: "encode" }, { name: "norm.bias", shape: [d], use: "encode" });
  return out;
}

export interface MaeLoadOptions {
  /** The expected architecture at the checkpoint's resolution (a preset plus overrides); default: from the shapes. */
  config?: MaeConfig;
  /** Says where `config` came from in errors, e.g. `preset vit_b`. */
  configName?: string;
  /** Evaluation resolution; another grid than the checkpoint's gets the sin-cos `pos_embed` recomputed. */
  imageSize?: number | [number, number];
  /** Heads when the architecture is read from the shapes (no shape carries them). */
  numHeads?: number;
  /** The engine that encodes (default: tfjs, each tensor uploaded as it is read). */
  engine?: EngineFactory;
}

/** Where the encoder sits in `src`; `expected` is at the stored resolution, `config` at the evaluation one. */
export function maeLayout(src: TensorSource, o: MaeLoadOptions = {}): Layout<MaeConfig> {
  const prefix = MAE_PREFIXES.find((p) =>
    src.tensors.has(`${p}patch_embed.proj.weight`) && src.tensors.has(`${p}cls_token`)
  );
  if (prefix === undefined) {
    throw new Error(
      `${src.path}: no MAE encoder found (looked for '<prefix>patch_embed.proj.weight' and '<prefix>cls_token' with ` +
        `prefixes ${MAE_PREFIXES.map((p) => `'${p}'`).join(", ")}); is --method right?`,
    );
  }
  // The stored grid: the evaluation size's when pos_embed fits it (a non-square trainer checkpoint), else square.
  const fits = (size: number | [number, number]) => {
    const [h, w] = typeof size === "number" ? [size, size] : size;
    const p = src.tensors.get(`${prefix}patch_embed.proj.weight`)!.shape[2];
    return src.tensors.get(`${prefix}pos_embed`)?.shape[1] === (h / p) * (w / p) + 1;
  };
  const storedSize = o.imageSize !== undefined && fits(o.imageSize) ? o.imageSize : undefined;
  const stored = o.config ??
    maeConfigFromTensors(src.tensors, prefix, { numHeads: o.numHeads, imageSize: storedSize }, src.path);
  const config = maeConfig("vit_l", { ...stored, imageSize: o.imageSize ?? stored.imageSize });
  const model = `MAE ${o.configName ?? "(architecture read from the file)"}`;
  return { prefix, config, expected: maeExpectedParams(stored), model };
}

/** Load the MAE encoder in `src` for evaluation. */
export async function loadMaeEncoderFrom(
  src: TensorSource,
  o: MaeLoadOptions = {},
): Promise<{ encoder: EngineEncoder; config: MaeConfig; report: LoadReport }> {
  const { prefix, config, expected, model: what } = maeLayout(src, o);
  const { gridH, gridW, nTokens } = maeDims(config);
  const { encoder, report } = await loadedEncoder(
    () => new MaeEncoderForward(config),
    (sink) =>
      loadParams(src, prefix, expected, sink, {
        model: what,
        transform: (name, t) => {
          if (name !== "pos_embed" || t.shape[1] === nTokens + 1) return t;
          const pos = sincos2d(config.embedDim, [gridH, gridW], true); // fixed sin-cos: exact at any grid
          return { shape: [1, ...pos.shape], data: pos.data };
        },
      }),
    o.engine,
  );
  return { encoder, config, report };
}

/** Load the MAE encoder in checkpoint file `path` for evaluation. */
export async function loadMaeEncoder(
  path: string,
  opts: { imageSize?: number | [number, number]; numHeads?: number } = {},
): Promise<EngineEncoder> {
  const src = await openTensorSource(path);
  try {
    return (await loadMaeEncoderFrom(src, opts)).encoder;
  } finally {
    src.close();
  }
}
