/**
 * CAPI encoder-decoder (capi:model.py `EncoderDecoder`, SPEC 1.2-1.4) as functions over
 * parameters looked up by official state-dict name.
 *
 * `get(prefix + name)` returns a tensor; the same functions serve the student
 * (`student.backbone.`), the EMA teacher (`ema.backbone.`) and parity fixtures.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { linear, mergeHeads, mlp, patchEmbed, rmsNorm, scaledDotProductAttention, splitHeads } from "../nn/mod.ts";
import type { CapiConfig, CapiDims } from "./config.ts";
import { applyRope, edgeRegisterCoords, encoderCoords, patchCoords, ropeAngles, rotateHalfMatrix } from "./rope.ts";
import type { CapiMasks } from "./masking.ts";
import type { Rng } from "../rng.ts";

export type ParamGetter = (name: string) => tf.Tensor;
/** Receives intermediates (parity runner); the callee must `tf.keep` what it stores. */
export type Trace = (name: string, t: tf.Tensor) => void;

/** Efficient stochastic depth (model.py:150-170): rate and the stream of `randperm` draws. */
export interface DropPath {
  rate: number;
  rng: Rng;
}

/** One block's attention: queries `xq` (normed), context `ctx`, RoPE on q and k per head. */
function attention(
  get: ParamGetter,
  pre: string,
  xq: tf.Tensor,
  ctx: tf.Tensor,
  coordsQ: tf.Tensor,
  coordsK: tf.Tensor,
  heads: number,
  rot: tf.Tensor,
): tf.Tensor {
  const freqs = get(`${pre}rope.freqs`);
  const q = splitHeads(linear(xq, get(`${pre}q_proj.weight`)), heads); // [B,h,Lq,hd]
  const k = splitHeads(linear(ctx, get(`${pre}k_proj.weight`)), heads); // [B,h,Lk,hd]
  const v = splitHeads(linear(ctx, get(`${pre}v_proj.weight`)), heads);
  const csQ = ropeAngles(coordsQ, freqs);
  const qr = applyRope(q, csQ, rot);
  const kr = applyRope(k, coordsK === coordsQ ? csQ : ropeAngles(coordsK, freqs), rot);
  return linear(mergeHeads(scaledDotProductAttention(qr, kr, v)), get(`${pre}proj.weight`));
}

/** Maximal runs `[start, length]` of consecutive values in ascending `idx`. */
function runsOf(idx: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < idx.length; i++) {
    const last = runs[runs.length - 1];
    if (last && idx[i] === last[0] + last[1]) last[1]++;
    else runs.push([idx[i], 1]);
  }
  return runs;
}

/**
 * Rows `keep` (ascending) of `x` along axis 0, as slices + concat: wasm's gather kernel is
 * slow, and a random subset of most of the batch is only a few contiguous runs.
 */
export function takeRows(x: tf.Tensor, keep: Int32Array): tf.Tensor {
  const rest = x.shape.slice(1);
  const parts = runsOf(keep).map(([s, n]) => tf.slice(x, [s, ...rest.map(() => 0)], [n, ...rest]));
  return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
}

/** Inverse of `takeRows`: rows of `r` placed at `keep` in a `[total, ...]` tensor, zeros elsewhere. */
export function spreadRows(r: tf.Tensor, keep: Int32Array, total: number): tf.Tensor {
  const rest = r.shape.slice(1);
  const parts: tf.Tensor[] = [];
  let src = 0, dst = 0;
  for (const [s, n] of runsOf(keep)) {
    if (s > dst) parts.push(tf.zeros([s - dst, ...rest]));
    parts.push(tf.slice(r, [src, ...rest.map(() => 0)], [n, ...rest]));
    src += n;
    dst = s + n;
  }
  if (dst < total) parts.push(tf.zeros([total - dst, ...rest]));
  return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
}

/**
 * `x + branch(x)`, or the efficient stochastic-depth form: the branch runs on
 * `n_keep = max(floor(B(1-rate)), 1)` samples `randperm(B)[:n_keep]` and is added with scale
 * `B/n_keep`. Samples are independent in every branch, so the kept set is processed in
 * ascending order (same result as the official permuted order).
 * `branch` receives the kept sample indices (or null for all) to subset its other inputs.
 */
export function residual(
  x: tf.Tensor,
  branch: (xs: tf.Tensor, keep: Int32Array | null) => tf.Tensor,
  dp: DropPath | undefined,
): tf.Tensor {
  const b = x.shape[0];
  if (!dp || dp.rate <= 0) return tf.add(x, branch(x, null));
  const nKeep = Math.max(Math.floor(b * (1 - dp.rate)), 1);
  const keep = dp.rng.permutation(b).slice(0, nKeep).sort();
  if (nKeep === b) return tf.add(x, tf.mul(branch(x, null), b / nKeep));
  const r = tf.mul(branch(takeRows(x, keep), keep), b / nKeep); // [nKeep, L, D]
  return tf.add(x, spreadRows(r, keep, b));
}

