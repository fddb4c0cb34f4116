/**
 * CAPI configuration: the zod schema with the paper's ViT-L/14 defaults, the presets
 * `tiny` / `vit_s` / `vit_b` / `vit_l`, and the reader of a fixture manifest's `config`.
 *
 * Every default cites `capi:default_pretrain_config.yaml` via `../shared/SPEC.md` 1.9.
 *
 * @module
 */
import { z } from "zod";

const Size = z.union([
  z.number().int().positive(),
  z.tuple([z.number().int().positive(), z.number().int().positive()]),
]);

export const CapiOptimConfig = z.strictObject({
  lr: z.number().nonnegative().default(1e-3).describe("peak student lr (SPEC 1.8; global batch 16384)"),
  weightDecay: z.number().nonnegative().default(0.1).describe("student AdamW weight decay (SPEC 1.8)"),
  betas: z.tuple([z.number(), z.number()]).default([0.9, 0.95]).describe("AdamW betas of both optimizers"),
  eps: z.number().positive().default(1e-8).describe("torch AdamW default"),
  patchEmbedLrMult: z.number().nonnegative().default(0.2).describe("lr multiplier of patch_embed.*"),
  ropeLrMult: z.number().nonnegative().default(0).describe("lr multiplier of rope.freqs: frozen in practice"),
  normWdMult: z.number().nonnegative().default(0.1).describe("wd multiplier of RMSNorm weights"),
  clusteringLr: z.number().nonnegative().default(5e-4).describe("peak lr of the OnlineClustering head's AdamW"),
  clusteringWeightDecay: z.number().nonnegative().default(0.01)
    .describe("torch AdamW default: the official config passes only betas (SPEC 1.8)"),
  clusteringBetas: z.tuple([z.number(), z.number()]).default([0.9, 0.95]).describe("clustering AdamW betas"),
  clusteringEps: z.number().positive().default(1e-8),
  warmupFraction: z.number().min(0).max(1).default(0.1).describe("50k of 500k iterations warm up (SPEC 1.8)"),
  truncateCos: z.number().min(0).max(1).default(0.8).describe("cosine stops at 0.8*pi: lr never reaches 0"),
  momentumBase: z.number().min(0).max(1).default(0.999)
    .describe("EMA momentum at the end of warmup; it starts at exactly 1.0 and cosines back towards 1.0"),
  totalIters: z.number().int().positive().default(500_000).describe("schedule length (500k official)"),
});
export type CapiOptimConfig = z.infer<typeof CapiOptimConfig>;

export const CapiConfig = z.strictObject({
  imageSize: Size.default(224).describe("input resolution, or [H, W]"),
  patchSize: z.number().int().positive().default(14).describe("ViT-L/14"),
  embedDim: z.number().int().positive().default(1024).describe("width D of encoder and predictor"),
  numHeads: z.number().int().positive().default(16).describe("heads (hd = 64); shared by both stacks"),
  encoderDepth: z.number().int().positive().default(24),
  decoderDepth: z.number().int().positive().default(12).describe("cross-attention predictor blocks"),
  mlpRatio: z.number().positive().default(4),
  nRegisters: z.number().int().nonnegative().default(16).describe("'edge' coordinates need a multiple of 4"),
  normEps: z.number().positive().default(1e-5).describe("torch nn.RMSNorm eps of every norm"),
  dropPathRate: z.number().min(0).max(1).default(0.2).describe("efficient stochastic depth, student only"),
  numClusters: z.number().int().positive().default(16384).describe("prototypes K"),
  studentTemp: z.number().positive().default(0.12),
  targetTemp: z.number().positive().default(0.06).describe("temperature of the Sinkhorn input"),
  predTemp: z.number().positive().default(0.12).describe("temperature of the clustering cross-entropy"),
  nSkIter: z.number().int().positive().default(3),
  positionwiseSk: z.boolean().default(true)
    .describe("Sinkhorn per position over the batch (CAPI); false = one Sinkhorn over all B*N tokens"),
  clusteringBias: z.boolean().default(true).describe("OnlineClustering linear layer has a bias"),
  maskRatio: z.number().min(0).max(1).default(0.65).describe("inverse block + roll"),
  predictionSubsampling: z.number().min(0).max(1).default(0.05).describe("fraction of masked tokens predicted"),
  optim: CapiOptimConfig.default(CapiOptimConfig.parse({})),
});
export type CapiConfig = z.infer<typeof CapiConfig>;
export type CapiConfigInput = z.input<typeof CapiConfig>;

