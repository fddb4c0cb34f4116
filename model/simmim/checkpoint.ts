/**
 * Load a SimMIM ViT encoder from a `.safetensors` file as a `VisionEncoder`: a checkpoint of
 * this suite's trainer, or an official SimMIM checkpoint converted to safetensors (the
 * `model` state dict of `simmim_pretrain__vit_base__img224__800ep.pth`: keys `encoder.*`
 * and `decoder.*`, optionally under `model.` or `module.`).
 *
 * Everything is read from the tensor shapes: width and patch from the patch embedding,
 * heads from the relative position bias table `[T, heads]`, and the grid from
 * `T = (2Gh-1)(2Gw-1) + 3` (square unless `imageSize` is given). The table is tied to the
 * grid, so the resolution must be the checkpoint's. The int buffer
 * `relative_position_index` is ignored: it is rebuilt (and equals the official one). The
 * safetensors reader takes F32 and I32 only: drop that int64 buffer or cast it when converting.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { EngineEncoder } from "../engine_encoder.ts";
import { readSafetensors } from "../safetensors.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { type SimmimConfig, simmimConfig, simmimDims } from "./config.ts";
import { SimmimEncoderForward } from "./method.ts";

export const SIMMIM_PREFIXES = ["", "model.", "module."];
const TABLE = "encoder.rel_pos_bias.relative_position_bias_table";

/** The encoder architecture implied by the tensors under `prefix`. */
export function simmimConfigFromTensors(
  tensors: Map<string, HostTensor>,
  prefix: string,
  opts: { imageSize?: number | [number, number] },
  where = "checkpoint",
): SimmimConfig {
  const shape = (n: string) => {
    const t = tensors.get(prefix + n);
    if (!t) throw new Error(`${where}: missing '${prefix}${n}' (not a SimMIM ViT state dict)`);
    return t.shape;
  };
  const [d, inChans, p] = shape("encoder.patch_embed.proj.weight");
  const [tableRows, numHeads] = shape(TABLE);
  let depth = 0;
  while (tensors.has(`${prefix}encoder.blocks.${depth}.attn.qkv.weight`)) depth++;
  let imageSize = opts.imageSize;
  if (imageSize === undefined) {
    const g = (Math.sqrt(tableRows - 3) + 1) / 2;
    if (!Number.isInteger(g)) {
      throw new Error(`${where}: ${TABLE} has ${tableRows} rows, not (2G-1)^2 + 3 for a square grid: pass imageSize`);
    }
    imageSize = g * p;
  }
  const config = simmimConfig("vit_b", {
    imageSize,
    patchSize: p,
    encoderStride: p,
    maskPatchSize: p, // masking is not used by the encoder; any divisor of the image keeps the config valid
    inChans,
    embedDim: d,
    depth,
    numHeads,
    mlpRatio: shape("encoder.blocks.0.mlp.fc1.weight")[0] / d,
    dropPathRate: 0,
  });
  const dims = simmimDims(config);
  if (dims.tableSize !== tableRows) {
    throw new Error(
      `${where}: ${TABLE} has ${tableRows} rows; imageSize ${JSON.stringify(imageSize)} with patch ${p} needs ` +
        `${dims.tableSize}: evaluate at the checkpoint's resolution`,
    );
  }
  return config;
}

/** Load the SimMIM encoder in `path` for evaluation (tfjs). */
export async function loadSimmimEncoder(
  path: string,
  opts: { imageSize?: number | [number, number] } = {},
): Promise<EngineEncoder> {
  const { tensors } = await readSafetensors(path);
  const prefix = SIMMIM_PREFIXES.find((p) =>
    tensors.has(`${p}encoder.patch_embed.proj.weight`) && tensors.has(`${p}${TABLE}`)
  );
  if (prefix === undefined) {
    throw new Error(
      `${path}: no SimMIM ViT encoder found (looked for '<prefix>encoder.patch_embed.proj.weight' and ` +
        `'<prefix>${TABLE}' with prefixes ${SIMMIM_PREFIXES.map((p) => `'${p}'`).join(", ")})`,
    );
  }
  const config = simmimConfigFromTensors(tensors, prefix, opts, path);
  const params = new Map<string, HostTensor<Float32Array>>();
  for (const [key, t] of tensors) {
    const name = key.slice(prefix.length);
    if (!key.startsWith(prefix) || !name.startsWith("encoder.") || !(t.data instanceof Float32Array)) continue;
    params.set(name, t as HostTensor<Float32Array>);
  }
  return tfEncoder(new SimmimEncoderForward(config), params);
}
