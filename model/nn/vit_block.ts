/**
 * The pre-LayerNorm ViT block of MAE (timm 0.3.2 `Block`) and SimMIM (BEiT-style `Block`):
 * `x += g1 * Attn(LN1 x)`, `x += g2 * MLP(LN2 x)`, with a fused `qkv` projection.
 *
 * The variants are options, not copies: the qkv bias layout (`fused` `[3D]` for MAE,
 * `qv` = `[q_bias, 0, v_bias]` for SimMIM, which has no key bias), LayerScale `gamma_1/2`
 * (SimMIM) and an additive attention bias such as SimMIM's shared relative position bias.
 * Weights are read through a getter by their official names under `prefix`.
 *
 * @module
 */
import type { Ops, ParamGetter, Tensor } from "../ops/ops.ts";
import { linear } from "./linear.ts";
import { mlp } from "./mlp.ts";
import { mergeHeads, scaledDotProductAttention, splitHeads } from "./attention.ts";

/** How the fused qkv projection gets its bias. */
export type QkvBiasLayout = "fused" | "qv" | "none";

export interface VitBlockOptions {
  heads: number;
  /** LayerNorm eps (1e-6 in MAE and SimMIM). */
  eps: number;
  qkvBias: QkvBiasLayout;
  /** Whether `gamma_1`/`gamma_2` (LayerScale) exist. */
  layerScale: boolean;
}

/** The tensors of one block, looked up by official state-dict names. */
export interface VitBlockWeights {
  norm1: [Tensor, Tensor];
  norm2: [Tensor, Tensor];
  qkvWeight: Tensor;
  /** `[3D]` fused bias (`fused`), or the q and v halves (`qv`). */
  qkvBias: Tensor | null;
  qBias: Tensor | null;
  vBias: Tensor | null;
  proj: [Tensor, Tensor];
  fc1: [Tensor, Tensor];
  fc2: [Tensor, Tensor];
  gamma1: Tensor | null;
  gamma2: Tensor | null;
}

/** Look up block `prefix` (e.g. `blocks.3`, `encoder.blocks.0`) through `get`. */
export function vitBlockWeights(get: ParamGetter, prefix: string, opts: VitBlockOptions): VitBlockWeights {
  const g = (n: string) => get(`${prefix}.${n}`);
  return {
    norm1: [g("norm1.weight"), g("norm1.bias")],
    norm2: [g("norm2.weight"), g("norm2.bias")],
    qkvWeight: g("attn.qkv.weight"),
    qkvBias: opts.qkvBias === "fused" ? g("attn.qkv.bias") : null,
    qBias: opts.qkvBias === "qv" ? g("attn.q_bias") : null,
    vBias: opts.qkvBias === "qv" ? g("attn.v_bias") : null,
    proj: [g("attn.proj.weight"), g("attn.proj.bias")],
    fc1: [g("mlp.fc1.weight"), g("mlp.fc1.bias")],
    fc2: [g("mlp.fc2.weight"), g("mlp.fc2.bias")],
    gamma1: opts.layerScale ? g("gamma_1") : null,
    gamma2: opts.layerScale ? g("gamma_2") : null,
  };
}

/** Parameter names and shapes of one block of width `dim` (for initialisation and checks). */
export function vitBlockShapes(dim: number, mlpHidden: number, opts: Pick<VitBlockOptions, "qkvBias" | "layerScale">) {
  const shapes: [string, number[]][] = [];
  if (opts.layerScale) shapes.push(["gamma_1", [dim]], ["gamma_2", [dim]]);
  shapes.push(["norm1.weight", [dim]], ["norm1.bias", [dim]]);
  if (opts.qkvBias === "qv") shapes.push(["attn.q_bias", [dim]], ["attn.v_bias", [dim]]);
  shapes.push(["attn.qkv.weight", [3 * dim, dim]]);
  if (opts.qkvBias === "fused") shapes.push(["attn.qkv.bias", [3 * dim]]);
  shapes.push(
    ["attn.proj.weight", [dim, dim]],
    ["attn.proj.bias", [dim]],
    ["norm2.weight", [dim]],
    ["norm2.bias", [dim]],
    ["mlp.fc1.weight", [mlpHidden, dim]],
    ["mlp.fc1.bias", [mlpHidden]],
    ["mlp.fc2.weight", [dim, mlpHidden]],
    ["mlp.fc2.bias", [dim]],
  );
  return shapes;
}

/**
 * Fused-qkv multi-head self-attention. x: `[B, L, D]` -> `[B, L, D]`.
 * `attnBias` broadcasts to `[B, h, L, L]` (SimMIM: `[h, L, L]`).
 */
export function fusedSelfAttention(
  o: Ops,
  x: Tensor,
  w: VitBlockWeights,
  heads: number,
  attnBias: Tensor | null = null,
): Tensor {
  return o.tidy(() => {
    const d = x.shape[2];
    let bias = w.qkvBias;
    if (w.qBias && w.vBias) bias = o.concat([w.qBias, o.zeros([d]), w.vBias], 0); // [3D], no key bias
    const qkv = linear(o, x, w.qkvWeight, bias); // [B, L, 3D], laid out (3, h, hd)
    // split, not three slices: one SplitV kernel, and its gradient is one concat.
    const [q, k, v] = o.split(qkv, [d, d, d], 2).map((t) => splitHeads(o, t, heads)); // 3 x [B, h, L, hd]
    const a = scaledDotProductAttention(o, q, k, v, { bias: attnBias });
    return linear(o, mergeHeads(o, a), w.proj[0], w.proj[1]);
  });
}

/**
 * One pre-LN block. x: `[B, L, D]` -> `[B, L, D]`. `dropPath` holds per-sample multipliers
 * `[B, 1, 1]` of the attention and MLP branches (timm `DropPath`: 0 or `1/keep`), or nulls.
 */
export function vitBlock(
  o: Ops,
  x: Tensor,
  w: VitBlockWeights,
  opts: VitBlockOptions,
  attnBias: Tensor | null = null,
  dropPath: [Tensor | null, Tensor | null] = [null, null],
): Tensor {
  return o.tidy(() => {
    let a = fusedSelfAttention(o, o.layerNorm(x, w.norm1[0], w.norm1[1], opts.eps), w, opts.heads, attnBias);
    if (w.gamma1) a = o.mul(a, w.gamma1);
    if (dropPath[0]) a = o.mul(a, dropPath[0]);
    const h = o.add(x, a);
    let m = mlp(o, o.layerNorm(h, w.norm2[0], w.norm2[1], opts.eps), {
      fc1: w.fc1[0],
      fc1Bias: w.fc1[1],
      fc2: w.fc2[0],
      fc2Bias: w.fc2[1],
    });
    if (w.gamma2) m = o.mul(m, w.gamma2);
    if (dropPath[1]) m = o.mul(m, dropPath[1]);
    return o.add(h, m);
  });
}

/** `token` (`[1, 1, D]` or `[D]`) repeated to `[B, n, D]`. */
export function repeatToken(o: Ops, token: Tensor, b: number, n: number): Tensor {
  return o.broadcastTo(token, [b, n, token.shape[token.shape.length - 1]]);
}
