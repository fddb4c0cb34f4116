/**
 * The recorded graph: values with static shapes and dtypes, nodes in recording (= topological)
 * order, named graph inputs and outputs.
 *
 * `GraphOps` (graph_ops.ts) appends to a `Graph`; autodiff.ts appends its gradient nodes to the
 * same graph; ref_eval.ts interprets it in float64 (tests); onnx_lower.ts writes it as ONNX.
 * Each node kind is one `Ops` method, plus a few internal kinds that only gradients and the
 * optimizer emit (`INTERNAL_OPS`). Attributes are stored resolved (axes normalised, `-1` sizes
 * replaced), so every consumer reads them without re-deriving anything.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { DType, Tensor } from "./ops.ts";

/** Attributes of each node kind. A node's output shapes are inferred once, when it is recorded. */
export interface OpAttrs {
  /** Graph input `name`, fed every run. */
  input: { name: string };
  /** Initializer (data fixed by the configuration). */
  constant: { value: HostTensor; hint: string };
  /** A float32 tensor of one value (zeros, scalars): ConstantOfShape / a scalar initializer. */
  fill: { value: number };
  add: Empty;
  sub: Empty;
  mul: Empty;
  div: Empty;
  maximum: Empty;
  /** Elementwise minimum (the optimizer's clipping coefficient; internal). */
  minimum: Empty;
  neg: Empty;
  abs: Empty;
  square: Empty;
  sqrt: Empty;
  rsqrt: Empty;
  exp: Empty;
  log: Empty;
  erf: Empty;
  sin: Empty;
  cos: Empty;
  /** torch `sign` (0 at 0; internal: the gradient of `abs`). */
  sign: Empty;
  /** `a >= b` as float32 0/1 (internal: the gradient of `maximum`). */
  greaterEqual: Empty;
  /** `shape` is the resolved output shape (no -1). */
  reshape: { shape: number[] };
  transpose: { perm: number[] };
  concat: { axis: number };
  /** Half-open `[begin, end)` per axis. */
  slice: { begin: number[]; end: number[] };
  /** Zero padding per axis (internal: the gradient of `slice`). */
  pad: { before: number[]; after: number[] };
  split: { sizes: number[]; axis: number };
  /** Inputs: `[x, indices]`. */
  gather: { axis: number };
  /**
   * Inputs: `[updates, indices]`; output: zeros of `updates.shape` with the indices' axes replaced
   * by one axis of `size`, updates summed in at their index (duplicates add). Internal: the
   * gradient of `gather`.
   */
  scatterAdd: { axis: number; size: number };
  broadcastTo: { shape: number[] };
  sum: Reduce;
  mean: Reduce;
  max: Reduce;
  /** Sum of squares (internal: gradient norms). */
  sumSquares: Reduce;
  matMul: { transposeA: boolean; transposeB: boolean };
  softmax: { axis: number };
  logSoftmax: { axis: number };
  gelu: Empty;
  /** Inputs `[x, weight, bias]`; outputs `[y, mean, invStd]` (the last two `[..., 1]`, for the backward). */
  layerNorm: { eps: number };
  /** Inputs `[x]` or `[x, weight]`; outputs `[y, invRms]` (`[..., 1]`). */
  rmsNorm: { eps: number };
  stopGradient: Empty;
}
// deno-lint-ignore ban-types
type Empty = {};
interface Reduce {
  axes: number[];
  keepDims: boolean;
}

export type OpKind = keyof OpAttrs;

/** Node kinds that model code cannot record through `Ops`: gradients and optimizers emit them. */
export const INTERNAL_OPS: ReadonlySet<OpKind> = new Set<OpKind>([
  "minimum",
  "sign",
  "greaterEqual",
  "pad",
  "scatterAdd",
  "sumSquares",
]);

/** A value of the graph: one output of one node. */
export class Value implements Tensor {
  readonly id: number;
  readonly shape: number[];
  readonly dtype: DType;
  /** The node that produces it, and which of its outputs it is. */
  readonly node: Node;
  readonly index: number;

  constructor(id: number, shape: number[], dtype: DType, node: Node, index: number) {
    this.id = id;
    this.shape = shape;
    this.dtype = dtype;
    this.node = node;
    this.index = index;
  }

  get size(): number {
    return numel(this.shape);
  }

  toString(): string {
    return `${this.dtype}[${this.shape}]`;
  }
}

interface NodeOf<K extends OpKind> {
  readonly id: number;
  readonly op: K;
  readonly inputs: Value[];
  readonly outputs: Value[];
  readonly attrs: OpAttrs[K];
  /** Readable name for errors and ONNX node names (`<op>_<id>[_<hint>]`). */
  readonly name: string;
}

/** A recorded node; `switch (node.op)` narrows `attrs`. */
export type Node = { [K in OpKind]: NodeOf<K> }[OpKind];

/** The graph `GraphOps` records into. */
export class Graph {
  readonly nodes: Node[] = [];
  /** Graph inputs by name (with the host value given when recorded, for `evaluate` feeds and tests). */
  readonly inputs = new Map<string, { value: Value; host: HostTensor | null }>();
  /** Named outputs, in insertion order. */
  readonly outputs = new Map<string, Value>();
  #nextValue = 0;

  /** Append a node whose outputs have the given shapes and dtypes. */
  addNode<K extends OpKind>(
    op: K,
    inputs: Value[],
    attrs: OpAttrs[K],
    outs: { shape: number[]; dtype: DType }[],
    hint = "",
  ): Value[] {
    const id = this.nodes.length;
    const name = `${op}_${id}${hint ? `_${hint.replace(/[^A-Za-z0-9_.]/g, "_")}` : ""}`;
    const outputs: Value[] = [];
    const node = { id, op, inputs, outputs, attrs, name } as unknown as Node;
    for (const [i, o] of outs.entries()) outputs.push(new Value(this.#nextValue++, o.shape, o.dtype, node, i));
    this.nodes.push(node);
    return outputs;
  }

  /** Expose `v` as the graph output `name`. */
  setOutput(name: string, v: Value): void {
    if (this.outputs.has(name)) throw new Error(`graph: output '${name}' is set twice`);
    this.outputs.set(name, v);
  }

  get valueCount(): number {
    return this.#nextValue;
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
