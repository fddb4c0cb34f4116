/**
 * Export MAE's evaluation encoder (no masking; model/mae/method.ts `MaeEncoderForward`) to ONNX:
 * patch embed + fixed sin-cos pos-embed, cls token (+ its pos-embed row) prepended, pre-LN
 * blocks, final LayerNorm; outputs `global` = cls `[B, D]` and `patches` `[B, Gh, Gw, D]`.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { MaeConfig, MaeDims } from "../mae/config.ts";
import { OnnxGraph } from "./graph.ts";
import { expandToBatch, type HostGetter, patchEmbedOnnx, vitBlockOnnx } from "./export_vit.ts";
import type { OnnxAdapterInput } from "./ort_encoder.ts";

/** Serialised ONNX model of the MAE encoder and the adapter config that reads it. */
export function exportMaeEncoder(
  get: HostGetter,
  c: MaeConfig,
  dims: MaeDims,
  arch: string,
): { model: Uint8Array; adapter: OnnxAdapterInput } {
  const { gridH: gh, gridW: gw, imageH, imageW } = dims;
  const d = c.embedDim, n = gh * gw;
  const g = new OnnxGraph(arch);
  const images = g.input("images", ["batch", 3, imageH, imageW]);
  const pos = get("pos_embed"); // [1, 1+N, D]
  const posPatches: HostTensor<Float32Array> = { shape: [1, n, d], data: pos.data.slice(d) };
  const emb = g.add(
    patchEmbedOnnx(g, images, get("patch_embed.proj.weight"), get("patch_embed.proj.bias"), gh, gw),
    g.init(posPatches, "pos_embed.patches"),
  );
  const clsRow = new Float32Array(d);
  const cls = get("cls_token").data;
  for (let j = 0; j < d; j++) clsRow[j] = cls[j] + pos.data[j];
  let x = g.concat([expandToBatch(g, { shape: [1, 1, d], data: clsRow }, emb, "cls_token"), emb], 1); // [B, 1+N, D]
  const opts = { heads: c.numHeads, eps: c.normEps, qkvBias: "fused", layerScale: false } as const;
  for (let i = 0; i < c.depth; i++) x = vitBlockOnnx(g, x, get, `blocks.${i}`, opts, n + 1);
  x = g.layerNorm(x, get("norm.weight"), get("norm.bias"), c.normEps, "norm");
  g.output(g.reshape(g.slice(x, [0], [1], [1]), [-1, d]), "global", ["batch", d]);
  g.output(g.reshape(g.slice(x, [1], [n + 1], [1]), [-1, gh, gw, d]), "patches", ["batch", gh, gw, d]);
  return {
    model: g.toModel(),
    adapter: {
      arch,
      outputs: { global: "global", patches: "patches", registers: null },
      imageSize: [imageH, imageW],
      patchSize: c.patchSize,
      embedDim: d,
    },
  };
}