/** Derived sizes used everywhere. */
export interface CapiDims {
  imageH: number;
  imageW: number;
  gridH: number;
  gridW: number;
  nTokens: number;
  headDim: number;
  nMasked: number;
  nVisible: number;
  nPredict: number;
}

export function capiDims(c: CapiConfig): CapiDims {
  const [imageH, imageW] = typeof c.imageSize === "number" ? [c.imageSize, c.imageSize] : c.imageSize;
  if (imageH % c.patchSize || imageW % c.patchSize) {
    throw new Error(`CapiConfig.imageSize [${imageH}, ${imageW}] is not a multiple of patchSize ${c.patchSize}`);
  }
  if (c.embedDim % c.numHeads) throw new Error(`CapiConfig.embedDim ${c.embedDim} not divisible by numHeads`);
  const headDim = c.embedDim / c.numHeads;
  if (headDim % 4) throw new Error(`CapiConfig: head dim ${headDim} must be a multiple of 4 (2-D RoPE)`);
  if (c.nRegisters % 4) throw new Error(`CapiConfig.nRegisters ${c.nRegisters} must be a multiple of 4 ('edge')`);
  const gridH = imageH / c.patchSize, gridW = imageW / c.patchSize;
  const nTokens = gridH * gridW;
  // capi data.py: int(N * mask_ratio), int(n_masked * prediction_subsampling).
  const nMasked = Math.floor(nTokens * c.maskRatio);
  const nPredict = Math.floor(nMasked * c.predictionSubsampling);
  return { imageH, imageW, gridH, gridW, nTokens, headDim, nMasked, nVisible: nTokens - nMasked, nPredict };
}

/** Training needs at least one visible and one predicted token per image (evaluation does not). */
export function assertTrainable(c: CapiConfig, d: CapiDims): void {
  if (d.nMasked >= d.nTokens || d.nPredict < 1) {
    throw new Error(
      `CapiConfig: ${d.nTokens} tokens with maskRatio ${c.maskRatio} and predictionSubsampling ` +
        `${c.predictionSubsampling} give ${d.nMasked} masked / ${d.nPredict} predicted; need >= 1 visible and >= 1 predicted`,
    );
  }
}

/**
 * Presets. `tiny` runs on 2 CPU cores: 32 px, patch 4 (8x8 grid), width 192. The official
 * optimisation assumes batch 16384, K 16384 and 500k steps; for batch ~64 and a few thousand
 * steps it is rescaled (see `.describe()` of each override in `TINY_WHY`).
 */
export const CAPI_PRESETS = {
  tiny: {
    imageSize: 32,
    patchSize: 4,
    embedDim: 192,
    numHeads: 3,
    encoderDepth: 4,
    decoderDepth: 2,
    nRegisters: 4,
    dropPathRate: 0.1,
    numClusters: 256,
    predictionSubsampling: 0.25,
    optim: { lr: 5e-4, clusteringLr: 5e-4, momentumBase: 0.99, totalIters: 2000 },
  },
  vit_s: { embedDim: 384, numHeads: 6, encoderDepth: 12, decoderDepth: 6, dropPathRate: 0.1 },
  vit_b: { embedDim: 768, numHeads: 12, encoderDepth: 12, decoderDepth: 8, dropPathRate: 0.1 },
  vit_l: {},
} as const satisfies Record<string, CapiConfigInput>;
export type CapiPreset = keyof typeof CAPI_PRESETS;

/** Why the tiny preset departs from the official recipe. */
export const TINY_WHY = {
  numClusters: "256 prototypes, not 16384: positionwise Sinkhorn spreads each position over the batch (~64 " +
    "images), and with K >> B most prototypes would get no mass; the paper's ablation also shows K can shrink",
  momentumBase: "0.99, not 0.999: the teacher's half-life (ln 2/(1-m) = 69 steps) must fit a run of ~2000 steps; " +
    "0.999 (half-life 693 steps) was tuned for 500k steps",
  lr: "5e-4 peak for both AdamWs: batch 64 gives noisier gradients than 16384, so the official 1e-3 is halved, " +
    "while a short run still needs a large step; clustering lr matches the student's so the head keeps up",
  predictionSubsampling: "0.25: with 64 tokens 0.05 would predict 2 tokens per image",
} as const;