const sub = (t: tf.Tensor, keep: Int32Array | null) => (keep ? takeRows(t, keep) : t);

/** Pre-norm block: self-attention when `ctx` is null, else cross-attention (norm on queries only). */
function block(
  get: ParamGetter,
  pre: string,
  x: tf.Tensor,
  coords: tf.Tensor,
  ctx: { x: tf.Tensor; coords: tf.Tensor } | null,
  c: CapiConfig,
  rot: tf.Tensor,
  dp?: DropPath,
): tf.Tensor {
  const r1 = `${pre}residual1.`, r2 = `${pre}residual2.`;
  x = residual(x, (xs, keep) => {
    const n = rmsNorm(xs, get(`${r1}norm.weight`), c.normEps);
    const cs = sub(coords, keep);
    if (!ctx) return attention(get, `${r1}fn.`, n, n, cs, cs, c.numHeads, rot);
    return attention(get, `${r1}fn.`, n, sub(ctx.x, keep), cs, sub(ctx.coords, keep), c.numHeads, rot);
  }, dp);
  return residual(x, (xs) => {
    const n = rmsNorm(xs, get(`${r2}norm.weight`), c.normEps);
    return mlp(n, { fc1: get(`${r2}fn.fc1.weight`), fc2: get(`${r2}fn.fc2.weight`) });
  }, dp);
}

/** Encoder blocks then the weight-free `enc_norm`: `[B, L, D]` -> `[B, L, D]`. */
export function encode(
  get: ParamGetter,
  pre: string,
  tokens: tf.Tensor,
  coords: tf.Tensor,
  c: CapiConfig,
  rot: tf.Tensor,
  o: { dp?: DropPath; trace?: Trace; tracePrefix?: string } = {},
): tf.Tensor {
  let x = tokens;
  for (let i = 0; i < c.encoderDepth; i++) {
    x = block(get, `${pre}encoder.blocks.${i}.`, x, coords, null, c, rot, o.dp);
    o.trace?.(`${o.tracePrefix}encoder.block${i}.out`, x);
  }
  return rmsNorm(x, null, c.normEps);
}

/** Predictor: `depth` cross-attention blocks over `ctx`, then `dec_norm`: queries `[B, Lq, D]`. */
export function decode(
  get: ParamGetter,
  pre: string,
  queries: tf.Tensor,
  qCoords: tf.Tensor,
  ctx: { x: tf.Tensor; coords: tf.Tensor },
  c: CapiConfig,
  rot: tf.Tensor,
  o: { depth?: number; dp?: DropPath; trace?: Trace; tracePrefix?: string } = {},
): tf.Tensor {
  let x = queries;
  for (let i = 0; i < (o.depth ?? c.decoderDepth); i++) {
    x = block(get, `${pre}decoder.blocks.${i}.`, x, qCoords, ctx, c, rot, o.dp);
    o.trace?.(`${o.tracePrefix}decoder.block${i}.out`, x);
  }
  return rmsNorm(x, null, c.normEps);
}

/** Patch embedding (Conv2d as a matmul, with bias) of host-patchified images `[B, N, 3p^2]` -> `[B, N, D]`. */
export function embedPatches(get: ParamGetter, pre: string, patches: tf.Tensor): tf.Tensor {
  return patchEmbed(patches, get(`${pre}patch_embed.weight`), get(`${pre}patch_embed.bias`));
}

/** Host-side coordinate tables that depend only on the config. */
export class CapiGeometry {
  readonly all: Float32Array;
  readonly regs: Float32Array;
  readonly rot: tf.Tensor2D;
  constructor(readonly c: CapiConfig, readonly d: CapiDims) {
    this.all = patchCoords(d.gridH, d.gridW);
    this.regs = edgeRegisterCoords(c.nRegisters);
    this.rot = rotateHalfMatrix(d.headDim);
  }
  /** Full-image encoder coords `[B, R+N, 2]` (registers rescaled to the full bbox). */
  fullCoords(batch: number): Float32Array {
    const kept = new Int32Array(batch * this.d.nTokens).map((_, i) => i % this.d.nTokens);
    return encoderCoords(this.all, this.regs, kept, batch);
  }
  /** Coords of `n`-per-image absolute indices `[B, n, 2]`. */
  gatherCoords(abs: Int32Array): Float32Array {
    const out = new Float32Array(abs.length * 2);
    abs.forEach((a, i) => {
      const p = a % this.d.nTokens;
      out[2 * i] = this.all[2 * p];
      out[2 * i + 1] = this.all[2 * p + 1];
    });
    return out;
  }
  dispose(): void {
    this.rot.dispose();
  }
}

