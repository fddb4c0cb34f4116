/**
 * `GraphOps`: the `Ops` implementation that records a graph with static shapes instead of
 * computing. Each call checks its operands, infers the output shape and dtype, and appends one
 * node to `graph`; errors name the op and the shapes. `constant` becomes an initializer,
 * `input(name)` a graph input (int32 allowed), `trace` an extra output.
 *
 * Beyond `Ops` it records the few internal kinds that gradients and the optimizer need
 * (`GradOps`: sign, greaterEqual, minimum, pad, scatterAdd, sumSquares); model code never
 * calls those.
 *
 * @example
 * ```ts
 * import { GraphOps } from "./graph_ops.ts";
 * const o = new GraphOps();
 * const x = o.input("x", { shape: [2, 3], data: new Float32Array(6) });
 * const y = o.sum(o.square(x), -1); // recorded, shape [2]
 * o.output("y", y);
 * ```
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { broadcastShapes, type DType, normAxes, type Operand, type Ops, type Tensor } from "./ops.ts";
import { Graph, numel, type OpAttrs, type OpKind, sameShape, Value } from "./graph_ir.ts";

/** `Ops` plus the internal kinds that vector-Jacobian rules and the optimizer use. */
export interface GradOps extends Ops {
  /** torch `sign` (0 at 0). */
  sign(x: Tensor): Tensor;
  /** `a >= b` as float32 0/1. */
  greaterEqual(a: Tensor, b: Operand): Tensor;
  minimum(a: Tensor, b: Operand): Tensor;
  /** Zero padding: `before[i]` and `after[i]` entries on axis i. */
  pad(x: Tensor, before: number[], after: number[]): Tensor;
  /** Inverse of `gather(x, indices, axis)` with `x.shape[axis] = size`: duplicates sum. */
  scatterAdd(updates: Tensor, indices: Tensor, axis: number, size: number): Tensor;
  /** Sum of squares over `axes`. */
  sumSquares(x: Tensor, axes: number | number[], keepDims?: boolean): Tensor;
  /** A float32 tensor filled with `value`. */
  fill(shape: number[], value: number): Tensor;
}

const f32 = (shape: number[]) => ({ shape, dtype: "float32" as DType });
const fmt = (t: Tensor) => `${t.dtype}[${t.shape}]`;

export class GraphOps implements GradOps {
  readonly kind = "graph" as const;
  readonly graph: Graph;
  readonly #scalars = new Map<number, Value>();

  constructor(graph: Graph = new Graph()) {
    this.graph = graph;
  }

  // ---- recording helpers ------------------------------------------------------------------

  /** The graph value behind `t` (a number becomes a cached float32 scalar). */
  value(t: Operand, op = "op"): Value {
    if (typeof t === "number") return this.#scalar(t);
    if (!(t instanceof Value) || t.node === undefined) {
      throw new Error(`GraphOps.${op}: operand is not a value of a recorded graph (a tfjs tensor given to GraphOps?)`);
    }
    if (this.graph.nodes[t.node.id] !== t.node) {
      throw new Error(`GraphOps.${op}: operand ${t} belongs to another graph`);
    }
    return t;
  }

