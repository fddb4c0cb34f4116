/**
 * `TfOps`: the `Ops` interface (model/ops/ops.ts) on tfjs, eager. Each op is its tfjs call; the
 * exceptions are deliberate and change no value:
 *
 * - `gelu` and `layerNorm` are the fused kernels of model/kernels on the `blas` backend (one kernel
 *   each way) and the plain tfjs compositions elsewhere (`fused: false` forces the compositions).
 * - `matMul` with `transposeA/B` transposes explicitly on backends other than `blas`: tfjs-wasm runs
 *   transposed products 5-10x slower than plain ones; BLAS transposes for free.
 * - `broadcastTo` is `zeros + x`: tfjs's `broadcastTo` is a `Tile`, whose gradient takes one slice
 *   per repetition (seconds per step on wasm for MAE's mask tokens); an add differentiates into one sum.
 * - `gather` along axis 0 on 1-D indices that came from `input` (host data known) and form at most
 *   `GATHER_RUNS` runs of consecutive rows is slices + concat (CAPI's drop-path subsets): wasm's gather
 *   kernel and its scatter gradient are slow, and the rows are the same copies. Distinct indices also
 *   get the matching gradient, one concat of `dy`'s runs and zero gaps (tfjs would pad every slice's
 *   gradient to the full input and add them).
 * - Under `withGradients` (the training engine), an op none of whose inputs depends on a trainable
 *   parameter runs with tfjs's tape paused, and `stopGradient` is a copy made with the tape paused.
 *   tfjs records every op on the tape and keeps a copy of each saved input until the backward pass
 *   ends; PyTorch records only what requires grad. Pausing gives the same gradients (those nodes
 *   were pruned from the backward pass anyway) without the memory and copies: CAPI's EMA teacher
 *   and Sinkhorn run as if outside the tape, as they did when the old method computed them apart.
 *
 * Tensors are tfjs tensors typed as `Tensor`; `toTf(t)` gives the tfjs view back.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import { fusedGelu, geluComposite } from "../kernels/fused_gelu.ts";
import { fusedLayerNorm, layerNormComposite } from "../kernels/fused_layer_norm.ts";
import type { Operand, Ops, Tensor } from "./ops.ts";

/** Most runs of consecutive rows a host-known gather is split into slices for (more: the gather kernel). */
export const GATHER_RUNS = 64;

const asTf = (t: Tensor): tf.Tensor => t as unknown as tf.Tensor;
const asOps = (t: tf.Tensor): Tensor => t as unknown as Tensor;

/** The tfjs tensor behind a `TfOps` tensor. */
export const toTf: (t: Tensor) => tf.Tensor = asTf;
/** A tfjs tensor as an `Ops` tensor (parameters handed to model code). */
export const fromTf: (t: tf.Tensor) => Tensor = asOps;
const operand = (a: Operand): tf.Tensor | number => (typeof a === "number" ? a : asTf(a));

/** Maximal runs `[start, length]` of consecutive values in `idx`. */
export function runsOf(idx: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < idx.length; i++) {
    const last = runs[runs.length - 1];
    if (last && idx[i] === last[0] + last[1]) last[1]++;
    else runs.push([idx[i], 1]);
  }
  return runs;
}

/** The slice of tfjs-core's engine state used to pause the tape (4.22: `isTapeOn` reads `kernelDepth`). */
interface TapeState {
  state: { gradientDepth: number; kernelDepth: number };
}

function tapeState(): TapeState["state"] {
  const s = (tf.engine() as unknown as Partial<TapeState>).state;
  if (!s || typeof s.kernelDepth !== "number" || typeof s.gradientDepth !== "number") {
    throw new Error("TfOps: tfjs engine has no state.kernelDepth/gradientDepth (tfjs-core changed; expected 4.22)");
  }
  return s;
}

/** Run `f` without recording to tfjs's gradient tape (as tfjs does inside a kernel). */
function untaped<T>(f: () => T): T {
  const s = tapeState();
  s.kernelDepth++;
  try {
    return f();
  } finally {
    s.kernelDepth--;
  }
}

export interface TfOpsOptions {
  /** Fused GELU/LayerNorm kernels where the backend has them (default true). */
  fused?: boolean;
}

export class TfOps implements Ops {
  readonly kind = "tfjs" as const;
  readonly #fused: boolean;
  /** Host data of int32 tensors made by `input`, for the gather fast path. */
  readonly #hostIndices = new WeakMap<object, Int32Array>();
  /** Under `withGradients`: the tensors that depend on a trainable parameter. */
  #tracked: WeakSet<object> | null = null;

  constructor(opts: TfOpsOptions = {}) {
    this.#fused = opts.fused ?? true;
  }