function withRegisters(get: ParamGetter, pre: string, x: tf.Tensor): tf.Tensor {
  const regs = get(`${pre}registers`); // [1, R, D]
  if (regs.shape[1] === 0) return x;
  return tf.concat([tf.tile(regs, [x.shape[0]!, 1, 1]), x], 1); // [B, R+L, D]
}

/** Teacher (and eval) encoder on full images: `enc_norm` output `[B, R+N, D]` and its coords. */
export function fullEncode(
  get: ParamGetter,
  pre: string,
  patches: tf.Tensor,
  g: CapiGeometry,
  o: { trace?: Trace; tracePrefix?: string } = {},
): { out: tf.Tensor; coords: tf.Tensor } {
  const b = patches.shape[0]!;
  const emb = embedPatches(get, pre, patches);
  o.trace?.(`${o.tracePrefix}patch_embed`, emb);
  const tokens = withRegisters(get, pre, emb);
  o.trace?.(`${o.tracePrefix}tokens_in`, tokens);
  const coords = tf.tensor3d(g.fullCoords(b), [b, g.c.nRegisters + g.d.nTokens, 2]);
  return { out: encode(get, pre, tokens, coords, g.c, g.rot, o), coords };
}

/** Student forward: masked encoder, predictor at `predictIndices`: `[B*nPredict, D]` in that order. */
export function studentForward(
  get: ParamGetter,
  pre: string,
  patches: tf.Tensor,
  m: CapiMasks,
  g: CapiGeometry,
  o: { dp?: DropPath; trace?: Trace } = {},
): tf.Tensor {
  const { c, d } = g;
  const b = patches.shape[0]!, dim = c.embedDim, tp = "student.";
  const nVis = m.visibleIndices.length / b, nPred = m.predictIndices.length / b;
  const emb = embedPatches(get, pre, patches); // [B, N, D]
  o.trace?.(`${tp}patch_embed`, emb);
  const vis = tf.reshape(tf.gather(tf.reshape(emb, [b * d.nTokens, dim]), tf.tensor1d(m.visibleIndices, "int32")), [
    b,
    nVis,
    dim,
  ]); // [B, nVis, D]
  const tokens = withRegisters(get, pre, vis);
  o.trace?.(`${tp}tokens_in`, tokens);
  const kept = m.visibleIndices.map((a) => a % d.nTokens);
  const encCoords = tf.tensor3d(encoderCoords(g.all, g.regs, kept, b), [b, c.nRegisters + nVis, 2]);
  o.trace?.(`${tp}coords_enc`, encCoords);
  const ctx = encode(get, pre, tokens, encCoords, c, g.rot, { dp: o.dp, trace: o.trace, tracePrefix: tp });
  o.trace?.(`${tp}enc_norm_out`, ctx);
  const qCoords = tf.tensor3d(g.gatherCoords(m.predictIndices), [b, nPred, 2]);
  o.trace?.(`${tp}coords_dec`, qCoords);
  const queries = tf.tile(tf.reshape(get(`${pre}mask_token`), [1, 1, dim]), [b, nPred, 1]); // [B, nPred, D]
  const out = decode(get, pre, queries, qCoords, { x: ctx, coords: encCoords }, c, g.rot, {
    dp: o.dp,
    trace: o.trace,
    tracePrefix: tp,
  });
  o.trace?.(`${tp}dec_norm_out`, out);
  return tf.reshape(out, [b * nPred, dim]);
}

/** Eval API (model.py:432-448): feature map `[B,Gh,Gw,D]`, registers `[B,R,D]`, global `[B,D]`. */
export function evalForward(
  get: ParamGetter,
  pre: string,
  patches: tf.Tensor,
  g: CapiGeometry,
): { featureMap: tf.Tensor; registers: tf.Tensor; global: tf.Tensor } {
  const { c, d } = g;
  const b = patches.shape[0]!, r = c.nRegisters, dim = c.embedDim;
  const { out, coords } = fullEncode(get, pre, patches, g);
  const featureMap = tf.reshape(tf.slice(out, [0, r, 0], [b, d.nTokens, dim]), [b, d.gridH, d.gridW, dim]);
  const registers = tf.slice(out, [0, 0, 0], [b, r, dim]);
  const qCoords = tf.tile(tf.tensor3d(g.all, [1, d.nTokens, 2]), [b, 1, 1]); // [B, N, 2]
  const queries = tf.tile(tf.reshape(get(`${pre}mask_token`), [1, 1, dim]), [b, d.nTokens, 1]);
  const dec = decode(get, pre, queries, qCoords, { x: out, coords }, c, g.rot, { depth: 1 });
  return { featureMap, registers, global: tf.mean(dec, 1) };
}
