/**
 * `OnnxGraph`: build an ONNX model (opset 17) op by op from a model's own weights.
 *
 * Values are named strings; every helper returns the name of its output. Weights become
 * initializers; torch-layout Linear weights `[out, in]` are transposed once at export so the
 * graph runs a plain `MatMul`. Composite helpers (`linear`, `rmsNorm`, `gelu`, `attention`)
 * spell out the same formulas as model/nn, so an exported encoder computes what the tfjs
 * encoder computes (checked by the ORT-vs-tfjs parity tests).
 *
 * @example
 * ```ts
 * import { OnnxGraph } from "./graph.ts";
 * const g = new OnnxGraph("double");
 * const x = g.input("x", ["batch", 3], "float32");
 * g.output(g.mul(x, g.scalar(2)), "y", ["batch", 3]);
 * const bytes: Uint8Array = g.toModel();
 * ```
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import {
  type OnnxAttr,
  type OnnxDtype,
  type OnnxTensor,
  ProtoWriter,
  writeAttribute,
  writeTensor,
  writeValueInfo,
} from "./protobuf.ts";

/** Opset 17: LayerNormalization exists, ReduceMean still takes `axes` as an attribute. */
export const OPSET = 17;
/** IR version 8 pairs with opset 17 (onnx/docs/Versioning.md). */
export const IR_VERSION = 8;

interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, OnnxAttr>;
  name: string;
}

interface IoSpec {
  name: string;
  dtype: OnnxDtype;
  dims: (number | string)[];
}

/** Transpose a row-major `[r, c]` host matrix. */
function transpose2d(m: HostTensor<Float32Array>): HostTensor<Float32Array> {
  const [r, c] = m.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = m.data[i * c + j];
  return { shape: [c, r], data: out };
}

