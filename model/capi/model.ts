/**
 * CAPI encoder-decoder (capi:model.py `EncoderDecoder`, SPEC 1.2-1.4) written once against `Ops`,
 * over parameters looked up by official state-dict name.
 *
 * `get(prefix + name)` returns a tensor; the same functions serve the student
 * (`student.backbone.`), the EMA teacher (`ema.backbone.`), loaded checkpoints and fixtures.
 * Per-step data (visible indices, coordinates, drop-path subsets) arrive as tensors the caller
 * made with `o.input`; config-fixed tables (RoPE rotation, full-image coordinates) as constants.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { Ops, ParamGetter, Tensor, Trace } from "../ops/ops.ts";
import type { Rng } from "../rng.ts";
import type { StepDraws } from "../train_step.ts";
import { linear, mergeHeads, mlp, patchEmbed, scaledDotProductAttention, splitHeads } from "../nn/mod.ts";
import type { CapiConfig, CapiDims } from "./config.ts";
import { applyRope, edgeRegisterCoords, encoderCoords, patchCoords, ropeAngles, rotateHalfMatrix } from "./rope.ts";

/**
 * One residual's efficient stochastic depth (model.py:150-170) for one step: the branch runs on
 * the `keep` samples (`[nKeep]`, ascending) and comes back through `inv`, a permutation of `[B]`:
 * the row of each kept sample in the kept set, `nKeep + j` for the j-th dropped sample, which reads
 * one of the `B - nKeep` zero rows appended to the branch output.
 */
export interface ResidualDrop {
  keep: Tensor;
  inv: Tensor;
}

/** Drop path of a stack: per block, residual1 and residual2 (null: every sample runs the branch). */
export type StackDrop = [ResidualDrop | null, ResidualDrop | null][];

/** Drop path of the student: encoder and decoder stacks. */
export interface DropPath {
  encoder: StackDrop;
  decoder: StackDrop;
}

/** `n_keep = max(floor(B (1 - rate)), 1)` (model.py:158). */
export function dropPathKeep(batch: number, rate: number): number {
  return Math.max(Math.floor(batch * (1 - rate)), 1);
}

const dropName = (stack: string, block: number, r: number) => `drop_path.${stack}.${block}.residual${r}`;

/**
 * The host draws of one step's drop path: per residual, in execution order (encoder blocks, then
 * decoder blocks; residual1 then residual2), `randperm(B)[:n_keep]` from `rng`, sorted (samples are
 * independent in every branch, so ascending order gives the official result). Nothing when the rate
 * is 0; a permutation but no tensors when every sample is kept.
 */
export function drawDropPath(rng: Rng, c: CapiConfig, batch: number): StepDraws {
  const out: StepDraws = {};
  if (c.dropPathRate <= 0) return out;
  const nKeep = dropPathKeep(batch, c.dropPathRate);
  for (const [stack, depth] of [["encoder", c.encoderDepth], ["decoder", c.decoderDepth]] as const) {
    for (let i = 0; i < depth; i++) {
      for (const r of [1, 2]) {
        const keep = Int32Array.from(rng.permutation(batch).slice(0, nKeep)).sort();
        if (nKeep === batch) continue;
        const inv = new Int32Array(batch).fill(-1);
        keep.forEach((s, k) => (inv[s] = k));
        let dropped = nKeep;
        for (let s = 0; s < batch; s++) if (inv[s] < 0) inv[s] = dropped++;
        out[`${dropName(stack, i, r)}.keep`] = { shape: [nKeep], data: keep };
        out[`${dropName(stack, i, r)}.inv`] = { shape: [batch], data: inv };
      }
    }
  }
  return out;
}

/** The drop path of `drawDropPath`'s draws, from the step's input tensors. */
export function dropPathFrom(inputs: Record<string, Tensor>, c: CapiConfig): DropPath {
  const stack = (name: string, depth: number): StackDrop =>
    Array.from({ length: depth }, (_, i) =>
      [1, 2].map((r) => {
        const keep = inputs[`${dropName(name, i, r)}.keep`], inv = inputs[`${dropName(name, i, r)}.inv`];
        return keep && inv ? { keep, inv } : null;
      }) as [ResidualDrop | null, ResidualDrop | null]);
  return { encoder: stack("encoder", c.encoderDepth), decoder: stack("decoder", c.decoderDepth) };
}