/** Preset names, with the reasons for the tiny preset's departures from the official recipe. */
export const CapiPresetName = z.enum(["tiny", "vit_s", "vit_b", "vit_l"]).describe(
  "vit_l = the official ViT-L/14 recipe (SPEC 1.9); vit_s / vit_b change only width, heads, depths and " +
    "drop path; tiny (32 px, patch 4, width 192, 4 + 2 blocks, batch ~64, ~2000 steps on CPU) rescales: " +
    Object.entries(TINY_WHY).map(([k, v]) => `${k}: ${v}`).join("; "),
);

/** A resolved config from a preset plus overrides. */
export function capiConfig(preset: CapiPreset = "vit_l", overrides: CapiConfigInput = {}): CapiConfig {
  const base = CAPI_PRESETS[preset] as CapiConfigInput;
  return CapiConfig.parse({ ...base, ...overrides, optim: { ...(base.optim ?? {}), ...(overrides.optim ?? {}) } });
}

function req<T>(obj: Record<string, unknown>, path: string): T {
  let cur: unknown = obj;
  for (const k of path.split(".")) {
    if (cur === null || typeof cur !== "object" || !(k in (cur as object))) {
      throw new Error(`fixture config: missing key '${path}'`);
    }
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur as T;
}

function opt<T>(obj: Record<string, unknown>, path: string, fallback: T): T {
  try {
    return req<T>(obj, path);
  } catch {
    return fallback;
  }
}

/** Build a `CapiConfig` from a capi fixture manifest's `config` (official python names). */
export function capiConfigFromFixture(cfg: Record<string, unknown>): CapiConfig {
  const o = req<Record<string, unknown>>(cfg, "optimizer");
  const co = req<Record<string, unknown>>(cfg, "clustering_optimizer");
  return CapiConfig.parse({
    imageSize: req(cfg, "image_size"),
    patchSize: req(cfg, "model.patch_size"),
    embedDim: req(cfg, "model.transformers_kwargs.embed_dim"),
    numHeads: req(cfg, "model.transformers_kwargs.block_kwargs.attn_kwargs.num_heads"),
    encoderDepth: req(cfg, "model.encoder_kwargs.depth"),
    decoderDepth: req(cfg, "model.decoder_kwargs.depth"),
    mlpRatio: opt(cfg, "model.transformers_kwargs.block_kwargs.mlp_ratio", 4),
    nRegisters: req(cfg, "model.n_registers"),
    normEps: opt(cfg, "model.norm_layer_kwargs.eps", 1e-5),
    dropPathRate: opt(cfg, "model.transformers_kwargs.drop_path_rate", 0),
    numClusters: req(cfg, "num_clusters"),
    studentTemp: req(cfg, "student_temp"),
    targetTemp: req(cfg, "clustering_kwargs.target_temp"),
    predTemp: req(cfg, "clustering_kwargs.pred_temp"),
    nSkIter: req(cfg, "clustering_kwargs.n_sk_iter"),
    positionwiseSk: opt(cfg, "clustering_kwargs.positionwise_sk", true),
    clusteringBias: opt(cfg, "clustering_kwargs.bias", true),
    maskRatio: req(cfg, "mask_ratio"),
    predictionSubsampling: req(cfg, "prediction_subsampling"),
    optim: {
      lr: o.lr,
      weightDecay: o.weight_decay,
      betas: o.betas,
      eps: o.eps ?? 1e-8,
      patchEmbedLrMult: o.patch_embed_lr_mult ?? 0.2,
      ropeLrMult: o.rope_lr_mult ?? 0,
      normWdMult: o.layernorm_wd_mult ?? 0.1,
      clusteringLr: co.lr,
      clusteringWeightDecay: co.weight_decay ?? 0.01,
      clusteringBetas: co.betas ?? [0.9, 0.95],
      clusteringEps: co.eps ?? 1e-8,
    },
  });
}
