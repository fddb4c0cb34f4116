/**
 * The node-by-node part of the ONNX lowering (onnx_lower.ts): `Emitter` collects ONNX nodes and
 * shared initializers; `lowerNode` writes the ONNX operators of one recorded node, choosing per
 * target where the CPU and WebGPU providers differ (`Sign`, `LogSoftmax`, the scatter of
 * `gather`'s gradient, RMSNorm's inverse RMS output).
 *
 * @module
 */
import type { OnnxAttr, OnnxNode, OnnxTensor } from "../onnx/protobuf.ts";
import { type Node, numel, type Value } from "./graph_ir.ts";

export type LowerTarget = "cpu" | "webgpu";

const int = (value: number): OnnxAttr => ({ kind: "int", value });
const ints = (value: number[]): OnnxAttr => ({ kind: "ints", value });
const float = (value: number): OnnxAttr => ({ kind: "float", value });
const ONNX_FLOAT = 1, ONNX_INT64 = 7;

export class Emitter {
  readonly nodes: OnnxNode[] = [];
  readonly inits: OnnxTensor[] = [];
  readonly #names = new Map<number, string>();
  readonly #ints = new Map<string, string>();
  readonly #floats = new Map<number, string>();
  #tmp = 0;

  constructor(readonly target: LowerTarget) {}

  name(v: Value): string {
    const n = this.#names.get(v.id);
    if (n === undefined) throw new Error(`lowerToOnnx: value ${v} of '${v.node.name}' used before it is written`);
    return n;
  }

  setName(v: Value, name: string): void {
    this.#names.set(v.id, name);
  }

  tmp(hint: string): string {
    return `%${hint}/t${this.#tmp++}`;
  }