/**
 * `x + branch(x)`, or the efficient stochastic-depth form: the branch runs on the kept samples,
 * scaled by `B / n_keep`, and is added back at their rows (zeros elsewhere) by one fixed-shape
 * gather over `concat([branch, zeros])` (a permutation). `branch` receives the kept indices (or
 * null) to subset its other inputs.
 */
export function residual(
  o: Ops,
  x: Tensor,
  branch: (xs: Tensor, keep: Tensor | null) => Tensor,
  dp: ResidualDrop | null,
): Tensor {
  if (!dp) return o.add(x, branch(x, null));
  const b = x.shape[0], nKeep = dp.keep.shape[0];
  const r = o.mul(branch(o.gather(x, dp.keep), dp.keep), b / nKeep); // [nKeep, L, D]
  const padded = o.concat([r, o.zeros([b - nKeep, ...r.shape.slice(1)])], 0); // [B, L, D]: dropped rows last
  return o.add(x, o.gather(padded, dp.inv));
}

const sub = (o: Ops, t: Tensor, keep: Tensor | null) => (keep ? o.gather(t, keep) : t);

/** One block's attention: queries `xq` (normed), context `ctx`, RoPE on q and k per head. */
function attention(
  o: Ops,
  get: ParamGetter,
  pre: string,
  xq: Tensor,
  ctx: Tensor,
  coordsQ: Tensor,
  coordsK: Tensor,
  heads: number,
  rot: Tensor,
): Tensor {
  const freqs = get(`${pre}rope.freqs`);
  const q = splitHeads(o, linear(o, xq, get(`${pre}q_proj.weight`)), heads); // [B,h,Lq,hd]
  const k = splitHeads(o, linear(o, ctx, get(`${pre}k_proj.weight`)), heads); // [B,h,Lk,hd]
  const v = splitHeads(o, linear(o, ctx, get(`${pre}v_proj.weight`)), heads);
  const csQ = ropeAngles(o, coordsQ, freqs);
  const qr = applyRope(o, q, csQ, rot);
  const kr = applyRope(o, k, coordsK === coordsQ ? csQ : ropeAngles(o, coordsK, freqs), rot);
  return linear(o, mergeHeads(o, scaledDotProductAttention(o, qr, kr, v)), get(`${pre}proj.weight`));
}

/** Pre-norm block: self-attention when `ctx` is null, else cross-attention (norm on queries only). */
function block(
  o: Ops,
  get: ParamGetter,
  pre: string,
  x: Tensor,
  coords: Tensor,
  ctx: { x: Tensor; coords: Tensor } | null,
  c: CapiConfig,
  rot: Tensor,
  drop: [ResidualDrop | null, ResidualDrop | null],
): Tensor {
  return o.tidy(() => {
    const r1 = `${pre}residual1.`, r2 = `${pre}residual2.`;
    const h = residual(o, x, (xs, keep) => {
      const n = o.rmsNorm(xs, get(`${r1}norm.weight`), c.normEps);
      const cs = sub(o, coords, keep);
      if (!ctx) return attention(o, get, `${r1}fn.`, n, n, cs, cs, c.numHeads, rot);
      return attention(o, get, `${r1}fn.`, n, sub(o, ctx.x, keep), cs, sub(o, ctx.coords, keep), c.numHeads, rot);
    }, drop[0]);
    return residual(o, h, (xs) => {
      const n = o.rmsNorm(xs, get(`${r2}norm.weight`), c.normEps);
      return mlp(o, n, { fc1: get(`${r2}fn.fc1.weight`), fc2: get(`${r2}fn.fc2.weight`) });
    }, drop[1]);
  });
}

/** Options of the stacks: drop path (student training only) and intermediates for parity. */
export interface StackOptions {
  drop?: StackDrop;
  trace?: Trace;
  tracePrefix?: string;
}