  /**
   * Run `fn` (a gradient computation over `roots`) with tape pruning: ops that do not depend on
   * `roots` are not recorded. Not reentrant.
   */
  withGradients<R>(roots: tf.Tensor[], fn: () => R): R {
    if (this.#tracked) throw new Error("TfOps.withGradients: already inside withGradients");
    this.#tracked = new WeakSet(roots);
    try {
      return fn();
    } finally {
      this.#tracked = null;
    }
  }

  /** Run op `f` on `args`: untaped when tracking and no argument is tracked; mark outputs tracked otherwise. */
  #op<T extends tf.Tensor | tf.Tensor[]>(args: readonly (Operand | null)[], f: () => T): T {
    const tracked = this.#tracked;
    if (!tracked) return f();
    if (!args.some((a) => a !== null && typeof a === "object" && tracked.has(a))) return untaped(f);
    const out = f();
    for (const t of Array.isArray(out) ? out : [out]) tracked.add(t);
    return out;
  }

  #unary(x: Tensor, f: (t: tf.Tensor) => tf.Tensor): Tensor {
    return asOps(this.#op([x], () => f(asTf(x))));
  }

  #binary(a: Operand, b: Operand, f: (x: tf.Tensor | number, y: tf.Tensor | number) => tf.Tensor): Tensor {
    return asOps(this.#op([a, b], () => f(operand(a), operand(b))));
  }

  constant(value: HostTensor): Tensor {
    return asOps(tf.tensor(value.data, value.shape, value.data instanceof Int32Array ? "int32" : "float32"));
  }

  input(name: string, value: HostTensor): Tensor {
    const n = value.shape.reduce((a, d) => a * d, 1);
    if (n !== value.data.length) {
      throw new Error(`TfOps.input '${name}': shape [${value.shape}] has ${n} elements, data has ${value.data.length}`);
    }
    const t = this.constant(value);
    if (value.data instanceof Int32Array && value.shape.length === 1) this.#hostIndices.set(t, value.data);
    return t;
  }

  zeros(shape: number[]): Tensor {
    return asOps(tf.zeros(shape));
  }

  add(a: Operand, b: Operand): Tensor {
    return this.#binary(a, b, tf.add);
  }
  sub(a: Operand, b: Operand): Tensor {
    return this.#binary(a, b, tf.sub);
  }
  mul(a: Operand, b: Operand): Tensor {
    return this.#binary(a, b, tf.mul);
  }
  div(a: Operand, b: Operand): Tensor {
    return this.#binary(a, b, tf.div);
  }
  maximum(a: Tensor, b: Operand): Tensor {
    return this.#binary(a, b, tf.maximum);
  }
  neg(x: Tensor): Tensor {
    return this.#unary(x, tf.neg);
  }
  abs(x: Tensor): Tensor {
    return this.#unary(x, tf.abs);
  }
  square(x: Tensor): Tensor {
    return this.#unary(x, tf.square);
  }
  sqrt(x: Tensor): Tensor {
    return this.#unary(x, tf.sqrt);
  }
  rsqrt(x: Tensor): Tensor {
    return this.#unary(x, tf.rsqrt);
  }
  exp(x: Tensor): Tensor {
    return this.#unary(x, tf.exp);
  }
  log(x: Tensor): Tensor {
    return this.#unary(x, tf.log);
  }
  erf(x: Tensor): Tensor {
    return this.#unary(x, tf.erf);
  }
  sin(x: Tensor): Tensor {
    return this.#unary(x, tf.sin);
  }
  cos(x: Tensor): Tensor {
    return this.#unary(x, tf.cos);
  }