export class OnnxGraph {
  readonly name: string;
  readonly #nodes: NodeSpec[] = [];
  readonly #inits: OnnxTensor[] = [];
  readonly #inputs: IoSpec[] = [];
  readonly #outputs: IoSpec[] = [];
  readonly #used = new Set<string>();
  #count = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** A fresh value name derived from `hint`. */
  fresh(hint: string): string {
    let n = hint.replace(/[^A-Za-z0-9_.]/g, "_");
    while (this.#used.has(n)) n = `${hint}_${++this.#count}`;
    this.#used.add(n);
    return n;
  }

  input(name: string, dims: (number | string)[], dtype: OnnxDtype = "float32"): string {
    if (this.#used.has(name)) throw new Error(`OnnxGraph: value '${name}' already exists`);
    this.#used.add(name);
    this.#inputs.push({ name, dtype, dims });
    return name;
  }

  /** Expose `value` as graph output `name` (through an Identity so any value can be renamed). */
  output(value: string, name: string, dims: (number | string)[], dtype: OnnxDtype = "float32"): void {
    if (this.#used.has(name)) throw new Error(`OnnxGraph: output name '${name}' already used`);
    this.#used.add(name);
    this.#nodes.push({ op: "Identity", inputs: [value], outputs: [name], attrs: {}, name: `out_${name}` });
    this.#outputs.push({ name, dtype, dims });
  }

  /** Float initializer (copied). */
  init(t: HostTensor<Float32Array>, hint = "w"): string {
    const name = this.fresh(hint);
    this.#inits.push({ name, dtype: "float32", dims: [...t.shape], data: Float32Array.from(t.data) });
    return name;
  }

  /** 1-D int64 initializer (shapes, indices, slice bounds). */
  ints(values: number[], hint = "i"): string {
    const name = this.fresh(hint);
    this.#inits.push({ name, dtype: "int64", dims: [values.length], data: BigInt64Array.from(values.map(BigInt)) });
    return name;
  }

  /** int64 initializer of any shape (gather indices). */
  intTensor(shape: number[], values: ArrayLike<number>, hint = "idx"): string {
    const name = this.fresh(hint);
    this.#inits.push({ name, dtype: "int64", dims: shape, data: BigInt64Array.from(Array.from(values, BigInt)) });
    return name;
  }

  scalar(v: number, hint = "c"): string {
    return this.init({ shape: [], data: new Float32Array([v]) }, hint);
  }

  /** Generic node with one output. */
  op(op: string, inputs: string[], attrs: Record<string, OnnxAttr> = {}, hint = op.toLowerCase()): string {
    return this.opN(op, inputs, 1, attrs, hint)[0];
  }

  opN(
    op: string,
    inputs: string[],
    n: number,
    attrs: Record<string, OnnxAttr> = {},
    hint = op.toLowerCase(),
  ): string[] {
    const outputs = Array.from({ length: n }, (_, i) => this.fresh(n === 1 ? hint : `${hint}_${i}`));
    this.#nodes.push({ op, inputs, outputs, attrs, name: this.fresh(`n_${hint}`) });
    return outputs;
  }

  // Elementwise and structural ops (names as in the ONNX operator list).
  add = (a: string, b: string) => this.op("Add", [a, b]);
  sub = (a: string, b: string) => this.op("Sub", [a, b]);
  mul = (a: string, b: string) => this.op("Mul", [a, b]);
  div = (a: string, b: string) => this.op("Div", [a, b]);
  sqrt = (a: string) => this.op("Sqrt", [a]);
  erf = (a: string) => this.op("Erf", [a]);
  sin = (a: string) => this.op("Sin", [a]);
  cos = (a: string) => this.op("Cos", [a]);
  matmul = (a: string, b: string) => this.op("MatMul", [a, b]);
  softmax = (x: string, axis = -1) => this.op("Softmax", [x], { axis: { kind: "int", value: axis } });
  transpose = (x: string, perm: number[]) => this.op("Transpose", [x], { perm: { kind: "ints", value: perm } });
  reshape = (x: string, shape: number[]) => this.op("Reshape", [x, this.ints(shape, "shape")]);
  concat = (xs: string[], axis: number) => this.op("Concat", xs, { axis: { kind: "int", value: axis } });
  gather = (x: string, indices: string, axis = 0) =>
    this.op("Gather", [x, indices], { axis: { kind: "int", value: axis } });
  reduceMean = (x: string, axes: number[], keepdims = true) =>
    this.op("ReduceMean", [x], {
      axes: { kind: "ints", value: axes },
      keepdims: { kind: "int", value: keepdims ? 1 : 0 },
    });
  slice = (x: string, starts: number[], ends: number[], axes: number[]) =>
    this.op("Slice", [x, this.ints(starts, "starts"), this.ints(ends, "ends"), this.ints(axes, "axes")]);

  /** torch `nn.Linear` with a `[out, in]` weight (transposed into the initializer) and optional bias. */
  linear(x: string, weight: HostTensor<Float32Array>, bias?: HostTensor<Float32Array> | null, hint = "linear"): string {
    const y = this.matmul(x, this.init(transpose2d(weight), `${hint}.weightT`));
    return bias ? this.add(y, this.init(bias, `${hint}.bias`)) : y;
  }

  /** LayerNormalization over the last axis (biased variance, as torch). */
  layerNorm(
    x: string,
    weight: HostTensor<Float32Array>,
    bias: HostTensor<Float32Array>,
    eps: number,
    hint = "ln",
  ): string {
    return this.op("LayerNormalization", [x, this.init(weight, `${hint}.weight`), this.init(bias, `${hint}.bias`)], {
      axis: { kind: "int", value: -1 },
      epsilon: { kind: "float", value: eps },
    });
  }

  /** torch `nn.RMSNorm`: `x / sqrt(mean(x^2) + eps) * w` (no weight when `weight` is null). */
  rmsNorm(x: string, weight: HostTensor<Float32Array> | null, eps: number, hint = "rms"): string {
    const ms = this.reduceMean(this.mul(x, x), [-1]);
    const y = this.div(x, this.sqrt(this.add(ms, this.scalar(eps, `${hint}.eps`))));
    return weight ? this.mul(y, this.init(weight, `${hint}.weight`)) : y;
  }

  /** Exact GELU: `0.5 x (1 + erf(x / sqrt 2))`. */
  gelu(x: string): string {
    const e = this.erf(this.div(x, this.scalar(Math.SQRT2, "sqrt2")));
    return this.mul(this.mul(x, this.scalar(0.5, "half")), this.add(e, this.scalar(1, "one")));
  }

  /** `[B, L, h*hd]` -> `[B, h, L, hd]` (L given: Reshape needs it with a dynamic batch). */
  splitHeads(x: string, l: number, heads: number, hd: number): string {
    return this.transpose(this.reshape(x, [-1, l, heads, hd]), [0, 2, 1, 3]);
  }

  /** `[B, h, L, hd]` -> `[B, L, h*hd]`. */
  mergeHeads(x: string, l: number, width: number): string {
    return this.reshape(this.transpose(x, [0, 2, 1, 3]), [-1, l, width]);
  }

  /** `softmax(q k^T * scale + bias) v` on `[B, h, L, hd]` values. */
  attention(q: string, k: string, v: string, scale: number, bias?: string): string {
    let logits = this.matmul(this.mul(q, this.scalar(scale, "scale")), this.transpose(k, [0, 1, 3, 2]));
    if (bias) logits = this.add(logits, bias);
    return this.matmul(this.softmax(logits, -1), v);
  }

  /** Serialised ModelProto. */
  toModel(producer = "mim-bench"): Uint8Array {
    const w = new ProtoWriter();
    w.int(1, IR_VERSION);
    w.string(2, producer);
    w.message(7, (g) => {
      for (const n of this.#nodes) {
        g.message(1, (m) => {
          for (const i of n.inputs) m.string(1, i);
          for (const o of n.outputs) m.string(2, o);
          m.string(3, n.name);
          m.string(4, n.op);
          for (const [k, a] of Object.entries(n.attrs)) m.message(5, (am) => writeAttribute(am, k, a));
        });
      }
      g.string(2, this.name);
      for (const t of this.#inits) g.message(5, (m) => writeTensor(m, t));
      for (const i of this.#inputs) g.message(11, (m) => writeValueInfo(m, i.name, i.dtype, i.dims));
      for (const o of this.#outputs) g.message(12, (m) => writeValueInfo(m, o.name, o.dtype, o.dims));
    });
    w.message(8, (op) => {
      op.string(1, "");
      op.int(2, OPSET);
    });
    return w.finish();
  }
}
