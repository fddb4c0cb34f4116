/**
 * Load a SimMIM ViT encoder as a `VisionEncoder` from any checkpoint file (`TensorSource`):
 * a checkpoint of this suite's trainer, the released
 * `simmim_pretrain__vit_base__img224__800ep.pth` (`save_checkpoint`'s `{"model": SimMIM state
 * dict (encoder.*, decoder.*), "optimizer", "lr_scheduler", "config", ...}`, read as
 * `model.encoder.*`; the rest is never read), or either converted to safetensors.
 *
 * Everything is read from the tensor shapes: width and patch from the patch embedding,
 * heads from the relative position bias table `[T, heads]`, and the grid from
 * `T = (2Gh-1)(2Gw-1) + 3` (square unless `imageSize` is given). The table is tied to the
 * grid, so the resolution must be the checkpoint's. The int buffer
 * `relative_position_index` is not uploaded: it is rebuilt (and equals the official one).
 * The decoder (`decoder.0.*`) and `mask_token` are checked but not uploaded: encoding never
 * masks and never reconstructs.
 *
 * @module
 */
import { vitBlockShapes } from "../nn/vit_block.ts";
import type { EngineEncoder } from "../engine_encoder.ts";
import { loadedEncoder } from "../loaded_encoder.ts";
import type { EngineFactory } from "../train_engine.ts";
import { type ExpectedParam, type Layout, loadParams, type LoadReport } from "../state_dict.ts";
import { openTensorSource, type TensorSource } from "../tensor_source.ts";
import { type SimmimConfig, simmimConfig, simmimDims } from "./config.ts";
import { SimmimEncoderForward } from "./method.ts";

export const SIMMIM_PREFIXES = ["", "model.", "module."];
const TABLE = "encoder.rel_pos_bias.relative_position_bias_table";

/** The encoder architecture implied by the tensors under `prefix`. */
export function simmimConfigFromTensors(
  tensors: Map<string, { shape: number[] }>,
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

/** The SimMIM ViT state dict of `c` (shared RPB, LayerScale, q/v biases, 1x1-conv decoder). */
export function simmimExpectedParams(c: SimmimConfig): ExpectedParam[] {
  const d = c.embedDim, p = c.patchSize, { tableSize, nTokens } = simmimDims(c);
  const out: ExpectedParam[] = [
    { name: "encoder.cls_token", shape: [1, 1, d], use: "encode" },
    { name: "encoder.mask_token", shape: [1, 1, d], use: "unused" },
    { name: "encoder.patch_embed.proj.weight", shape: [d, c.inChans, p, p], use: "encode" },
    { name: "encoder.patch_embed.proj.bias", shape: [d], use: "encode" },
    { name: TABLE, shape: [tableSize, c.numHeads], use: "encode" },
    { name: "encoder.rel_pos_bias.relative_position_index", shape: [nTokens + 1, nTokens + 1], use: "unused" },
  ];
  const block = vitBlockShapes(d, Math.trunc(d * c.mlpRatio), { qkvBias: "qv", layerScale: true });
  for (let i = 0; i < c.depth; i++) {
    for (const [n, shape] of block) out.push({ name: `encoder.blocks.${i}.${n}`, shape, use: "encode" });
  }
  out.push({ name: "encoder.norm.weight", shape: [d], use: "encode" }, {
    name: "encoder.norm.bias",
    shape: [d],
    use: "encode",
  });
  // The decoder is never run; its width (stride^2 * 3; build_simmim uses stride 16 for every ViT) is not checked.
  out.push({ name: "decoder.0.weight", shape: null, use: "unused" }, {
    name: "decoder.0.bias",
    shape: null,
    use: "unused",
  });
  return out;
}

export interface SimmimLoadOptions {
  /** The expected architecture (a preset plus overrides); default: read from the shapes. */
  config?: SimmimConfig;
  /** Says where `config` came from in errors, e.g. `preset vit_b`. */
  configName?: string;
  /** Must be the checkpoint's resolution (the RPB table is tied to the grid). */
  imageSize?: number | [number, number];
  /** The engine that encodes (default: tfjs, each tensor uploaded as it is read). */
  engine?: EngineFactory;
}

/** Where the model sits in `src` and the architecture it is checked against. */
export function simmimLayout(src: TensorSource, o: SimmimLoadOptions = {}): Layout<SimmimConfig> {
  const prefix = SIMMIM_PREFIXES.find((p) =>
    src.tensors.has(`${p}encoder.patch_embed.proj.weight`) && src.tensors.has(`${p}${TABLE}`)
  );
  if (prefix === undefined) {
    throw new Error(
      `${src.path}: no SimMIM ViT encoder found (looked for '<prefix>encoder.patch_embed.proj.weight' and ` +
        `'<prefix>${TABLE}' with prefixes ${SIMMIM_PREFIXES.map((p) => `'${p}'`).join(", ")}); is --method right?`,
    );
  }
  const inferred = simmimConfigFromTensors(src.tensors, prefix, { imageSize: o.imageSize }, src.path);
  const config = o.config
    ? simmimConfig("vit_b", { ...o.config, imageSize: o.imageSize ?? o.config.imageSize, dropPathRate: 0 })
    : inferred;
  const model = `SimMIM ${o.configName ?? "(architecture read from the file)"}`;
  return { prefix, config, expected: simmimExpectedParams(config), model };
}

/** Load the SimMIM encoder in `src` for evaluation. */
export async function loadSimmimEncoderFrom(
  src: TensorSource,
  o: SimmimLoadOptions = {},
): Promise<{ encoder: EngineEncoder; config: SimmimConfig; report: LoadReport }> {
  const { prefix, config, expected, model: what } = simmimLayout(src, o);
  const { encoder, report } = await loadedEncoder(
    () => new SimmimEncoderForward(config),
    (sink) => loadParams(src, prefix, expected, sink, { model: what }),
    o.engine,
  );
  return { encoder, config, report };
}

/** Load the SimMIM encoder in checkpoint file `path` for evaluation. */
export async function loadSimmimEncoder(
  path: string,
  opts: { imageSize?: number | [number, number] } = {},
): Promise<EngineEncoder> {
  const src = await openTensorSource(path);
  try {
    return (await loadSimmimEncoderFrom(src, opts)).encoder;
  } finally {
    src.close();
  }
}