/** Encoder blocks then the weight-free `enc_norm`: `[B, L, D]` -> `[B, L, D]`. */
export function encode(
  o: Ops,
  get: ParamGetter,
  pre: string,
  tokens: Tensor,
  coords: Tensor,
  c: CapiConfig,
  rot: Tensor,
  opts: StackOptions = {},
): Tensor {
  let x = tokens;
  for (let i = 0; i < c.encoderDepth; i++) {
    x = block(o, get, `${pre}encoder.blocks.${i}.`, x, coords, null, c, rot, opts.drop?.[i] ?? [null, null]);
    opts.trace?.(`${opts.tracePrefix}encoder.block${i}.out`, x);
  }
  return o.rmsNorm(x, null, c.normEps);
}

/** Predictor: `depth` cross-attention blocks over `ctx`, then `dec_norm`: queries `[B, Lq, D]`. */
export function decode(
  o: Ops,
  get: ParamGetter,
  pre: string,
  queries: Tensor,
  qCoords: Tensor,
  ctx: { x: Tensor; coords: Tensor },
  c: CapiConfig,
  rot: Tensor,
  opts: StackOptions & { depth?: number } = {},
): Tensor {
  let x = queries;
  for (let i = 0; i < (opts.depth ?? c.decoderDepth); i++) {
    x = block(o, get, `${pre}decoder.blocks.${i}.`, x, qCoords, ctx, c, rot, opts.drop?.[i] ?? [null, null]);
    opts.trace?.(`${opts.tracePrefix}decoder.block${i}.out`, x);
  }
  return o.rmsNorm(x, null, c.normEps);
}

/** Patch embedding (Conv2d as a matmul, with bias) of host-patchified images `[B, N, 3p^2]` -> `[B, N, D]`. */
export function embedPatches(o: Ops, get: ParamGetter, pre: string, patches: Tensor): Tensor {
  return patchEmbed(o, patches, get(`${pre}patch_embed.weight`), get(`${pre}patch_embed.bias`));
}

/** Host-side coordinate tables that depend only on the config. */
export class CapiGeometry {
  readonly all: Float32Array;
  readonly regs: Float32Array;
  /** `rotateHalfMatrix(hd)`, fed as a constant. */
  readonly rot: HostTensor<Float32Array>;
  constructor(readonly c: CapiConfig, readonly d: CapiDims) {
    this.all = patchCoords(d.gridH, d.gridW);
    this.regs = edgeRegisterCoords(c.nRegisters);
    this.rot = rotateHalfMatrix(d.headDim);
  }
  /** Full-image encoder coords `[B, R+N, 2]` (registers rescaled to the full bbox). */
  fullCoords(batch: number): HostTensor<Float32Array> {
    const kept = new Int32Array(batch * this.d.nTokens).map((_, i) => i % this.d.nTokens);
    return {
      shape: [batch, this.c.nRegisters + this.d.nTokens, 2],
      data: encoderCoords(this.all, this.regs, kept, batch),
    };
  }
  /** Encoder coords `[B, R+n, 2]` of `n`-per-image visible absolute indices (registers rescaled to their bbox). */
  visibleCoords(visibleAbs: Int32Array, batch: number): HostTensor<Float32Array> {
    const kept = visibleAbs.map((a) => a % this.d.nTokens);
    const n = visibleAbs.length / batch;
    return { shape: [batch, this.c.nRegisters + n, 2], data: encoderCoords(this.all, this.regs, kept, batch) };
  }
  /** Coords `[B, n, 2]` of `n`-per-image absolute indices. */
  gatherCoords(abs: Int32Array, batch: number): HostTensor<Float32Array> {
    const out = new Float32Array(abs.length * 2);
    abs.forEach((a, i) => {
      const p = a % this.d.nTokens;
      out[2 * i] = this.all[2 * p];
      out[2 * i + 1] = this.all[2 * p + 1];
    });
    return { shape: [batch, abs.length / batch, 2], data: out };
  }
}

function withRegisters(o: Ops, get: ParamGetter, pre: string, x: Tensor): Tensor {
  const regs = get(`${pre}registers`); // [1, R, D]
  if (regs.shape[1] === 0) return x;
  return o.concat([o.broadcastTo(regs, [x.shape[0], regs.shape[1], regs.shape[2]]), x], 1); // [B, R+L, D]
}

