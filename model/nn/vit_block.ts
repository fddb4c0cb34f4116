/**
 * The pre-LayerNorm ViT block of MAE (timm 0.3.2 `Block`) and SimMIM (BEiT-style `Block`):
 * `x += g1 * Attn(LN1 x)`, `x += g2 * MLP(LN2 x)`, with a fused `qkv` projection.
 *
 * The variants are options, not copies: the qkv bias layout (`fused` `[3D]` for MAE,
 * `qv` = `[q_bias, 0, v_bias]` for SimMIM, which has no key bias), LayerScale `gamma_1/2`
 * (SimMIM) and an additive attention bias such as SimMIM's shared relative position bias.
 * Weights are read from a `ParamStore` by their official names under `prefix`.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { ParamStore } from "../params.ts";
import { linear } from "./linear.ts";
import { layerNorm } from "./norm.ts";
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
  norm1: [tf.Tensor, tf.Tensor];
  norm2: [tf.Tensor, tf.Tensor];
  qkvWeight: tf.Tensor;
  /** `[3D]` fused bias (`fused`), or the q and v halves (`qv`). */
  qkvBias: tf.Tensor | null;
  qBias: tf.Tensor | null;
  vBias: tf.Tensor | null;
  proj: [tf.Tensor, tf.Tensor];
  fc1: [tf.Tensor, tf.Tensor];
  fc2: [tf.Tensor, tf.Tensor];
  gamma1: tf.Tensor | null;
  gamma2: tf.Tensor | null;
}

/** Look up block `prefix` (e.g. `blocks.3`, `encoder.blocks.0`) in `store`. */
export function vitBlockWeights(store: ParamStore, prefix: string, opts: VitBlockOptions): VitBlockWeights {
  const g = (n: string) => store.get(`${prefix}.${n}`);
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
  x: tf.Tensor,
  w: VitBlockWeights,
  heads: number,
  attnBias: tf.Tensor | null = null,
): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[2] as number;
    let bias = w.qkvBias;
    if (w.qBias && w.vBias) bias = tf.concat([w.qBias, tf.zerosLike(w.qBias), w.vBias]); // [3D], no key bias
    const qkv = linear(x, w.qkvWeight, bias); // [B, L, 3D], laid out (3, h, hd)
    // split, not three slices: one SplitV kernel, and its gradient is one concat.
    const [q, k, v] = tf.split(qkv, [d, d, d], 2).map((t) => splitHeads(t, heads)); // 3 x [B, h, L, hd]
    const o = scaledDotProductAttention(q, k, v, { bias: attnBias });
    return linear(mergeHeads(o), w.proj[0], w.proj[1]);
  });
}

/**
 * One pre-LN block. x: `[B, L, D]` -> `[B, L, D]`. `dropPath` holds per-sample multipliers
 * `[B, 1, 1]` of the attention and MLP branches (timm `DropPath`: 0 or `1/keep`), or nulls.
 */
export function vitBlock(
  x: tf.Tensor,
  w: VitBlockWeights,
  opts: VitBlockOptions,
  attnBias: tf.Tensor | null = null,
  dropPath: [tf.Tensor | null, tf.Tensor | null] = [null, null],
): tf.Tensor {
  return tf.tidy(() => {
    let a = fusedSelfAttention(layerNorm(x, w.norm1[0], w.norm1[1], opts.eps), w, opts.heads, attnBias);
    if (w.gamma1) a = tf.mul(a, w.gamma1);
    if (dropPath[0]) a = tf.mul(a, dropPath[0]);
    const h = tf.add(x, a);
    let m = mlp(layerNorm(h, w.norm2[0], w.norm2[1], opts.eps), {
      fc1: w.fc1[0],
      fc1Bias: w.fc1[1],
      fc2: w.fc2[0],
      fc2Bias: w.fc2[1],
    });
    if (w.gamma2) m = tf.mul(m, w.gamma2);
    if (dropPath[1]) m = tf.mul(m, dropPath[1]);
    return tf.add(h, m);
  });
}

/**
 * `token` `[1, 1, D]` repeated to `[B, n, D]`. Not `tf.tile`: its gradient takes one slice
 * per repetition (B*n slices, seconds per step for MAE's mask tokens on wasm); a broadcast
 * add differentiates into a single sum.
 */
export function repeatToken(token: tf.Tensor, b: number, n: number): tf.Tensor {
  return tf.tidy(() => tf.add(tf.zeros([b, n, token.shape[token.rank - 1] as number]), token));
}
