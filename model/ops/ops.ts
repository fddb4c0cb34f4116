/**
 * `Ops`: the small tensor interface every model in the suite is written against, once.
 *
 * CAPI, MAE and SimMIM (teacher and student forwards, predictor, clustering and Sinkhorn,
 * losses) are plain functions of an `Ops` and their parameters. Two implementations run them:
 *
 * - `TfOps` (model/ops/tf_ops.ts): tfjs, eager. Gradients come from tfjs's tape; on the `blas`
 *   backend `gelu` and `layerNorm` are the fused kernels of model/kernels.
 * - `GraphOps` (model/ops/graph_ops.ts): records the same calls as a graph with static shapes.
 *   model/ops/autodiff.ts differentiates it with one vector-Jacobian rule per op below, the
 *   optimizer and EMA are appended, and the whole training step runs as one ONNX graph on
 *   onnxruntime (`--engine ort`).
 *
 * Rules for model code that keep both engines correct:
 * - Shapes are static and known when the code runs: read them from `x.shape`, never from data.
 * - Data that changes every step (images, masks, indices, coordinates, drop-path subsets) enters
 *   through `input(name, host)`; data fixed by the config (RoPE tables, rotation matrix) through
 *   `constant`. Never branch on tensor values; the graph records one branch.
 * - Numbers are accepted wherever a tensor is, and broadcast as scalars.
 * - Gradients stop only at `stopGradient` (torch `.detach()`) and at inputs and constants.
 *
 * The set is deliberately small. A new op needs: the method here, a tfjs implementation, a graph
 * recording with its output shape, an ONNX lowering, and a vector-Jacobian rule with a
 * finite-difference test (model/ops/README.md says where each lives).
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";

export type DType = "float32" | "int32";

/** A tensor handle of one engine: a tfjs tensor, or a value of a recorded graph. */
export interface Tensor {
  readonly shape: number[];
  readonly dtype: DType;
}

/** A tensor operand or a number (broadcast as a float32 scalar). */
export type Operand = Tensor | number;

export interface Ops {
  /** `tfjs` computes eagerly; `graph` records for onnxruntime. */
  readonly kind: "tfjs" | "graph";

  // ---- data from the host -------------------------------------------------------------
  /** Data fixed by the configuration (identical every step): an initializer of the graph. */
  constant(value: HostTensor, hint?: string): Tensor;
  /**
   * Data of this step (images, masks, gather indices, coordinates, drop-path subsets): an input
   * of the graph named `name`, fed every step. Shapes must not change between steps.
   */
  input(name: string, value: HostTensor): Tensor;
  /** A float32 tensor of zeros (constant). */
  zeros(shape: number[]): Tensor;

  // ---- elementwise, numpy broadcasting ------------------------------------------------
  add(a: Operand, b: Operand): Tensor;
  sub(a: Operand, b: Operand): Tensor;
  mul(a: Operand, b: Operand): Tensor;
  div(a: Operand, b: Operand): Tensor;
  /** Elementwise maximum (gradient to `a` where `a >= b`, as tfjs and torch). */
  maximum(a: Tensor, b: Operand): Tensor;
  neg(x: Tensor): Tensor;
  abs(x: Tensor): Tensor;
  square(x: Tensor): Tensor;
  sqrt(x: Tensor): Tensor;
  rsqrt(x: Tensor): Tensor;
  exp(x: Tensor): Tensor;
  log(x: Tensor): Tensor;
  erf(x: Tensor): Tensor;
  sin(x: Tensor): Tensor;
  cos(x: Tensor): Tensor;

  // ---- structure ----------------------------------------------------------------------
  /** One `-1` allowed. */
  reshape(x: Tensor, shape: number[]): Tensor;
  transpose(x: Tensor, perm: number[]): Tensor;
  concat(xs: Tensor[], axis: number): Tensor;
  /** `size[i] = -1` takes the rest of axis i. */
  slice(x: Tensor, begin: number[], size: number[]): Tensor;
  split(x: Tensor, sizes: number[], axis: number): Tensor[];
  /** Rows of `x` along `axis` at int32 `indices` (any shape): `x.shape[:axis] + indices.shape + x.shape[axis+1:]`. */
  gather(x: Tensor, indices: Tensor, axis?: number): Tensor;
  /** Broadcast to `shape` (numpy rules); its gradient sums over the broadcast axes. */
  broadcastTo(x: Tensor, shape: number[]): Tensor;

  // ---- reductions (axes may be negative) ------------------------------------------------
  sum(x: Tensor, axes: number | number[], keepDims?: boolean): Tensor;
  mean(x: Tensor, axes: number | number[], keepDims?: boolean): Tensor;
  /** No gradient rule: used only where no gradient flows (Sinkhorn's shift); differentiating it throws. */
  max(x: Tensor, axes: number | number[], keepDims?: boolean): Tensor;

  // ---- linear algebra -----------------------------------------------------------------
  /** `op(a) @ op(b)` over the last two axes, leading axes broadcast (numpy `matmul`). */
  matMul(a: Tensor, b: Tensor, transposeA?: boolean, transposeB?: boolean): Tensor;

  // ---- neural-network composites (one op each so an engine can fuse them) ----------------
  softmax(x: Tensor, axis?: number): Tensor;
  logSoftmax(x: Tensor, axis?: number): Tensor;
  /** Exact GELU `0.5 x (1 + erf(x / sqrt 2))` (torch `F.gelu`, approximate='none'). */
  gelu(x: Tensor): Tensor;
  /** torch `nn.LayerNorm` over the last axis: biased variance. */
  layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor;
  /** torch `nn.RMSNorm` over the last axis; `weight = null` for the weight-free final norms. */
  rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor;

  // ---- autodiff and memory ------------------------------------------------------------
  /** Identity whose gradient is zero (torch `.detach()`). */
  stopGradient(x: Tensor): Tensor;
  /** tfjs: `tf.tidy` (intermediates freed, returned tensors kept); graph: calls `fn`. */
  tidy<R>(fn: () => R): R;
}

/** A model's parameters by official state-dict name, as tensors of one engine. */
export type ParamGetter = (name: string) => Tensor;

/**
 * Receives named intermediates for parity checks. tfjs: the callee keeps what it stores
 * (`tf.keep`); graph: the value becomes an extra output of the compiled graph.
 */
export type Trace = (name: string, t: Tensor) => void;

/** Normalise `axes` (number or list, possibly negative) for a tensor of rank `rank`, sorted. */
export function normAxes(axes: number | number[], rank: number): number[] {
  const list = typeof axes === "number" ? [axes] : axes;
  const out = list.map((a) => {
    const v = a < 0 ? a + rank : a;
    if (v < 0 || v >= rank) throw new Error(`axis ${a} is out of range for rank ${rank}`);
    return v;
  });
  return [...new Set(out)].sort((x, y) => x - y);
}

/** numpy broadcast of two shapes, or an error naming both. */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`shapes [${a}] and [${b}] do not broadcast`);
    out[i] = x === 1 ? y : x;
  }
  return out;
}
