/**
 * Test-only: one small computation per node kind (and per interesting variant: broadcasting,
 * transposed products, duplicate gather indices, values used twice), shared by the gradient-rule
 * tests (finite differences, tfjs) and the lowering tests (onnxruntime against the float64
 * interpreter). Inputs are seeded, small (a few dozen elements) so finite differences stay fast.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { Rng } from "../rng.ts";
import type { Tensor } from "./ops.ts";
import { type GradOps, GraphOps } from "./graph_ops.ts";
import { gradients } from "./autodiff.ts";

export type InputSpec = { shape: number[]; positive?: boolean } | { shape: number[]; int: number[] };

export interface OpCase {
  name: string;
  inputs: Record<string, InputSpec>;
  f: (o: GradOps, x: Record<string, Tensor>) => Tensor;
}

const F = (...shape: number[]) => ({ shape });
const P = (...shape: number[]) => ({ shape, positive: true });

export const OP_CASES: OpCase[] = [
  { name: "add_broadcast", inputs: { a: F(2, 3), b: F(3) }, f: (o, x) => o.add(x.a, x.b) },
  { name: "sub_broadcast", inputs: { a: F(2, 1), b: F(1, 3) }, f: (o, x) => o.sub(x.a, x.b) },
  { name: "mul_broadcast", inputs: { a: F(2, 3), b: F(2, 1) }, f: (o, x) => o.mul(x.a, x.b) },
  { name: "div_broadcast", inputs: { a: F(2, 3), b: P(3) }, f: (o, x) => o.div(x.a, x.b) },
  { name: "scalar_operands", inputs: { a: F(2, 3) }, f: (o, x) => o.sub(2, o.div(o.mul(x.a, 3), 0.5)) },
  { name: "maximum", inputs: { a: F(2, 3), b: F(3) }, f: (o, x) => o.maximum(x.a, x.b) },
  { name: "minimum", inputs: { a: F(2, 3), b: F(2, 3) }, f: (o, x) => o.minimum(x.a, x.b) },
  { name: "neg", inputs: { a: F(2, 3) }, f: (o, x) => o.neg(x.a) },
  { name: "abs", inputs: { a: F(2, 3) }, f: (o, x) => o.abs(x.a) },
  { name: "square", inputs: { a: F(2, 3) }, f: (o, x) => o.square(x.a) },
  { name: "sqrt", inputs: { a: P(2, 3) }, f: (o, x) => o.sqrt(x.a) },
  { name: "rsqrt", inputs: { a: P(2, 3) }, f: (o, x) => o.rsqrt(x.a) },
  { name: "exp", inputs: { a: F(2, 3) }, f: (o, x) => o.exp(x.a) },
  { name: "log", inputs: { a: P(2, 3) }, f: (o, x) => o.log(x.a) },
  { name: "erf", inputs: { a: F(2, 3) }, f: (o, x) => o.erf(x.a) },
  { name: "sin", inputs: { a: F(2, 3) }, f: (o, x) => o.sin(x.a) },
  { name: "cos", inputs: { a: F(2, 3) }, f: (o, x) => o.cos(x.a) },
  { name: "gelu", inputs: { a: F(3, 4) }, f: (o, x) => o.gelu(o.mul(x.a, 2)) },
  { name: "reshape", inputs: { a: F(2, 3, 2) }, f: (o, x) => o.reshape(x.a, [3, -1]) },
  { name: "transpose", inputs: { a: F(2, 3, 4) }, f: (o, x) => o.transpose(x.a, [2, 0, 1]) },
  { name: "concat", inputs: { a: F(2, 3), b: F(2, 2) }, f: (o, x) => o.concat([x.a, x.b, x.a], 1) },
  { name: "slice", inputs: { a: F(3, 4) }, f: (o, x) => o.slice(x.a, [1, 1], [2, -1]) },
  { name: "pad", inputs: { a: F(2, 3) }, f: (o, x) => o.pad(x.a, [1, 0], [0, 2]) },
  {
    name: "split",
    inputs: { a: F(2, 5) },
    f: (o, x) => {
      const [p, q] = o.split(x.a, [2, 3], 1);
      return o.concat([o.mul(q, q), p], 1);
    },
  },
  { name: "split_one_used", inputs: { a: F(2, 5) }, f: (o, x) => o.exp(o.split(x.a, [1, 3, 1], 1)[1]) },
  {
    name: "gather_duplicates",
    inputs: { a: F(4, 3), i: { shape: [2, 3], int: [0, 2, 2, 3, 0, 0] } },
    f: (o, x) => o.gather(x.a, x.i, 0),
  },
  {
    name: "gather_axis1",
    inputs: { a: F(2, 4, 3), i: { shape: [5], int: [3, 1, 1, 0, 3] } },
    f: (o, x) => o.gather(x.a, x.i, 1),
  },
  {
    name: "scatter_add",
    inputs: { a: F(2, 3, 2), i: { shape: [3], int: [1, 0, 1] } },
    f: (o, x) => o.scatterAdd(x.a, x.i, 1, 4),
  },
  { name: "broadcast_to", inputs: { a: F(3, 1) }, f: (o, x) => o.broadcastTo(x.a, [2, 3, 4]) },
  { name: "sum", inputs: { a: F(2, 3, 4) }, f: (o, x) => o.sum(x.a, [0, 2]) },
  { name: "sum_keepdims", inputs: { a: F(2, 3, 4) }, f: (o, x) => o.sum(x.a, -1, true) },
  { name: "mean", inputs: { a: F(2, 3, 4) }, f: (o, x) => o.mean(x.a, 1) },
  { name: "sum_squares", inputs: { a: F(2, 3) }, f: (o, x) => o.sumSquares(x.a, [0, 1]) },
  { name: "matmul", inputs: { a: F(2, 3, 4), b: F(2, 4, 5) }, f: (o, x) => o.matMul(x.a, x.b) },
  { name: "matmul_ta", inputs: { a: F(2, 4, 3), b: F(2, 4, 5) }, f: (o, x) => o.matMul(x.a, x.b, true, false) },
  { name: "matmul_tb", inputs: { a: F(2, 3, 4), b: F(2, 5, 4) }, f: (o, x) => o.matMul(x.a, x.b, false, true) },
  { name: "matmul_ta_tb", inputs: { a: F(2, 4, 3), b: F(2, 5, 4) }, f: (o, x) => o.matMul(x.a, x.b, true, true) },
  { name: "matmul_linear", inputs: { a: F(2, 3, 4), w: F(5, 4) }, f: (o, x) => o.matMul(x.a, x.w, false, true) },
  {
    name: "linear_bias",
    inputs: { a: F(2, 3, 4), w: F(5, 4), b: F(1, 5) },
    f: (o, x) => o.add(o.matMul(x.a, x.w, false, true), x.b),
  },
  { name: "matmul_shared_b", inputs: { a: F(2, 3, 4), b: F(4, 5) }, f: (o, x) => o.matMul(x.a, x.b) },
  { name: "matmul_bcast_b", inputs: { a: F(2, 3, 4), b: F(1, 4, 5) }, f: (o, x) => o.matMul(x.a, x.b) },
  { name: "matmul_shared_a", inputs: { a: F(3, 4), b: F(2, 4, 5) }, f: (o, x) => o.matMul(x.a, x.b) },
  { name: "matmul_ta_shared_b", inputs: { a: F(2, 4, 3), b: F(5, 4) }, f: (o, x) => o.matMul(x.a, x.b, true, true) },
  { name: "softmax", inputs: { a: F(2, 3, 4) }, f: (o, x) => o.softmax(x.a, 1) },
  { name: "log_softmax", inputs: { a: F(2, 5) }, f: (o, x) => o.logSoftmax(o.mul(x.a, 3)) },
  {
    name: "layer_norm",
    inputs: { a: F(2, 3, 5), w: F(5), b: F(5) },
    f: (o, x) => o.layerNorm(o.add(x.a, 1.5), x.w, x.b, 1e-5),
  },
  { name: "rms_norm", inputs: { a: F(3, 5), w: F(5) }, f: (o, x) => o.rmsNorm(x.a, x.w, 1e-6) },
  { name: "rms_norm_no_weight", inputs: { a: F(3, 5) }, f: (o, x) => o.rmsNorm(x.a, null, 1e-6) },
  {
    name: "used_twice",
    inputs: { a: F(2, 3), b: F(3) },
    f: (o, x) => o.add(o.mul(x.a, x.a), o.mul(o.sin(x.a), x.b)),
  },
  {
    name: "stop_gradient",
    inputs: { a: F(2, 3) },
    f: (o, x) => o.mul(x.a, o.stopGradient(o.exp(x.a))),
  },
];

/** Seeded host values for a case's inputs (positive ones in [0.5, 2.5)). */
export function caseInputs(c: OpCase): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    if ("int" in spec) {
      out[name] = { shape: spec.shape, data: Int32Array.from(spec.int) };
      continue;
    }
    const rng = Rng.from(7, c.name, name);
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = spec.positive ? rng.uniform(0.5, 2.5) : rng.normal();
    out[name] = { shape: spec.shape, data };
  }
  return out;
}

/**
 * Record `loss = sum(f(x) * R)` (a fixed random `R`, so every output element weighs differently)
 * and its gradients with respect to every float input, into `o` (a fresh graph by default) with
 * input names prefixed by `prefix`.
 */
export function recordCase(c: OpCase, o = new GraphOps(), prefix = "") {
  const host = caseInputs(c);
  const xs: Record<string, Tensor> = {};
  for (const [n, h] of Object.entries(host)) xs[n] = o.input(prefix + n, h);
  const y = c.f(o, xs);
  const rng = Rng.from(3, c.name, "projection");
  const r = { shape: [...y.shape], data: new Float32Array(y.shape.reduce((a, b) => a * b, 1)) };
  for (let i = 0; i < r.data.length; i++) r.data[i] = rng.normal();
  const weighted = o.mul(y, o.constant(r, "projection"));
  const loss = y.shape.length ? o.sum(weighted, y.shape.map((_, i) => i)) : weighted;
  const floats = Object.keys(host).filter((n) => host[n].data instanceof Float32Array);
  const grads = gradients(o, loss, floats.map((n) => xs[n]));
  return { o, host, y, r, loss, floats, grads };
}