  reshape(x: Tensor, shape: number[]): Tensor {
    return this.#unary(x, (t) => tf.reshape(t, shape));
  }
  transpose(x: Tensor, perm: number[]): Tensor {
    return this.#unary(x, (t) => tf.transpose(t, perm));
  }
  concat(xs: Tensor[], axis: number): Tensor {
    return asOps(this.#op(xs, () => tf.concat(xs.map(asTf), axis)));
  }
  slice(x: Tensor, begin: number[], size: number[]): Tensor {
    return this.#unary(x, (t) => tf.slice(t, begin, size));
  }
  split(x: Tensor, sizes: number[], axis: number): Tensor[] {
    return this.#op([x], () => tf.split(asTf(x), sizes, axis)).map(asOps);
  }

  gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
    const host = this.#hostIndices.get(indices);
    const runs = host && (axis === 0 || axis === -x.shape.length) ? runsOf(host) : null;
    return asOps(this.#op([x, indices], () => {
      const t = asTf(x);
      if (!runs || runs.length > GATHER_RUNS) return tf.gather(t, asTf(indices), axis);
      return new Set(host).size === host!.length ? gatherRunsDistinct(t, runs) : takeRuns(t, runs);
    }));
  }

  broadcastTo(x: Tensor, shape: number[]): Tensor {
    if (x.shape.length === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    return this.#unary(x, (t) => tf.add(tf.zeros(shape), t));
  }

  sum(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return this.#unary(x, (t) => tf.sum(t, axes, keepDims));
  }
  mean(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return this.#unary(x, (t) => tf.mean(t, axes, keepDims));
  }
  max(x: Tensor, axes: number | number[], keepDims = false): Tensor {
    return this.#unary(x, (t) => tf.max(t, axes, keepDims));
  }

  matMul(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
    return asOps(this.#op([a, b], () => {
      if (tf.getBackend() === "blas") return tf.matMul(asTf(a), asTf(b), transposeA, transposeB);
      const swap = (t: tf.Tensor) => {
        if (t.rank === 2) return tf.transpose(t);
        const [m, n] = t.shape.slice(-2);
        const lead = t.shape.slice(0, -2);
        return tf.reshape(tf.transpose(tf.reshape(t, [-1, m, n]), [0, 2, 1]), [...lead, n, m]);
      };
      return tf.matMul(transposeA ? swap(asTf(a)) : asTf(a), transposeB ? swap(asTf(b)) : asTf(b));
    }));
  }

  softmax(x: Tensor, axis = -1): Tensor {
    return this.#unary(x, (t) => tf.softmax(t, axis));
  }
  logSoftmax(x: Tensor, axis = -1): Tensor {
    return this.#unary(x, (t) => tf.logSoftmax(t, axis));
  }
  gelu(x: Tensor): Tensor {
    return this.#unary(x, this.#fused ? fusedGelu : geluComposite);
  }
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    const f = this.#fused ? fusedLayerNorm : layerNormComposite;
    return asOps(this.#op([x, weight, bias], () => f(asTf(x), asTf(weight), asTf(bias), eps)));
  }
  rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
    return asOps(this.#op([x, weight], () =>
      tf.tidy(() => {
        const t = asTf(x);
        const y = tf.mul(t, tf.rsqrt(tf.add(tf.mean(tf.square(t), -1, true), eps)));
        return weight ? tf.mul(y, asTf(weight)) : y;
      })));
  }

  stopGradient(x: Tensor): Tensor {
    // Tracking: a copy the tape never saw. Plain tfjs (tf.grad over TfOps code): an identity with zero gradient.
    if (this.#tracked) return asOps(untaped(() => tf.clone(asTf(x))));
    return asOps(detach(asTf(x)));
  }

  tidy<R>(fn: () => R): R {
    return tf.tidy(fn as () => tf.TensorContainer) as R;
  }
}

/** Rows `runs` (`[start, length]`, in output order) of `x` along axis 0, as slices + concat. */
function takeRuns(x: tf.Tensor, runs: [number, number][]): tf.Tensor {
  const rest = x.shape.slice(1);
  const parts = runs.map(([s, n]) => tf.slice(x, [s, ...rest.map(() => 0)], [n, ...rest]));
  return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
}

/**
 * `takeRuns` for runs that never repeat a row, with its gradient as one concat: each input row's
 * gradient is the output row that copied it, zeros for rows nobody took (what scatter gives).
 */
function gatherRunsDistinct(x: tf.Tensor, runs: [number, number][]): tf.Tensor {
  const rows = x.shape[0], rest = x.shape.slice(1);
  // Output row where each run starts, then the runs in input order.
  const at: number[] = [];
  runs.reduce((o, [, n]) => (at.push(o), o + n), 0);
  const bySource = runs.map(([s, n], k) => ({ s, n, o: at[k] })).sort((a, b) => a.s - b.s);
  const f = tf.customGrad(
    ((t: tf.Tensor) => ({
      value: takeRuns(t, runs),
      gradFunc: (dy: tf.Tensor) => {
        const parts: tf.Tensor[] = [];
        let next = 0;
        for (const { s, n, o } of bySource) {
          if (s > next) parts.push(tf.zeros([s - next, ...rest]));
          parts.push(tf.slice(dy, [o, ...rest.map(() => 0)], [n, ...rest]));
          next = s + n;
        }
        if (next < rows) parts.push(tf.zeros([rows - next, ...rest]));
        return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
      },
    })) as unknown as Parameters<typeof tf.customGrad>[0],
  );
  return f(x);
}

/** Identity whose gradient is zero (torch `.detach()`) for tfjs's own gradient functions. */
const detach: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as (x: tf.Tensor) => tf.Tensor;
