/**
 * Load a CAPI backbone as a `VisionEncoder` from any checkpoint file (`TensorSource`): a
 * checkpoint of this suite's trainer (`ema.backbone.*`), the released
 * `capi_vitl14_*.pth` (a flat state dict whose `EncoderDecoder` keys carry the `backbone.`
 * prefix that `model.__model_loader__` strips; other keys are ignored, as there), or
 * either converted to safetensors (F32/F16/BF16).
 *
 * The architecture is the given config's (a preset; every shape is checked against it) or,
 * without one, read from the tensor shapes (heads from the RoPE `freqs` [2, head dim]).
 * Evaluation runs the encoder and decoder block 1 only (`dec_layer=1`, SPEC 1.4), so decoder
 * blocks 2+ are checked but never uploaded.
 *
 * @module
 */
import type { EngineEncoder } from "../engine_encoder.ts";
import { loadedEncoder } from "../loaded_encoder.ts";
import type { EngineFactory } from "../train_engine.ts";
import { type ExpectedParam, type Layout, loadParams, type LoadReport } from "../state_dict.ts";
import { openTensorSource, type TensorSource } from "../tensor_source.ts";
import { type CapiConfig, capiConfig } from "./config.ts";
import { CapiEncoderForward } from "./method.ts";

/**
 * Prefixes tried in order. `backbone.` first: it is what the released files hold and all that
 * `model.__model_loader__` reads (this suite's checkpoints have no bare `backbone.` keys). Then
 * EMA/teacher weights (the released CAPI models are the teacher), the student last.
 */
export const BACKBONE_PREFIXES = [
  "backbone.",
  "ema.backbone.",
  "teacher.backbone.",
  "student_ema.backbone.",
  "model.",
  "",
  "student.backbone.",
];

/** The architecture implied by a backbone's tensors under `prefix`. */
export function capiConfigFromTensors(
  tensors: Map<string, { shape: number[] }>,
  prefix: string,
  imageSize: number | [number, number],
  where = "checkpoint",
): CapiConfig {
  const shape = (n: string) => {
    const t = tensors.get(prefix + n);
    if (!t) throw new Error(`${where}: missing '${prefix}${n}'`);
    return t.shape;
  };
  const [D, , p] = shape("patch_embed.weight");
  const depth = (stack: string) => {
    let n = 0;
    while (tensors.has(`${prefix}${stack}.blocks.${n}.residual1.fn.q_proj.weight`)) n++;
    return n;
  };
  const hd = shape("encoder.blocks.0.residual1.fn.rope.freqs")[1];
  return capiConfig("vit_l", {
    imageSize,
    patchSize: p,
    embedDim: D,
    numHeads: D / hd,
    encoderDepth: depth("encoder"),
    decoderDepth: depth("decoder"),
    mlpRatio: shape("encoder.blocks.0.residual2.fn.fc1.weight")[0] / D,
    nRegisters: shape("registers")[1],
    dropPathRate: 0,
  });
}

/** The `EncoderDecoder` state dict of `c`: names and shapes; decoder blocks 2+ are not run at evaluation. */
export function capiExpectedParams(c: CapiConfig): ExpectedParam[] {
  const D = c.embedDim, p = c.patchSize, hidden = Math.round(c.mlpRatio * D), hd = D / c.numHeads;
  const out: ExpectedParam[] = [
    { name: "patch_embed.weight", shape: [D, 3, p, p], use: "encode" },
    { name: "patch_embed.bias", shape: [D], use: "encode" },
    { name: "registers", shape: [1, c.nRegisters, D], use: "encode" },
    { name: "mask_token", shape: [1, D], use: "encode" },
  ];
  for (const [stack, depth] of [["encoder", c.encoderDepth], ["decoder", c.decoderDepth]] as const) {
    for (let i = 0; i < depth; i++) {
      const use = stack === "encoder" || i === 0 ? "encode" : "unused";
      const b = `${stack}.blocks.${i}.`;
      out.push({ name: `${b}residual1.norm.weight`, shape: [D], use });
      for (const n of ["q_proj", "k_proj", "v_proj", "proj"]) {
        out.push({ name: `${b}residual1.fn.${n}.weight`, shape: [D, D], use });
      }
      out.push({ name: `${b}residual1.fn.rope.freqs`, shape: [2, hd], use });
      out.push({ name: `${b}residual2.norm.weight`, shape: [D], use });
      out.push({ name: `${b}residual2.fn.fc1.weight`, shape: [hidden, D], use });
      out.push({ name: `${b}residual2.fn.fc2.weight`, shape: [D, hidden], use });
    }
  }
  return out;
}

export interface CapiLoadOptions {
  /** The expected architecture (a preset plus overrides); default: read from the shapes. */
  config?: CapiConfig;
  /** Says where `config` came from in errors, e.g. `preset vit_l`. */
  configName?: string;
  /** Evaluation resolution (RoPE works at any multiple of the patch); default the config's. */
  imageSize?: number | [number, number];
  /** The engine that encodes (default: tfjs, each tensor uploaded as it is read). */
  engine?: EngineFactory;
}

/** Where the backbone sits in `src` and the architecture it is checked against. */
export function capiLayout(src: TensorSource, o: CapiLoadOptions = {}): Layout<CapiConfig> {
  const prefix = BACKBONE_PREFIXES.find((p) => src.tensors.has(`${p}patch_embed.weight`));
  if (prefix === undefined) {
    throw new Error(
      `${src.path}: no CAPI backbone found (looked for '<prefix>patch_embed.weight' with prefixes ` +
        `${BACKBONE_PREFIXES.map((p) => `'${p}'`).join(", ")}); is --method right?`,
    );
  }
  const base = o.config ?? capiConfigFromTensors(src.tensors, prefix, o.imageSize ?? 224, src.path);
  const config = capiConfig("vit_l", { ...base, imageSize: o.imageSize ?? base.imageSize, dropPathRate: 0 });
  const model = `CAPI ${o.configName ?? "(architecture read from the file)"}`;
  return { prefix, config, expected: capiExpectedParams(config), model };
}

/** Load the CAPI backbone in `src` for evaluation. */
export async function loadCapiEncoderFrom(
  src: TensorSource,
  o: CapiLoadOptions = {},
): Promise<{ encoder: EngineEncoder; config: CapiConfig; report: LoadReport }> {
  const { prefix, config, expected, model } = capiLayout(src, o);
  const { encoder, report } = await loadedEncoder(
    () => new CapiEncoderForward(config, "backbone."),
    (sink) => loadParams(src, prefix, expected, sink, { model, storeName: (n) => `backbone.${n}` }),
    o.engine,
  );
  return { encoder, config, report };
}

/** Load the backbone in checkpoint file `path` for evaluation at `imageSize`. */
export async function loadCapiEncoder(
  path: string,
  opts: { imageSize?: number | [number, number] } = {},
): Promise<EngineEncoder> {
  const src = await openTensorSource(path);
  try {
    return (await loadCapiEncoderFrom(src, opts)).encoder;
  } finally {
    src.close();
  }
}
