/**
 * MAE configuration: the zod schema with the paper's ViT-L/16 defaults (mae:models_mae.py,
 * main_pretrain.py, PRETRAIN.md via `../shared/SPEC.md` section 2), the presets
 * `tiny` / `vit_s` / `vit_b` / `vit_l`, and the reader of a fixture manifest's `config`.
 *
 * @module
 */
import { z } from "zod";

const Size = z.union([
  z.number().int().positive(),
  z.tuple([z.number().int().positive(), z.number().int().positive()]),
]);

export const MaeOptimConfig = z.strictObject({
  blr: z.number().nonnegative().default(1.5e-4).describe("base lr; the peak lr is blr * batch / 256 (PRETRAIN.md)"),
  minLr: z.number().nonnegative().default(0).describe("half-cycle cosine ends here (main_pretrain.py --min_lr 0)"),
  weightDecay: z.number().nonnegative().default(0.05)
    .describe("AdamW decay of parameters with ndim > 1 that are not biases (timm add_weight_decay)"),
  betas: z.tuple([z.number(), z.number()]).default([0.9, 0.95]).describe("main_pretrain.py AdamW betas"),
  eps: z.number().positive().default(1e-8).describe("torch AdamW default"),
  totalIters: z.number().int().positive().default(249_600)
    .describe("schedule length: 800 epochs x 312 iterations (IN-1k at batch 4096)"),
  warmupFraction: z.number().min(0).max(1).default(0.05)
    .describe("40 of 800 epochs warm up; a fraction so that the schedule follows totalIters"),
});
export type MaeOptimConfig = z.infer<typeof MaeOptimConfig>;

/** Global batch of the official recipe (PRETRAIN.md): the lr scale when no batch size is given. */
export const MAE_OFFICIAL_BATCH = 4096;

/** Iterations of linear warmup: `round(warmupFraction * totalIters)`. */
export function maeWarmupIters(o: MaeOptimConfig): number {
  return Math.round(o.warmupFraction * o.totalIters);
}

export const MaeConfig = z.strictObject({
  imageSize: Size.default(224).describe("input resolution, or [H, W]"),
  patchSize: z.number().int().positive().default(16).describe("ViT-L/16"),
  inChans: z.number().int().positive().default(3),
  embedDim: z.number().int().positive().default(1024).describe("encoder width (ViT-L)"),
  depth: z.number().int().positive().default(24),
  numHeads: z.number().int().positive().default(16),
  decoderEmbedDim: z.number().int().positive().default(512).describe("lightweight decoder (mae_vit_large_patch16)"),
  decoderDepth: z.number().int().positive().default(8),
  decoderNumHeads: z.number().int().positive().default(16),
  mlpRatio: z.number().positive().default(4),
  normEps: z.number().positive().default(1e-6).describe("partial(nn.LayerNorm, eps=1e-6)"),
  normPixLoss: z.boolean().default(true).describe("per-patch normalised targets: used for all reported results"),
  maskRatio: z.number().min(0).max(1).default(0.75).describe("random masking ratio (paper: 75%)"),
  optim: MaeOptimConfig.default(MaeOptimConfig.parse({})),
});
export type MaeConfig = z.infer<typeof MaeConfig>;
export type MaeConfigInput = z.input<typeof MaeConfig>;

/** Derived sizes. */
export interface MaeDims {
  imageH: number;
  imageW: number;
  gridH: number;
  gridW: number;
  /** L = Gh * Gw patch tokens. */
  nTokens: number;
  /** `int(L * (1 - mask_ratio))` (models_mae.py:133). */
  lenKeep: number;
  /** Values per patch, `p*p*C`. */
  patchDim: number;
}

export function maeDims(c: MaeConfig): MaeDims {
  const [imageH, imageW] = typeof c.imageSize === "number" ? [c.imageSize, c.imageSize] : c.imageSize;
  if (imageH % c.patchSize || imageW % c.patchSize) {
    throw new Error(`MaeConfig.imageSize [${imageH}, ${imageW}] is not a multiple of patchSize ${c.patchSize}`);
  }
  for (
    const [w, h, key] of [[c.embedDim, c.numHeads, "embedDim"], [
      c.decoderEmbedDim,
      c.decoderNumHeads,
      "decoderEmbedDim",
    ]] as const
  ) {
    if (w % h) throw new Error(`MaeConfig.${key} ${w} is not divisible by its ${h} heads`);
    if (w % 4) throw new Error(`MaeConfig.${key} ${w} must be a multiple of 4 (2-D sin-cos embedding)`);
  }
  const gridH = imageH / c.patchSize, gridW = imageW / c.patchSize;
  const nTokens = gridH * gridW;
  const lenKeep = Math.trunc(nTokens * (1 - c.maskRatio));
  if (lenKeep < 1 || lenKeep >= nTokens) {
    throw new Error(`MaeConfig.maskRatio ${c.maskRatio} keeps ${lenKeep} of ${nTokens} tokens; need 1..${nTokens - 1}`);
  }
  return { imageH, imageW, gridH, gridW, nTokens, lenKeep, patchDim: c.patchSize * c.patchSize * c.inChans };
}