  #scalar(v: number): Value {
    let s = this.#scalars.get(v);
    if (!s) {
      s = this.#add("fill", [], { value: v }, f32([]));
      this.#scalars.set(v, s);
    }
    return s;
  }

  #add<K extends OpKind>(op: K, inputs: Value[], attrs: OpAttrs[K], out: { shape: number[]; dtype: DType }, hint = "") {
    return this.graph.addNode(op, inputs, attrs, [out], hint)[0];
  }

  #float(op: string, ...ts: Value[]): void {
    for (const [i, t] of ts.entries()) {
      if (t.dtype !== "float32") {
        throw new Error(
          `GraphOps.${op}: operand ${i} is ${fmt(t)}; arithmetic takes float32 ` +
            `(compute integer data on the host and pass it through o.input)`,
        );
      }
    }
  }

  #binary(op: "add" | "sub" | "mul" | "div" | "maximum" | "minimum" | "greaterEqual", a: Operand, b: Operand): Value {
    const x = this.value(a, op), y = this.value(b, op);
    this.#float(op, x, y);
    let shape: number[];
    try {
      shape = broadcastShapes(x.shape, y.shape);
    } catch {
      throw new Error(`GraphOps.${op}: shapes [${x.shape}] and [${y.shape}] do not broadcast`);
    }
    return this.#add(op, [x, y], {}, f32(shape));
  }

  #unary(op: OpKind & keyof UnaryOps, t: Tensor): Value {
    const x = this.value(t, op);
    this.#float(op, x);
    return this.#add(op, [x], {} as OpAttrs[typeof op], f32([...x.shape]));
  }

  #reduce(op: "sum" | "mean" | "max" | "sumSquares", t: Tensor, axes: number | number[], keepDims = false): Value {
    const x = this.value(t, op);
    this.#float(op, x);
    const ax = this.#axes(op, axes, x);
    const shape = keepDims ? x.shape.map((d, i) => ax.includes(i) ? 1 : d) : x.shape.filter((_, i) => !ax.includes(i));
    return this.#add(op, [x], { axes: ax, keepDims }, f32(shape));
  }

  #axes(op: string, axes: number | number[], x: Value): number[] {
    try {
      return normAxes(axes, x.shape.length);
    } catch (e) {
      throw new Error(`GraphOps.${op}: ${(e as Error).message} (operand ${x})`);
    }
  }

  #axis(op: string, axis: number, x: Value): number {
    return this.#axes(op, axis, x)[0];
  }

  /** Expose `t` as graph output `name`. */
  output(name: string, t: Tensor): void {
    this.graph.setOutput(name, this.value(t, "output"));
  }

  /** A `Trace` that turns each traced value into the output `trace.<name>`. */
  tracer(): (name: string, t: Tensor) => void {
    return (name, t) => this.output(`trace.${name}`, t);
  }

  // ---- data from the host ------------------------------------------------------------------

  constant(value: HostTensor, hint = "const"): Tensor {
    const dtype: DType = value.data instanceof Int32Array ? "int32" : "float32";
    if (value.data.length !== numel(value.shape)) {
      throw new Error(`GraphOps.constant '${hint}': ${value.data.length} values for shape [${value.shape}]`);
    }
    return this.#add("constant", [], { value, hint }, { shape: [...value.shape], dtype }, hint);
  }

  input(name: string, value: HostTensor): Tensor {
    return this.inputOf(name, [...value.shape], value.data instanceof Int32Array ? "int32" : "float32", value);
  }

  /** A graph input from its shape and dtype alone (the step graph's parameters and draws). */
  inputOf(name: string, shape: number[], dtype: DType, host: HostTensor | null = null): Value {
    if (this.graph.inputs.has(name)) throw new Error(`GraphOps.input: '${name}' is already an input of this graph`);
    if (host && host.data.length !== numel(shape)) {
      throw new Error(`GraphOps.input '${name}': ${host.data.length} values for shape [${shape}]`);
    }
    const v = this.#add("input", [], { name }, { shape, dtype }, name);
    this.graph.inputs.set(name, { value: v, host });
    return v;
  }

  zeros(shape: number[]): Tensor {
    return this.fill(shape, 0);
  }

  fill(shape: number[], value: number): Tensor {
    if (shape.length === 0) return this.#scalar(value);
    return this.#add("fill", [], { value }, f32([...shape]));
  }

  // ---- elementwise --------------------------------------------------------------------------

  add = (a: Operand, b: Operand): Tensor => this.#binary("add", a, b);
  sub = (a: Operand, b: Operand): Tensor => this.#binary("sub", a, b);
  mul = (a: Operand, b: Operand): Tensor => this.#binary("mul", a, b);
  div = (a: Operand, b: Operand): Tensor => this.#binary("div", a, b);
  maximum = (a: Tensor, b: Operand): Tensor => this.#binary("maximum", a, b);
  minimum = (a: Tensor, b: Operand): Tensor => this.#binary("minimum", a, b);
  greaterEqual = (a: Tensor, b: Operand): Tensor => this.#binary("greaterEqual", a, b);
  neg = (x: Tensor): Tensor => this.#unary("neg", x);
  abs = (x: Tensor): Tensor => this.#unary("abs", x);
  square = (x: Tensor): Tensor => this.#unary("square", x);
  sqrt = (x: Tensor): Tensor => this.#unary("sqrt", x);
  rsqrt = (x: Tensor): Tensor => this.#unary("rsqrt", x);
  exp = (x: Tensor): Tensor => this.#unary("exp", x);
  log = (x: Tensor): Tensor => this.#unary("log", x);
  erf = (x: Tensor): Tensor => this.#unary("erf", x);
  sin = (x: Tensor): Tensor => this.#unary("sin", x);
  cos = (x: Tensor): Tensor => this.#unary("cos", x);
  sign = (x: Tensor): Tensor => this.#unary("sign", x);
  gelu = (x: Tensor): Tensor => this.#unary("gelu", x);

  // ---- structure -------------------------------------------------------------------------------

  reshape(t: Tensor, shape: number[]): Tensor {
    const x = this.value(t, "reshape");
    const n = x.size, free = shape.filter((d) => d === -1).length;
    const known = numel(shape.filter((d) => d !== -1));
    const bad = free > 1 || shape.some((d) => d < -1 || !Number.isInteger(d)) ||
      (free === 0 ? known !== n : known === 0 || n % known !== 0);
    if (bad) throw new Error(`GraphOps.reshape: cannot reshape ${x} (${n} elements) to [${shape}]`);
    const resolved = shape.map((d) => d === -1 ? n / known : d);
    if (sameShape(resolved, x.shape)) return x;
    return this.#add("reshape", [x], { shape: resolved }, { shape: resolved, dtype: x.dtype });
  }

  transpose(t: Tensor, perm: number[]): Tensor {
    const x = this.value(t, "transpose");
    const r = x.shape.length;
    if (perm.length !== r || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      throw new Error(`GraphOps.transpose: perm [${perm}] is not a permutation of the axes of ${x}`);
    }
    if (perm.every((p, i) => p === i)) return x;
    return this.#add("transpose", [x], { perm: [...perm] }, { shape: perm.map((p) => x.shape[p]), dtype: x.dtype });
  }

  concat(ts: Tensor[], axis: number): Tensor {
    if (ts.length === 0) throw new Error("GraphOps.concat: no operands");
    const xs = ts.map((t) => this.value(t, "concat"));
    const ax = this.#axis("concat", axis, xs[0]);
    const shape = [...xs[0].shape];
    for (const x of xs.slice(1)) {
      const ok = x.dtype === xs[0].dtype && x.shape.length === shape.length &&
        x.shape.every((d, i) => i === ax || d === shape[i]);
      if (!ok) throw new Error(`GraphOps.concat: operands ${xs.join(", ")} do not concatenate on axis ${axis}`);
      shape[ax] += x.shape[ax];
    }
    if (xs.length === 1) return xs[0];
    return this.#add("concat", xs, { axis: ax }, { shape, dtype: xs[0].dtype });
  }

  slice(t: Tensor, begin: number[], size: number[]): Tensor {
    const x = this.value(t, "slice");
    const r = x.shape.length;
    const end = size.map((s, i) => s === -1 ? x.shape[i] : begin[i] + s);
    const bad = begin.length !== r || size.length !== r ||
      begin.some((b, i) => b < 0 || end[i] < b || end[i] > x.shape[i]);
    if (bad) throw new Error(`GraphOps.slice: begin [${begin}] size [${size}] is out of range for ${x}`);
    if (begin.every((b, i) => b === 0 && end[i] === x.shape[i])) return x;
    const shape = end.map((e, i) => e - begin[i]);
    return this.#add("slice", [x], { begin: [...begin], end }, { shape, dtype: x.dtype });
  }

  pad(t: Tensor, before: number[], after: number[]): Tensor {
    const x = this.value(t, "pad");
    this.#float("pad", x);
    const r = x.shape.length;
    if (before.length !== r || after.length !== r || [...before, ...after].some((p) => p < 0)) {
      throw new Error(`GraphOps.pad: before [${before}] after [${after}] do not fit ${x}`);
    }
    const shape = x.shape.map((d, i) => d + before[i] + after[i]);
    return this.#add("pad", [x], { before: [...before], after: [...after] }, f32(shape));
  }

  split(t: Tensor, sizes: number[], axis: number): Tensor[] {
    const x = this.value(t, "split");
    const ax = this.#axis("split", axis, x);
    if (sizes.some((s) => s <= 0) || sizes.reduce((a, b) => a + b, 0) !== x.shape[ax]) {
      throw new Error(`GraphOps.split: sizes [${sizes}] do not add up to axis ${axis} of ${x}`);
    }
    if (sizes.length === 1) return [x];
    const outs = sizes.map((s) => ({ shape: x.shape.map((d, i) => i === ax ? s : d), dtype: x.dtype }));
    return this.graph.addNode("split", [x], { sizes: [...sizes], axis: ax }, outs);
  }

  gather(t: Tensor, indices: Tensor, axis = 0): Tensor {
    const x = this.value(t, "gather"), idx = this.value(indices, "gather");
    if (idx.dtype !== "int32") throw new Error(`GraphOps.gather: indices are ${idx}; expected int32`);
    const ax = this.#axis("gather", axis, x);
    const shape = [...x.shape.slice(0, ax), ...idx.shape, ...x.shape.slice(ax + 1)];
    return this.#add("gather", [x, idx], { axis: ax }, { shape, dtype: x.dtype });
  }

  scatterAdd(u: Tensor, indices: Tensor, axis: number, size: number): Tensor {
    const upd = this.value(u, "scatterAdd"), idx = this.value(indices, "scatterAdd");
    this.#float("scatterAdd", upd);
    const k = idx.shape.length;
    const ok = idx.dtype === "int32" && axis >= 0 && axis + k <= upd.shape.length &&
      idx.shape.every((d, i) => d === upd.shape[axis + i]);
    if (!ok) throw new Error(`GraphOps.scatterAdd: indices ${idx} do not match updates ${upd} at axis ${axis}`);
    const shape = [...upd.shape.slice(0, axis), size, ...upd.shape.slice(axis + k)];
    return this.#add("scatterAdd", [upd, idx], { axis, size }, f32(shape));
  }

  broadcastTo(t: Tensor, shape: number[]): Tensor {
    const x = this.value(t, "broadcastTo");
    let ok = shape.length >= x.shape.length;
    try {
      ok &&= sameShape(broadcastShapes(x.shape, shape), shape);
    } catch {
      ok = false;
    }
    if (!ok) throw new Error(`GraphOps.broadcastTo: ${x} does not broadcast to [${shape}]`);
    if (sameShape(x.shape, shape)) return x;
    return this.#add("broadcastTo", [x], { shape: [...shape] }, { shape: [...shape], dtype: x.dtype });
  }

  // ---- reductions -------------------------------------------------------------------------------

  sum = (x: Tensor, axes: number | number[], keepDims?: boolean): Tensor => this.#reduce("sum", x, axes, keepDims);
  mean = (x: Tensor, axes: number | number[], keepDims?: boolean): Tensor => this.#reduce("mean", x, axes, keepDims);
  max = (x: Tensor, axes: number | number[], keepDims?: boolean): Tensor => this.#reduce("max", x, axes, keepDims);
  sumSquares = (x: Tensor, axes: number | number[], keepDims?: boolean): Tensor =>
    this.#reduce("sumSquares", x, axes, keepDims);

  // ---- linear algebra and composites -----------------------------------------------------------

  matMul(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
    const x = this.value(a, "matMul"), y = this.value(b, "matMul");
    this.#float("matMul", x, y);
    const bad = (why: string) =>
      new Error(`GraphOps.matMul: ${x}${transposeA ? "^T" : ""} @ ${y}${transposeB ? "^T" : ""}: ${why}`);
    if (x.shape.length < 2 || y.shape.length < 2) throw bad("operands need rank >= 2");
    const [m, k] = transposeA ? x.shape.slice(-2).reverse() : x.shape.slice(-2);
    const [k2, n] = transposeB ? y.shape.slice(-2).reverse() : y.shape.slice(-2);
    if (k !== k2) throw bad(`inner dimensions ${k} and ${k2} differ`);
    let lead: number[];
    try {
      lead = broadcastShapes(x.shape.slice(0, -2), y.shape.slice(0, -2));
    } catch {
      throw bad("leading axes do not broadcast");
    }
    return this.#add("matMul", [x, y], { transposeA, transposeB }, f32([...lead, m, n]));
  }

  softmax(t: Tensor, axis = -1): Tensor {
    const x = this.value(t, "softmax");
    this.#float("softmax", x);
    return this.#add("softmax", [x], { axis: this.#axis("softmax", axis, x) }, f32([...x.shape]));
  }

  logSoftmax(t: Tensor, axis = -1): Tensor {
    const x = this.value(t, "logSoftmax");
    this.#float("logSoftmax", x);
    return this.#add("logSoftmax", [x], { axis: this.#axis("logSoftmax", axis, x) }, f32([...x.shape]));
  }

  layerNorm(t: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
    const x = this.value(t, "layerNorm"), w = this.value(weight, "layerNorm"), b = this.value(bias, "layerNorm");
    this.#float("layerNorm", x, w, b);
    const d = x.shape[x.shape.length - 1];
    if (!sameShape(w.shape, [d]) || !sameShape(b.shape, [d])) {
      throw new Error(`GraphOps.layerNorm: weight ${w} and bias ${b} must be [${d}] for input ${x}`);
    }
    const stats = f32([...x.shape.slice(0, -1), 1]);
    return this.graph.addNode("layerNorm", [x, w, b], { eps }, [f32([...x.shape]), stats, stats])[0];
  }

  rmsNorm(t: Tensor, weight: Tensor | null, eps: number): Tensor {
    const x = this.value(t, "rmsNorm");
    const ins = [x];
    if (weight !== null) {
      const w = this.value(weight, "rmsNorm");
      if (!sameShape(w.shape, [x.shape[x.shape.length - 1]])) {
        throw new Error(`GraphOps.rmsNorm: weight ${w} must be [${x.shape[x.shape.length - 1]}] for input ${x}`);
      }
      ins.push(w);
    }
    this.#float("rmsNorm", ...ins);
    const stats = f32([...x.shape.slice(0, -1), 1]);
    return this.graph.addNode("rmsNorm", ins, { eps }, [f32([...x.shape]), stats])[0];
  }

  stopGradient(t: Tensor): Tensor {
    const x = this.value(t, "stopGradient");
    return this.#add("stopGradient", [x], {}, { shape: [...x.shape], dtype: x.dtype });
  }

  tidy<R>(fn: () => R): R {
    return fn();
  }
}

type UnaryOps = Pick<
  OpAttrs,
  "neg" | "abs" | "square" | "sqrt" | "rsqrt" | "exp" | "log" | "erf" | "sin" | "cos" | "sign" | "gelu"
>;
