/**
 * Export CAPI's evaluation forward (capi:model.py:432-448, SPEC 1.4; model/capi/model.ts
 * `evalForward`) to ONNX: patch embed, registers prepended, encoder blocks with RoPE,
 * weight-free `enc_norm`; `patches` `[B, Gh, Gw, D]`, `registers` `[B, R, D]`, and
 * `global` = mean over all positions of `dec_norm(decoder block 1)` queried with the mask
 * token at every patch position (cross-attention to the encoder output).
 *
 * Full-image coordinates are fixed, so each attention module's RoPE `cos`/`sin` tables are
 * computed on the host (float64, rounded once) and stored as constants; `rotate_half` is a
 * constant signed permutation matrix, as in the tfjs model.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { CapiConfig, CapiDims } from "../capi/config.ts";
import { edgeRegisterCoords, encoderCoords, patchCoords } from "../capi/rope.ts";
import { OnnxGraph } from "./graph.ts";
import { expandToBatch, type HostGetter, patchEmbedOnnx } from "./export_vit.ts";
import type { OnnxAdapterInput } from "./ort_encoder.ts";

/** `cos`/`sin` of `coords @ freqs` as `[1, 1, L, hd]` constants. */
function ropeTables(
  coords: Float32Array,
  freqs: HostTensor<Float32Array>,
): [HostTensor<Float32Array>, HostTensor<Float32Array>] {
  const hd = freqs.shape[1], l = coords.length / 2;
  const cos = new Float32Array(l * hd), sin = new Float32Array(l * hd);
  for (let t = 0; t < l; t++) {
    for (let c = 0; c < hd; c++) {
      const a = coords[2 * t] * freqs.data[c] + coords[2 * t + 1] * freqs.data[hd + c];
      cos[t * hd + c] = Math.cos(a);
      sin[t * hd + c] = Math.sin(a);
    }
  }
  return [{ shape: [1, 1, l, hd], data: cos }, { shape: [1, 1, l, hd], data: sin }];
}

/** Signed permutation P with `x @ P = [-x[hd/2:], x[:hd/2]]`. */
function rotateHalf(hd: number): HostTensor<Float32Array> {
  const h = hd / 2, m = new Float32Array(hd * hd);
  for (let c = 0; c < h; c++) {
    m[(c + h) * hd + c] = -1;
    m[c * hd + c + h] = 1;
  }
  return { shape: [hd, hd], data: m };
}

interface Ctx {
  g: OnnxGraph;
  get: HostGetter;
  c: CapiConfig;
  hd: number;
  rot: string;
}

function rope(x: Ctx, v: string, tables: [string, string]): string {
  return x.g.add(x.g.mul(v, tables[0]), x.g.mul(x.g.matmul(v, x.rot), tables[1]));
}

/** Pre-norm CAPI block; self-attention when `ctx` is null, else cross-attention (norm on queries only). */
function block(
  x: Ctx,
  pre: string,
  h: string,
  lq: number,
  qCoords: Float32Array,
  ctx: { v: string; l: number; coords: Float32Array } | null,
): string {
  const { g, get, c, hd } = x;
  const d = c.embedDim, heads = c.numHeads;
  const r1 = `${pre}residual1.`, r2 = `${pre}residual2.`;
  const freqs = get(`${r1}fn.rope.freqs`);
  const n = g.rmsNorm(h, get(`${r1}norm.weight`), c.normEps, `${r1}norm`);
  const kv = ctx ? ctx.v : n, lk = ctx ? ctx.l : lq;
  const qT = ropeTables(qCoords, freqs).map((t, i) => g.init(t, `${r1}rope.q${i ? "sin" : "cos"}`)) as [string, string];
  const kT = ctx
    ? ropeTables(ctx.coords, freqs).map((t, i) => g.init(t, `${r1}rope.k${i ? "sin" : "cos"}`)) as [string, string]
    : qT;
  const proj = (src: string, name: string, l: number) =>
    g.splitHeads(g.linear(src, get(`${r1}fn.${name}.weight`), null, `${r1}fn.${name}`), l, heads, hd);
  const q = rope(x, proj(n, "q_proj", lq), qT);
  const k = rope(x, proj(kv, "k_proj", lk), kT);
  const att = g.attention(q, k, proj(kv, "v_proj", lk), 1 / Math.sqrt(hd));
  const a = g.linear(g.mergeHeads(att, lq, d), get(`${r1}fn.proj.weight`), null, `${r1}fn.proj`);
  const h1 = g.add(h, a);
  const n2 = g.rmsNorm(h1, get(`${r2}norm.weight`), c.normEps, `${r2}norm`);
  const m = g.linear(
    g.gelu(g.linear(n2, get(`${r2}fn.fc1.weight`), null, `${r2}fn.fc1`)),
    get(`${r2}fn.fc2.weight`),
    null,
    `${r2}fn.fc2`,
  );
  return g.add(h1, m);
}

/** Serialised ONNX model of the CAPI eval encoder under `prefix` (e.g. `ema.backbone.`) and its adapter. */
export function exportCapiEncoder(
  get0: HostGetter,
  prefix: string,
  c: CapiConfig,
  dims: CapiDims,
  arch: string,
): { model: Uint8Array; adapter: OnnxAdapterInput } {
  const get: HostGetter = (n) => get0(prefix + n);
  const { gridH: gh, gridW: gw, imageH, imageW, headDim: hd } = dims;
  const d = c.embedDim, r = c.nRegisters, n = gh * gw, l = r + n;
  const g = new OnnxGraph(arch);
  const x: Ctx = { g, get, c, hd, rot: g.init(rotateHalf(hd), "rotate_half") };
  const images = g.input("images", ["batch", 3, imageH, imageW]);
  const emb = patchEmbedOnnx(g, images, get("patch_embed.weight"), get("patch_embed.bias"), gh, gw); // [B, N, D]
  let h = r > 0 ? g.concat([expandToBatch(g, get("registers"), emb, "registers"), emb], 1) : emb; // [B, R+N, D]
  const all = patchCoords(gh, gw);
  const kept = Int32Array.from({ length: n }, (_, i) => i);
  const encCoords = encoderCoords(all, edgeRegisterCoords(r), kept, 1); // [R+N, 2], registers on the full bbox
  for (let i = 0; i < c.encoderDepth; i++) h = block(x, `encoder.blocks.${i}.`, h, l, encCoords, null);
  const out = g.rmsNorm(h, null, c.normEps, "enc_norm");
  g.output(g.reshape(g.slice(out, [r], [l], [1]), [-1, gh, gw, d]), "patches", ["batch", gh, gw, d]);
  if (r > 0) g.output(g.slice(out, [0], [r], [1]), "registers", ["batch", r, d]);
  const queries = expandToBatch(g, { shape: [1, n, d], data: tileRows(get("mask_token").data, n) }, emb, "mask_tokens");
  const dec = block(x, "decoder.blocks.0.", queries, n, all, { v: out, l, coords: encCoords });
  g.output(g.reduceMean(g.rmsNorm(dec, null, c.normEps, "dec_norm"), [1], false), "global", ["batch", d]);
  return {
    model: g.toModel(),
    adapter: {
      arch,
      outputs: { global: "global", patches: "patches", registers: r > 0 ? "registers" : null },
      imageSize: [imageH, imageW],
      patchSize: c.patchSize,
      embedDim: d,
    },
  };
}

/** `[D]` repeated `n` times: `[n * D]`. */
function tileRows(row: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * row.length);
  for (let i = 0; i < n; i++) out.set(row, i * row.length);
  return out;
}
