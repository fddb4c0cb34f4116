/**
 * Load a CAPI backbone from a `.safetensors` file as a `VisionEncoder`: a checkpoint of this
 * suite's trainer (`ema.backbone.*`), or an official CAPI checkpoint converted to
 * safetensors (keys of `EncoderDecoder` with or without a `backbone.`, `teacher.backbone.`,
 * `student_ema.backbone.` ... prefix). The architecture is read from the tensor shapes;
 * only the input resolution must be given.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { EngineEncoder } from "../engine_encoder.ts";
import { readSafetensors } from "../safetensors.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { type CapiConfig, capiConfig } from "./config.ts";
import { CapiEncoderForward } from "./method.ts";

/** Prefixes tried in order: EMA/teacher weights first (the released CAPI models are the teacher). */
export const BACKBONE_PREFIXES = [
  "ema.backbone.",
  "teacher.backbone.",
  "student_ema.backbone.",
  "backbone.",
  "model.",
  "",
  "student.backbone.",
];

/** The architecture implied by a backbone's tensors under `prefix`. */
export function capiConfigFromTensors(
  tensors: Map<string, HostTensor>,
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

/** Load the backbone in `path` (safetensors) for evaluation at `imageSize` (tfjs). */
export async function loadCapiEncoder(
  path: string,
  opts: { imageSize?: number | [number, number] } = {},
): Promise<EngineEncoder> {
  const { tensors } = await readSafetensors(path);
  const prefix = BACKBONE_PREFIXES.find((p) => tensors.has(`${p}patch_embed.weight`));
  if (prefix === undefined) {
    throw new Error(
      `${path}: no CAPI backbone found (looked for '<prefix>patch_embed.weight' with prefixes ` +
        `${BACKBONE_PREFIXES.map((p) => `'${p}'`).join(", ")})`,
    );
  }
  const config = capiConfigFromTensors(tensors, prefix, opts.imageSize ?? 224, path);
  const params = new Map<string, HostTensor<Float32Array>>();
  for (const [name, t] of tensors) {
    if (!name.startsWith(prefix) || !(t.data instanceof Float32Array)) continue;
    params.set(`backbone.${name.slice(prefix.length)}`, t as HostTensor<Float32Array>);
  }
  return tfEncoder(new CapiEncoderForward(config, "backbone."), params);
}
