/**
 * `refEval`: a float64 interpreter of a recorded graph, the reference the tests hold the
 * gradient rules (central finite differences) and the ONNX lowering (onnxruntime) against.
 *
 * Every node kind is computed from its definition in plain loops, in float64, and each result is
 * checked against the shape the recorder inferred, so running a graph here also checks shape
 * inference. Slow and simple on purpose: tests only, small tensors.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { type Graph, type Node, numel, Value } from "./graph_ir.ts";
import type { Tensor } from "./ops.ts";

/** A float64 (float ops) or int32 (indices) array with its shape. */
export interface RefTensor {
  shape: number[];
  data: Float64Array | Int32Array;
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Flat index into `shape` (broadcast: size-1 axes read index 0) of the multi-index `idx` aligned right. */
function bcastIndex(idx: readonly number[], shape: readonly number[], st: readonly number[]): number {
  const off = idx.length - shape.length;
  let f = 0;
  for (let i = 0; i < shape.length; i++) if (shape[i] !== 1) f += idx[off + i] * st[i];
  return f;
}

/** Call `fn(multiIndex, flat)` for every element of `shape`, row-major. */
function forEachIndex(shape: readonly number[], fn: (idx: number[], flat: number) => void): void {
  const n = numel(shape), idx = new Array<number>(shape.length).fill(0);
  for (let f = 0; f < n; f++) {
    fn(idx, f);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
}

/** Accurate erf in float64: Taylor series below 3, continued fraction for erfc above. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))), modified Lentz.
  let f = ax, c = ax, d = 0;
  for (let k = 1; k < 300; k++) {
    const a = k / 2;
    d = ax + a * d;
    d = 1 / d;
    c = ax + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x > 0 ? 1 - erfc : erfc - 1;
}

const UNARY: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  square: (x) => x * x,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  exp: Math.exp,
  log: Math.log,
  erf: erf64,
  sin: Math.sin,
  cos: Math.cos,
  sign: (x) => x > 0 ? 1 : x < 0 ? -1 : 0,
  gelu: (x) => 0.5 * x * (1 + erf64(x / Math.SQRT2)),
  stopGradient: (x) => x,
};

const BINARY: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  maximum: Math.max,
  minimum: Math.min,
  greaterEqual: (a, b) => a >= b ? 1 : 0,
};

/** Move `axis` to the end: returns `[outer, n, inner]` sizes for a loop over lines along the axis. */
function lines(shape: readonly number[], axes: readonly number[]): { outShape: number[]; groups: number[][] } {
  const outShape = shape.map((d, i) => axes.includes(i) ? 1 : d);
  const os = strides(outShape), groups: number[][] = Array.from({ length: numel(outShape) }, () => []);
  forEachIndex(shape, (idx, f) => groups[bcastIndex(idx, outShape, os)].push(f));
  return { outShape, groups };
}

function evalNode(node: Node, ins: RefTensor[]): RefTensor[] {
  const out0 = node.outputs[0];
  const shape = out0 ? out0.shape : [];
  const f64 = () => new Float64Array(numel(shape));
  const x = ins[0];
  switch (node.op) {
    case "input":
    case "constant":
      throw new Error("unreachable: sources are fed");
    case "fill":
      return [{ shape, data: f64().fill(node.attrs.value) }];
    case "add":
    case "sub":
    case "mul":
    case "div":
    case "maximum":
    case "minimum":
    case "greaterEqual": {
      const fn = BINARY[node.op], [a, b] = ins, out = f64();
      const sa = strides(a.shape), sb = strides(b.shape);
      forEachIndex(shape, (idx, f) => {
        out[f] = fn(a.data[bcastIndex(idx, a.shape, sa)], b.data[bcastIndex(idx, b.shape, sb)]);
      });
      return [{ shape, data: out }];
    }
    case "neg":
    case "abs":
    case "square":
    case "sqrt":
    case "rsqrt":
    case "exp":
    case "log":
    case "erf":
    case "sin":
    case "cos":
    case "sign":
    case "gelu":
    case "stopGradient": {
      if (x.data instanceof Int32Array) return [x];
      const fn = UNARY[node.op];
      return [{ shape, data: x.data.map(fn) }];
    }
    case "reshape":
      return [{ shape, data: x.data }];
    case "broadcastTo": {
      const out = x.data instanceof Int32Array ? new Int32Array(numel(shape)) : f64(), sx = strides(x.shape);
      forEachIndex(shape, (idx, f) => out[f] = x.data[bcastIndex(idx, x.shape, sx)]);
      return [{ shape, data: out }];
    }
    case "transpose": {
      const out = x.data instanceof Int32Array ? new Int32Array(x.data.length) : f64(), sx = strides(x.shape);
      const perm = node.attrs.perm;
      forEachIndex(shape, (idx, f) => {
        let src = 0;
        for (let i = 0; i < perm.length; i++) src += idx[i] * sx[perm[i]];
        out[f] = x.data[src];
      });
      return [{ shape, data: out }];
    }
    case "slice":
    case "pad": {
      const isSlice = node.op === "slice";
      const off = isSlice ? node.attrs.begin : node.attrs.before.map((b) => -b);
      const out = x.data instanceof Int32Array ? new Int32Array(numel(shape)) : f64(), sx = strides(x.shape);
      forEachIndex(shape, (idx, f) => {
        let src = 0;
        for (let i = 0; i < idx.length; i++) {
          const j = idx[i] + off[i];
          if (j < 0 || j >= x.shape[i]) return; // padding stays 0
          src += j * sx[i];
        }
        out[f] = x.data[src];
      });
      return [{ shape, data: out }];
    }
    case "concat": {
      const ax = node.attrs.axis, out = x.data instanceof Int32Array ? new Int32Array(numel(shape)) : f64();
      const so = strides(shape);
      let base = 0;
      for (const t of ins) {
        forEachIndex(t.shape, (idx, f) => {
          let dst = 0;
          for (let i = 0; i < idx.length; i++) dst += (i === ax ? idx[i] + base : idx[i]) * so[i];
          out[dst] = t.data[f];
        });
        base += t.shape[ax];
      }
      return [{ shape, data: out }];
    }
    case "split": {
      const ax = node.attrs.axis;
      let base = 0;
      return node.outputs.map((o) => {
        const begin = x.shape.map((_, i) => i === ax ? base : 0);
        base += o.shape[ax];
        const sx = strides(x.shape);
        const out = x.data instanceof Int32Array ? new Int32Array(o.size) : new Float64Array(o.size);
        forEachIndex(o.shape, (idx, f) => {
          let src = 0;
          for (let i = 0; i < idx.length; i++) src += (idx[i] + begin[i]) * sx[i];
          out[f] = x.data[src];
        });
        return { shape: o.shape, data: out };
      });
    }
    case "gather": {
      const ax = node.attrs.axis, idx = ins[1], k = idx.shape.length, sx = strides(x.shape);
      const out = x.data instanceof Int32Array ? new Int32Array(numel(shape)) : f64(), si = strides(idx.shape);
      forEachIndex(shape, (o, f) => {
        let ii = 0;
        for (let i = 0; i < k; i++) ii += o[ax + i] * si[i];
        const row = idx.data[ii];
        if (row < 0 || row >= x.shape[ax]) throw new Error(`refEval ${node.name}: index ${row} out of range`);
        let src = row * sx[ax];
        for (let i = 0; i < ax; i++) src += o[i] * sx[i];
        for (let i = ax + 1; i < x.shape.length; i++) src += o[i + k - 1] * sx[i];
        out[f] = x.data[src];
      });
      return [{ shape, data: out }];
    }
    case "scatterAdd": {
      const { axis } = node.attrs, [u, idx] = ins, k = idx.shape.length, so = strides(shape), si = strides(idx.shape);
      const out = f64();
      forEachIndex(u.shape, (p, f) => {
        let ii = 0;
        for (let i = 0; i < k; i++) ii += p[axis + i] * si[i];
        let dst = idx.data[ii] * so[axis];
        for (let i = 0; i < axis; i++) dst += p[i] * so[i];
        for (let i = axis + k; i < p.length; i++) dst += p[i] * so[i - k + 1];
        out[dst] += u.data[f];
      });
      return [{ shape, data: out }];
    }
    case "sum":
    case "mean":
    case "max":
    case "sumSquares": {
      const { groups } = lines(x.shape, node.attrs.axes);
      const out = f64();
      groups.forEach((g, i) => {
        const vals = g.map((f) => x.data[f]);
        out[i] = node.op === "max"
          ? Math.max(...vals)
          : node.op === "sumSquares"
          ? vals.reduce((s, v) => s + v * v, 0)
          : vals.reduce((s, v) => s + v, 0) / (node.op === "mean" ? vals.length : 1);
      });
      return [{ shape, data: out }];
    }
    case "softmax":
    case "logSoftmax": {
      const { groups } = lines(x.shape, [node.attrs.axis]), out = f64();
      for (const g of groups) {
        const m = Math.max(...g.map((f) => x.data[f]));
        const s = g.reduce((acc, f) => acc + Math.exp(x.data[f] - m), 0);
        for (const f of g) out[f] = node.op === "softmax" ? Math.exp(x.data[f] - m) / s : x.data[f] - m - Math.log(s);
      }
      return [{ shape, data: out }];
    }
    case "layerNorm":
    case "rmsNorm": {
      const d = x.shape[x.shape.length - 1], rows = x.data.length / d, out = f64();
      const mean = new Float64Array(rows), inv = new Float64Array(rows);
      const w = ins[1]?.data, b = node.op === "layerNorm" ? ins[2].data : undefined;
      for (let r = 0; r < rows; r++) {
        const row = x.data.subarray(r * d, (r + 1) * d) as Float64Array;
        const mu = node.op === "layerNorm" ? row.reduce((s, v) => s + v, 0) / d : 0;
        const ms = row.reduce((s, v) => s + (v - mu) ** 2, 0) / d;
        mean[r] = mu;
        inv[r] = 1 / Math.sqrt(ms + node.attrs.eps);
        for (let j = 0; j < d; j++) out[r * d + j] = (row[j] - mu) * inv[r] * (w ? w[j] : 1) + (b ? b[j] : 0);
      }
      const stats = node.outputs[1].shape;
      return node.op === "layerNorm"
        ? [{ shape, data: out }, { shape: stats, data: mean }, { shape: stats, data: inv }]
        : [{ shape, data: out }, { shape: stats, data: inv }];
    }
    case "matMul": {
      const [a, b] = ins, { transposeA, transposeB } = node.attrs;
      const ra = a.shape.length, rb = b.shape.length, r = shape.length;
      const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const sa = strides(a.shape), sb = strides(b.shape), out = f64();
      const la = a.shape.slice(0, -2), lb = b.shape.slice(0, -2);
      forEachIndex(shape, (idx, f) => {
        const lead = idx.slice(0, -2), i = idx[r - 2], j = idx[r - 1];
        const baseA = bcastIndex(lead, la, sa.slice(0, -2)), baseB = bcastIndex(lead, lb, sb.slice(0, -2));
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = a.data[baseA + (transposeA ? p * sa[ra - 2] + i : i * sa[ra - 2] + p)];
          const bv = b.data[baseB + (transposeB ? j * sb[rb - 2] + p : p * sb[rb - 2] + j)];
          acc += av * bv;
        }
        out[f] = acc;
      });
      return [{ shape, data: out }];
    }
  }
}

/**
 * Evaluate `wanted` values of `graph` in float64. `feeds` gives every graph input by name
 * (defaults: the host values recorded with the inputs); constants come from the graph.
 */
export function refEval(
  graph: Graph,
  wantedTensors: Tensor[],
  feeds: Record<string, HostTensor | RefTensor> = {},
): RefTensor[] {
  const wanted = wantedTensors.map((t) => {
    if (!(t instanceof Value)) throw new Error("refEval: wanted values must be values of the recorded graph");
    return t;
  });
  const env = new Map<number, RefTensor>();
  const need = new Set<number>();
  const stack = wanted.map((v) => v.node);
  while (stack.length) {
    const n = stack.pop()!;
    if (need.has(n.id)) continue;
    need.add(n.id);
    for (const i of n.inputs) stack.push(i.node);
  }
  const widen = (t: HostTensor | RefTensor): RefTensor =>
    t.data instanceof Int32Array
      ? { shape: t.shape, data: t.data }
      : { shape: t.shape, data: Float64Array.from(t.data) };
  for (const node of graph.nodes) {
    if (!need.has(node.id)) continue;
    let outs: RefTensor[];
    if (node.op === "input") {
      const fed = feeds[node.attrs.name] ?? graph.inputs.get(node.attrs.name)?.host;
      if (!fed) throw new Error(`refEval: no feed for input '${node.attrs.name}'`);
      outs = [widen(fed)];
    } else if (node.op === "constant") {
      outs = [widen(node.attrs.value)];
    } else {
      outs = evalNode(node, node.inputs.map((i) => env.get(i.id)!));
    }
    for (const [i, o] of node.outputs.entries()) {
      const t = outs[i];
      if (t.data.length !== o.size || t.shape.join() !== o.shape.join()) {
        throw new Error(`refEval ${node.name}: computed [${t.shape}] but the recorder inferred [${o.shape}]`);
      }
      if ((t.data instanceof Int32Array) !== (o.dtype === "int32")) {
        throw new Error(`refEval ${node.name}: computed ${t.data.constructor.name} for a ${o.dtype} value`);
      }
      env.set(o.id, t);
    }
  }
  return wanted.map((v) => env.get(v.id)!);
}