/** Teacher (and eval) encoder on full images: `enc_norm` output `[B, R+N, D]` and its coords. */
export function fullEncode(
  o: Ops,
  get: ParamGetter,
  pre: string,
  patches: Tensor,
  g: CapiGeometry,
  opts: { trace?: Trace; tracePrefix?: string } = {},
): { out: Tensor; coords: Tensor } {
  const emb = embedPatches(o, get, pre, patches);
  opts.trace?.(`${opts.tracePrefix}patch_embed`, emb);
  const tokens = withRegisters(o, get, pre, emb);
  opts.trace?.(`${opts.tracePrefix}tokens_in`, tokens);
  const coords = o.constant(g.fullCoords(patches.shape[0]), "capi.full_coords");
  return { out: encode(o, get, pre, tokens, coords, g.c, o.constant(g.rot, "capi.rot"), opts), coords };
}

/** The student's per-step inputs: visible absolute indices `[B*nVis]`, encoder and decoder coords. */
export interface StudentInputs {
  visibleIndices: Tensor;
  coordsEnc: Tensor;
  coordsDec: Tensor;
}

/** Student forward: masked encoder, predictor at the predicted positions: `[B*nPredict, D]` in that order. */
export function studentForward(
  o: Ops,
  get: ParamGetter,
  pre: string,
  patches: Tensor,
  inp: StudentInputs,
  g: CapiGeometry,
  opts: { drop?: DropPath; trace?: Trace } = {},
): Tensor {
  const { c, d } = g;
  const b = patches.shape[0], dim = c.embedDim, tp = "student.", trace = opts.trace;
  const nVis = inp.visibleIndices.shape[0] / b, nPred = inp.coordsDec.shape[1];
  const rot = o.constant(g.rot, "capi.rot");
  const emb = embedPatches(o, get, pre, patches); // [B, N, D]
  trace?.(`${tp}patch_embed`, emb);
  const vis = o.reshape(o.gather(o.reshape(emb, [b * d.nTokens, dim]), inp.visibleIndices), [b, nVis, dim]);
  const tokens = withRegisters(o, get, pre, vis); // [B, R+nVis, D]
  trace?.(`${tp}tokens_in`, tokens);
  trace?.(`${tp}coords_enc`, inp.coordsEnc);
  const ctx = encode(o, get, pre, tokens, inp.coordsEnc, c, rot, { drop: opts.drop?.encoder, trace, tracePrefix: tp });
  trace?.(`${tp}enc_norm_out`, ctx);
  trace?.(`${tp}coords_dec`, inp.coordsDec);
  const queries = o.broadcastTo(o.reshape(get(`${pre}mask_token`), [1, 1, dim]), [b, nPred, dim]);
  const out = decode(o, get, pre, queries, inp.coordsDec, { x: ctx, coords: inp.coordsEnc }, c, rot, {
    drop: opts.drop?.decoder,
    trace,
    tracePrefix: tp,
  });
  trace?.(`${tp}dec_norm_out`, out);
  return o.reshape(out, [b * nPred, dim]);
}

/** Eval API (model.py:432-448): feature map `[B,Gh,Gw,D]`, registers `[B,R,D]` (null if R = 0), global `[B,D]`. */
export function evalForward(
  o: Ops,
  get: ParamGetter,
  pre: string,
  patches: Tensor,
  g: CapiGeometry,
): { featureMap: Tensor; registers: Tensor | null; global: Tensor } {
  const { c, d } = g;
  const b = patches.shape[0], r = c.nRegisters, dim = c.embedDim;
  const { out, coords } = fullEncode(o, get, pre, patches, g);
  const featureMap = o.reshape(o.slice(out, [0, r, 0], [b, d.nTokens, dim]), [b, d.gridH, d.gridW, dim]);
  const registers = r > 0 ? o.slice(out, [0, 0, 0], [b, r, dim]) : null;
  const qCoords = o.broadcastTo(o.constant({ shape: [1, d.nTokens, 2], data: g.all }, "capi.patch_coords"), [
    b,
    d.nTokens,
    2,
  ]);
  const queries = o.broadcastTo(o.reshape(get(`${pre}mask_token`), [1, 1, dim]), [b, d.nTokens, dim]);
  const rot = o.constant(g.rot, "capi.rot");
  const dec = decode(o, get, pre, queries, qCoords, { x: out, coords }, c, rot, { depth: 1 });
  return { featureMap, registers, global: o.mean(dec, 1) };
}
