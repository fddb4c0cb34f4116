/**
 * Export SimMIM's ViT evaluation encoder (no mask; model/simmim/simmim.ts `encode`) to
 * ONNX: patch embed, cls prepended, BEiT blocks (q/v bias without key bias, LayerScale)
 * sharing one relative position bias, final LayerNorm, cls dropped; output `patches`
 * `[B, Gh, Gw, D]` and no global representation (SimMIM has none, SPEC 3).
 *
 * The shared bias depends only on the table and the grid, so it is gathered on the host
 * once (`[h, 1+N, 1+N]`) and stored as a constant added to every block's logits.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { SimmimConfig, SimmimDims } from "../simmim/config.ts";
import { relativePositionIndex } from "../simmim/rel_pos_bias.ts";
import { OnnxGraph } from "./graph.ts";
import { expandToBatch, type HostGetter, patchEmbedOnnx, vitBlockOnnx } from "./export_vit.ts";
import type { OnnxAdapterInput } from "./ort_encoder.ts";

/** The gathered relative position bias `[h, 1+N, 1+N]`. */
export function relPosBiasHost(table: HostTensor<Float32Array>, gh: number, gw: number): HostTensor<Float32Array> {
  const idx = relativePositionIndex(gh, gw);
  const h = table.shape[1], l = gh * gw + 1;
  const out = new Float32Array(h * l * l);
  for (let p = 0; p < l * l; p++) for (let k = 0; k < h; k++) out[k * l * l + p] = table.data[idx[p] * h + k];
  return { shape: [h, l, l], data: out };
}

export function exportSimmimEncoder(
  get: HostGetter,
  c: SimmimConfig,
  dims: SimmimDims,
  arch: string,
): { model: Uint8Array; adapter: OnnxAdapterInput } {
  const { gridH: gh, gridW: gw, imageH, imageW } = dims;
  const d = c.embedDim, n = gh * gw;
  const g = new OnnxGraph(arch);
  const images = g.input("images", ["batch", 3, imageH, imageW]);
  const emb = patchEmbedOnnx(
    g,
    images,
    get("encoder.patch_embed.proj.weight"),
    get("encoder.patch_embed.proj.bias"),
    gh,
    gw,
  );
  let x = g.concat([expandToBatch(g, get("encoder.cls_token"), emb, "cls_token"), emb], 1); // [B, 1+N, D]
  const bias = g.init(relPosBiasHost(get("encoder.rel_pos_bias.relative_position_bias_table"), gh, gw), "rel_pos_bias");
  const opts = { heads: c.numHeads, eps: c.normEps, qkvBias: "qv", layerScale: true } as const;
  for (let i = 0; i < c.depth; i++) x = vitBlockOnnx(g, x, get, `encoder.blocks.${i}`, opts, n + 1, bias);
  x = g.layerNorm(x, get("encoder.norm.weight"), get("encoder.norm.bias"), c.normEps, "encoder.norm");
  g.output(g.reshape(g.slice(x, [1], [n + 1], [1]), [-1, gh, gw, d]), "patches", ["batch", gh, gw, d]);
  return {
    model: g.toModel(),
    adapter: {
      arch,
      outputs: { global: null, patches: "patches", registers: null },
      imageSize: [imageH, imageW],
      patchSize: c.patchSize,
      embedDim: d,
    },
  };
}
