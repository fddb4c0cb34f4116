/**
 * Shared pieces of the encoder exporters: in-graph patch embedding (Conv2d k = s = p as
 * reshape/transpose/MatMul in the Conv2d weight's `(c, py, px)` order), batch-broadcast of
 * learned tokens, and the pre-LN ViT block of MAE / SimMIM (model/nn/vit_block.ts) with the
 * same options (fused or q/v-only qkv bias, LayerScale, additive attention bias).
 *
 * Weights are read through a getter by official state-dict name, so an exporter works on an
 * engine's `snapshot().params` or on a checkpoint's tensors alike.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { OnnxGraph } from "./graph.ts";
import type { VitBlockOptions } from "../nn/vit_block.ts";

/** Host tensor by official name; throws naming the missing key. */
export type HostGetter = (name: string) => HostTensor<Float32Array>;

/** A getter over a name -> tensor map, with an error that names the key and a few neighbours. */
export function hostGetter(map: Map<string, HostTensor<Float32Array>>, what: string): HostGetter {
  return (name) => {
    const t = map.get(name);
    if (!t) {
      const tail = name.split(".").pop()!;
      const near = [...map.keys()].filter((k) => k.endsWith(tail)).slice(0, 4);
      throw new Error(`${what}: no parameter '${name}'${near.length ? ` (similar: ${near.join(", ")})` : ""}`);
    }
    return t;
  };
}

/** `[B, 3, H, W]` -> `[B, Gh*Gw, D]` through `W.reshape(D, 3p^2)^T + b` (row-major patches). */
export function patchEmbedOnnx(
  g: OnnxGraph,
  images: string,
  weight: HostTensor<Float32Array>,
  bias: HostTensor<Float32Array>,
  gh: number,
  gw: number,
): string {
  const [d, c, p] = weight.shape;
  const x = g.reshape(images, [-1, c, gh, p, gw, p]); // [B, c, Gh, py, Gw, px]
  const t = g.transpose(x, [0, 2, 4, 1, 3, 5]); // [B, Gh, Gw, c, py, px]
  const flat = g.reshape(t, [-1, gh * gw, c * p * p]); // [B, N, 3p^2]
  return g.linear(flat, { shape: [d, c * p * p], data: weight.data }, bias, "patch_embed");
}

/** Broadcast a `[1, L, D]` (or `[L, D]`) learned tensor to `[B, L, D]`, B taken from `like`'s axis 0. */
export function expandToBatch(g: OnnxGraph, t: HostTensor<Float32Array>, like: string, hint: string): string {
  const l = t.shape[t.shape.length - 2], d = t.shape[t.shape.length - 1];
  const batch = g.slice(g.op("Shape", [like]), [0], [1], [0]); // int64 [1]
  const shape = g.concat([batch, g.ints([l, d], `${hint}.dims`)], 0);
  return g.op("Expand", [g.init({ shape: [1, l, d], data: t.data }, `${hint}.param`), shape]);
}

/** One pre-LN ViT block (MAE / SimMIM) on `[B, L, D]`. */
export function vitBlockOnnx(
  g: OnnxGraph,
  x: string,
  get: HostGetter,
  prefix: string,
  o: VitBlockOptions,
  l: number,
  attnBias?: string,
): string {
  const p = (n: string) => get(`${prefix}.${n}`);
  const w = p("attn.qkv.weight");
  const d = w.shape[1];
  const hd = d / o.heads;
  let bias: HostTensor<Float32Array> | null = null;
  if (o.qkvBias === "fused") bias = p("attn.qkv.bias");
  if (o.qkvBias === "qv") {
    const data = new Float32Array(3 * d);
    data.set(p("attn.q_bias").data, 0);
    data.set(p("attn.v_bias").data, 2 * d); // no key bias
    bias = { shape: [3 * d], data };
  }
  const n1 = g.layerNorm(x, p("norm1.weight"), p("norm1.bias"), o.eps, `${prefix}.norm1`);
  const qkv = g.linear(n1, w, bias, `${prefix}.attn.qkv`); // [B, L, 3D] laid out (3, h, hd)
  const part = (i: number) => g.splitHeads(g.slice(qkv, [i * d], [(i + 1) * d], [2]), l, o.heads, hd);
  const att = g.attention(part(0), part(1), part(2), 1 / Math.sqrt(hd), attnBias);
  let a = g.linear(g.mergeHeads(att, l, d), p("attn.proj.weight"), p("attn.proj.bias"), `${prefix}.attn.proj`);
  if (o.layerScale) a = g.mul(a, g.init(p("gamma_1"), `${prefix}.gamma_1`));
  const h = g.add(x, a);
  const n2 = g.layerNorm(h, p("norm2.weight"), p("norm2.bias"), o.eps, `${prefix}.norm2`);
  const hidden = g.gelu(g.linear(n2, p("mlp.fc1.weight"), p("mlp.fc1.bias"), `${prefix}.mlp.fc1`));
  let m = g.linear(hidden, p("mlp.fc2.weight"), p("mlp.fc2.bias"), `${prefix}.mlp.fc2`);
  if (o.layerScale) m = g.mul(m, g.init(p("gamma_2"), `${prefix}.gamma_2`));
  return g.add(h, m);
}