/**
 * Presets. `tiny` runs on 2 CPU cores (32 px, patch 4 -> 8x8 grid, width 192, 4 blocks,
 * decoder 128 wide x 2). The `vit_*` presets are the MAE models (decoder 512 x 8, 16 heads).
 *
 * `deno task pretrain --method mae --preset tiny --steps 2000 --batch 64 [--backend blas]`:
 * measured 8.7 img/s on wasm and 21.3 img/s on blas (2 cores shared with other jobs at load
 * ~9; 2026-11-27), i.e. ~4 h / ~1.7 h for 2000 steps there; the loss falls from ~1.25 to
 * ~0.9 within 60 steps at batch 16.
 */
export const MAE_PRESETS = {
  tiny: {
    imageSize: 32,
    patchSize: 4,
    embedDim: 192,
    depth: 4,
    numHeads: 3,
    decoderEmbedDim: 128,
    decoderDepth: 2,
    decoderNumHeads: 4,
    optim: { blr: 1.2e-3, totalIters: 2000 },
  },
  vit_s: { embedDim: 384, depth: 12, numHeads: 6 },
  vit_b: { embedDim: 768, depth: 12, numHeads: 12 },
  vit_l: {},
  /** MAE ViT-H/14 (`mae_pretrain_vit_huge.pth`): 16 heads of 80. */
  vit_h: { patchSize: 14, embedDim: 1280, depth: 32, numHeads: 16 },
} as const satisfies Record<string, MaeConfigInput>;
export type MaePreset = keyof typeof MAE_PRESETS;

/** Why the tiny preset departs from the official recipe. */
export const MAE_TINY_WHY = {
  decoderEmbedDim: "128 x 2 blocks: the official 512 x 8 decoder would be 10x the tiny encoder's cost",
  blr: "1.2e-3 (peak 3e-4 at batch 64): the official peak 2.4e-3 at batch 4096 scaled by sqrt(64/4096), as for " +
    "Adam at small batch; the linear rule (3.75e-5) barely moves a 2000-step run. Not tuned",
} as const;

/** A resolved config from a preset plus overrides. */
export function maeConfig(preset: MaePreset = "vit_l", overrides: MaeConfigInput = {}): MaeConfig {
  const base = MAE_PRESETS[preset] as MaeConfigInput;
  return MaeConfig.parse({ ...base, ...overrides, optim: { ...(base.optim ?? {}), ...(overrides.optim ?? {}) } });
}

function req<T>(obj: Record<string, unknown>, key: string, where: string): T {
  if (!(key in obj)) throw new Error(`${where}: fixture config has no '${key}' (keys: ${Object.keys(obj).join(", ")})`);
  return obj[key] as T;
}

/** Parse `"LayerNorm(eps=1e-6)"` (the fixtures' `norm_layer`) to its eps. */
export function epsFromNormLayer(text: unknown, fallback: number): number {
  if (typeof text !== "string") return fallback;
  const m = /eps=([0-9.eE+-]+)/.exec(text);
  return m ? Number(m[1]) : fallback;
}

/**
 * Build a `MaeConfig` from an MAE fixture manifest's `config` (official python names).
 * The optimizer's absolute `lr` becomes `blr` at batch 256 so that `blr * 256 / 256 = lr`.
 */
export function maeConfigFromFixture(cfg: Record<string, unknown>, where = "mae fixture"): MaeConfig {
  const o = req<Record<string, unknown>>(cfg, "optimizer", where);
  return MaeConfig.parse({
    imageSize: req(cfg, "img_size", where),
    patchSize: req(cfg, "patch_size", where),
    inChans: cfg.in_chans ?? 3,
    embedDim: req(cfg, "embed_dim", where),
    depth: req(cfg, "depth", where),
    numHeads: req(cfg, "num_heads", where),
    decoderEmbedDim: req(cfg, "decoder_embed_dim", where),
    decoderDepth: req(cfg, "decoder_depth", where),
    decoderNumHeads: req(cfg, "decoder_num_heads", where),
    mlpRatio: cfg.mlp_ratio ?? 4,
    normEps: epsFromNormLayer(cfg.norm_layer, 1e-6),
    normPixLoss: req(cfg, "norm_pix_loss", where),
    maskRatio: req(cfg, "mask_ratio", where),
    optim: { blr: req(o, "lr", where), weightDecay: req(o, "weight_decay", where), betas: o.betas, eps: o.eps },
  });
}