  /** int64 1-D initializer (shapes, axes, pads), shared by value. */
  i64(values: number[]): string {
    const key = values.join(",");
    let n = this.#ints.get(key);
    if (!n) {
      n = `i64[${key}]`;
      this.inits.push({ name: n, dtype: "int64", dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
      this.#ints.set(key, n);
    }
    return n;
  }

  /** float32 scalar initializer, shared by value. */
  f32(v: number): string {
    let n = this.#floats.get(v);
    if (!n) {
      n = `f32(${v})`;
      this.inits.push({ name: n, dtype: "float32", dims: [], data: new Float32Array([v]) });
      this.#floats.set(v, n);
    }
    return n;
  }

  node(
    op: string,
    inputs: string[],
    outputs: string[],
    name: string,
    attrs: Record<string, OnnxAttr> = {},
    domain = "",
  ) {
    this.nodes.push({ op, domain, inputs, outputs, name: `${name}/${this.nodes.length}`, attrs });
    return outputs;
  }

  /** One-output node writing a fresh temporary (or `out` when given). */
  op(op: string, inputs: string[], name: string, attrs: Record<string, OnnxAttr> = {}, out?: string, domain = "") {
    return this.node(op, inputs, [out ?? this.tmp(name)], name, attrs, domain)[0];
  }
}

/** Lower one recorded node; `outs[i]` are the ONNX names its outputs must get (empty: unused). */
export function lowerNode(e: Emitter, n: Node, outs: string[]): void {
  const x = n.inputs.map((v) => e.name(v));
  const nm = n.name;
  const one = (op: string, inputs: string[], attrs: Record<string, OnnxAttr> = {}, domain = "") =>
    e.op(op, inputs, nm, attrs, outs[0], domain);
  switch (n.op) {
    case "input":
    case "constant":
      throw new Error("unreachable: sources are named, not lowered");
    case "fill": {
      const v = n.outputs[0];
      if (v.shape.length === 0) return void e.op("Identity", [e.f32(n.attrs.value)], nm, {}, outs[0]);
      const value: OnnxTensor = { name: "value", dtype: "float32", dims: [1], data: new Float32Array([n.attrs.value]) };
      return void one("ConstantOfShape", [e.i64(v.shape)], { value: { kind: "tensor", value } });
    }
    case "add":
      return void one("Add", x);
    case "sub":
      return void one("Sub", x);
    case "mul":
      return void one("Mul", x);
    case "div":
      return void one("Div", x);
    case "maximum":
      return void one("Max", x);
    case "minimum":
      return void one("Min", x);
    case "neg":
      return void one("Neg", x);
    case "abs":
      return void one("Abs", x);
    case "square":
      return void one("Mul", [x[0], x[0]]);
    case "sqrt":
      return void one("Sqrt", x);
    case "rsqrt":
      return void one("Reciprocal", [e.op("Sqrt", x, nm)]);
    case "exp":
      return void one("Exp", x);
    case "log":
      return void one("Log", x);
    case "erf":
      return void one("Erf", x);
    case "sin":
      return void one("Sin", x);
    case "cos":
      return void one("Cos", x);
    case "sign": {
      if (e.target === "cpu") return void one("Sign", x);
      const zero = e.f32(0);
      const pos = e.op("Cast", [e.op("Greater", [x[0], zero], nm)], nm, { to: int(ONNX_FLOAT) });
      const neg = e.op("Cast", [e.op("Less", [x[0], zero], nm)], nm, { to: int(ONNX_FLOAT) });
      return void one("Sub", [pos, neg]);
    }
    case "greaterEqual":
      return void one("Cast", [e.op("GreaterOrEqual", x, nm)], { to: int(ONNX_FLOAT) });
    case "gelu":
      return void one("Gelu", x, {}, "com.microsoft");
    case "stopGradient":
      return void one("Identity", x);
    case "reshape":
      return void one("Reshape", [x[0], e.i64(n.attrs.shape)]);
    case "transpose":
      return void one("Transpose", x, { perm: ints(n.attrs.perm) });
    case "concat":
      return void one("Concat", x, { axis: int(n.attrs.axis) });
    case "slice": {
      const { begin, end } = n.attrs, shape = n.inputs[0].shape;
      const axes = begin.map((_, i) => i).filter((i) => begin[i] !== 0 || end[i] !== shape[i]);
      const pick = (a: number[]) => e.i64(axes.map((i) => a[i]));
      return void one("Slice", [x[0], pick(begin), pick(end), e.i64(axes)]);
    }
    case "pad":
      return void one("Pad", [x[0], e.i64([...n.attrs.before, ...n.attrs.after])]);
    case "split": {
      const names = n.outputs.map((_, i) => outs[i] || e.tmp(`${nm}_unused${i}`));
      return void e.node("Split", [x[0], e.i64(n.attrs.sizes)], names, nm, { axis: int(n.attrs.axis) });
    }
    case "gather":
      return void one("Gather", x, { axis: int(n.attrs.axis) });
    case "scatterAdd":
      return lowerScatterAdd(e, n, x, outs[0]);
    case "broadcastTo":
      return void one("Expand", [x[0], e.i64(n.attrs.shape)]);
    case "sum":
      return void one("ReduceSum", [x[0], e.i64(n.attrs.axes)], { keepdims: int(n.attrs.keepDims ? 1 : 0) });
    case "mean":
    case "max":
    case "sumSquares": {
      const op = { mean: "ReduceMean", max: "ReduceMax", sumSquares: "ReduceSumSquare" }[n.op];
      return void one(op, x, { axes: ints(n.attrs.axes), keepdims: int(n.attrs.keepDims ? 1 : 0) });
    }
    case "matMul":
      return lowerMatMul(e, n, x, outs[0]);
    case "softmax":
      return void one("Softmax", x, { axis: int(n.attrs.axis) });
    case "logSoftmax": {
      const axis = n.attrs.axis;
      if (e.target === "cpu") return void one("LogSoftmax", x, { axis: int(axis) });
      const shifted = e.op("Sub", [x[0], e.op("ReduceMax", x, nm, { axes: ints([axis]), keepdims: int(1) })], nm);
      const lse = e.op("Log", [e.op("ReduceSum", [e.op("Exp", [shifted], nm), e.i64([axis])], nm)], nm);
      return void one("Sub", [shifted, lse]);
    }
    case "layerNorm": {
      const names = outs.map((o, i) => o || (i === 0 ? e.tmp(nm) : ""));
      while (names.length > 1 && !names[names.length - 1]) names.pop(); // trailing optional outputs omitted
      const attrs = { axis: int(-1), epsilon: float(n.attrs.eps) };
      return void e.node("LayerNormalization", x, names, nm, attrs);
    }
    case "rmsNorm": {
      const d = n.inputs[0].shape[n.inputs[0].shape.length - 1];
      let w = x[1];
      if (!w) {
        w = `ones[${d}]`;
        if (!e.inits.some((t) => t.name === w)) {
          e.inits.push({ name: w, dtype: "float32", dims: [d], data: new Float32Array(d).fill(1) });
        }
      }
      if (outs[1] && e.target === "webgpu") {
        // WebGPU's SimplifiedLayerNormalization leaves its inv_std_var output wrong (onnx_lower_test).
        const ms = e.op("ReduceMean", [e.op("Mul", [x[0], x[0]], nm)], nm, { axes: ints([-1]), keepdims: int(1) });
        const inv = e.op(
          "Reciprocal",
          [e.op("Sqrt", [e.op("Add", [ms, e.f32(n.attrs.eps)], nm)], nm)],
          nm,
          {},
          outs[1],
        );
        if (outs[0]) e.op("Mul", [e.op("Mul", [x[0], inv], nm), w], nm, {}, outs[0]);
        return;
      }
      const names = outs[1] ? [outs[0] || e.tmp(nm), outs[1]] : [outs[0]];
      const attrs = { axis: int(-1), epsilon: float(n.attrs.eps), stash_type: int(1) };
      return void e.node("SimplifiedLayerNormalization", [x[0], w], names, nm, attrs);
    }
  }
}

/** Whether a product lowers to one Gemm: a matrix right operand, and rows of `a` foldable. */
export function isGemm(n: Node): n is Node & { op: "matMul" } {
  if (n.op !== "matMul") return false;
  const [a, b] = n.inputs;
  return b.shape.length === 2 && (a.shape.length === 2 || !n.attrs.transposeA);
}

/**
 * `op(a) @ op(b)` (+ `bias` as Gemm's C): Gemm on folded rows when `b` is a matrix, else
 * (Transpose +) MatMul.
 */
export function lowerMatMul(e: Emitter, n: Node & { op: "matMul" }, x: string[], out: string, bias?: string): void {
  const [a, b] = n.inputs, { transposeA: ta, transposeB: tb } = n.attrs, nm = n.name;
  const y = n.outputs[0];
  if (isGemm(n)) {
    const k = a.shape[a.shape.length - 1];
    const a2 = a.shape.length === 2 ? x[0] : e.op("Reshape", [x[0], e.i64([-1, k])], nm);
    const attrs = { transA: int(ta ? 1 : 0), transB: int(tb ? 1 : 0) };
    const ins = bias ? [a2, x[1], bias] : [a2, x[1]];
    if (y.shape.length === 2) return void e.op("Gemm", ins, nm, attrs, out);
    return void e.op("Reshape", [e.op("Gemm", ins, nm, attrs), e.i64(y.shape)], nm, {}, out);
  }
  const swap = (v: Value, name: string) => {
    const perm = v.shape.map((_, i) => i);
    [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
    return e.op("Transpose", [name], nm, { perm: ints(perm) });
  };
  e.op("MatMul", [ta ? swap(a, x[0]) : x[0], tb ? swap(b, x[1]) : x[1]], nm, {}, out);
}

/**
 * The gradient of `gather`: updates `[P, K, Q]` (P = axes before, K = index elements, Q = after)
 * summed into zeros at their index, duplicates adding. CPU: `ScatterND` (`reduction="add"`) into
 * `[size, P, Q]` with int64 indices, the index axis moved first and back when P > 1. WebGPU has
 * no int64 cast, so there: `ScatterElements` into `[P, size, Q]` with the int32 indices expanded.
 */
function lowerScatterAdd(e: Emitter, n: Node & { op: "scatterAdd" }, x: string[], out: string): void {
  const [u, idx] = n.inputs, { axis, size } = n.attrs, nm = n.name;
  const p = numel(u.shape.slice(0, axis)), k = idx.size, q = numel(u.shape.slice(axis + idx.shape.length));
  const reduction: OnnxAttr = { kind: "string", value: "add" };
  const zerosOf = (shape: number[]) => {
    const value: OnnxTensor = { name: "value", dtype: "float32", dims: [1], data: new Float32Array([0]) };
    return e.op("ConstantOfShape", [e.i64(shape)], nm, { value: { kind: "tensor", value } });
  };
  let r: string;
  if (e.target === "webgpu") {
    const upd = e.op("Reshape", [x[0], e.i64([p, k, q])], nm);
    const ix = e.op("Expand", [e.op("Reshape", [x[1], e.i64([1, k, 1])], nm), e.i64([p, k, q])], nm);
    r = e.op("ScatterElements", [zerosOf([p, size, q]), ix, upd], nm, { axis: int(1), reduction });
  } else {
    const i64 = e.op("Reshape", [e.op("Cast", [x[1]], nm, { to: int(ONNX_INT64) }), e.i64([k, 1])], nm);
    let upd = e.op("Reshape", [x[0], e.i64(p === 1 ? [k, q] : [p, k, q])], nm);
    if (p > 1) upd = e.op("Transpose", [upd], nm, { perm: ints([1, 0, 2]) });
    r = e.op("ScatterND", [zerosOf(p === 1 ? [size, q] : [size, p, q]), i64, upd], nm, { reduction });
    if (p > 1) r = e.op("Transpose", [r], nm, { perm: ints([1, 0, 2]) });
  }
  e.op("Reshape", [r, e.i64(n.outputs[0].shape)], nm, {}, out);
}
