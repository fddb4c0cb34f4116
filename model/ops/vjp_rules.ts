/**
 * Vector-Jacobian rules: for each differentiable node kind, the gradients of its inputs given
 * the gradients of its outputs, written against `GradOps` (`Ops` plus a few internal kinds), so
 * the backward is recorded into the same graph as the forward and lowered like it.
 *
 * A rule receives the recorded node (its inputs and outputs are values of the graph, reusable in
 * the backward: `exp` reuses its output, `layerNorm` the mean and inverse std its forward
 * computed), the output gradients (`null` where no gradient flows) and which inputs want a
 * gradient; it returns one gradient (or `null`) per input, shaped like that input. Broadcasting
 * elementwise ops sum their gradient back to each operand's shape (`reduceTo`).
 *
 * Composites (softmax, logSoftmax, gelu, layerNorm, rmsNorm) have closed-form rules rather than
 * being differentiated through their parts: fewer nodes, and the forward stays one fused op.
 * `max` has no rule on purpose (it is only used where no gradient flows); `stopGradient`,
 * `sign` and `greaterEqual` are piecewise constant: their gradient is zero.
 *
 * Each rule is checked against central finite differences in float64 and against tfjs's own
 * gradients in vjp_rules_test.ts.
 *
 * @module
 */
import type { Tensor } from "./ops.ts";
import type { GradOps } from "./graph_ops.ts";
import { type Node, type OpKind, sameShape } from "./graph_ir.ts";

export type VjpRule = (o: GradOps, node: Node, dys: (Tensor | null)[], wants: boolean[]) => (Tensor | null)[];

/** Kinds whose outputs carry no gradient (sources and piecewise-constant ops). */
export const ZERO_GRADIENT: ReadonlySet<OpKind> = new Set<OpKind>([
  "input",
  "constant",
  "fill",
  "stopGradient",
  "sign",
  "greaterEqual",
]);

/** Sum a gradient of a broadcast result back to an operand's `shape` (numpy broadcasting). */
export function reduceTo(o: GradOps, g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const extra = g.shape.length - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.shape.length; i++) {
    if (i < extra || (shape[i - extra] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return o.reshape(o.sum(g, axes), [...shape]);
}

const single = (g: Tensor | null): (Tensor | null)[] => [g];
const dy0 = (dys: (Tensor | null)[]): Tensor => dys[0]!;

/** Elementwise unary rules `dx = dy * f'(x, y)`. */
function unary(f: (o: GradOps, dy: Tensor, x: Tensor, y: Tensor) => Tensor): VjpRule {
  return (o, node, dys) => single(f(o, dy0(dys), node.inputs[0], node.outputs[0]));
}

/** Binary broadcasting rules: gradients at the output shape, then reduced to each operand. */
function binary(
  f: (o: GradOps, dy: Tensor, a: Tensor, b: Tensor, y: Tensor, wants: boolean[]) => [
    Tensor | null,
    Tensor | null,
  ],
): VjpRule {
  return (o, node, dys, wants) => {
    const [a, b] = node.inputs;
    const [ga, gb] = f(o, dy0(dys), a, b, node.outputs[0], wants);
    return [ga && wants[0] ? reduceTo(o, ga, a.shape) : null, gb && wants[1] ? reduceTo(o, gb, b.shape) : null];
  };
}

/** Gradient of a reduction over `axes`: the output gradient spread back over the input. */
function spread(o: GradOps, dy: Tensor, x: Tensor, axes: number[], keepDims: boolean): Tensor {
  const kept = x.shape.map((d, i) => axes.includes(i) ? 1 : d);
  return o.broadcastTo(keepDims ? dy : o.reshape(dy, kept), [...x.shape]);
}

/** All axes but the last (the parameter axes of layerNorm/rmsNorm weights). */
const leading = (t: Tensor) => t.shape.slice(0, -1).map((_, i) => i);

/** `op(a) @ op(b)` gradients; a rank-2 operand broadcast over the other's leading axes gets one folded 2-D product. */
const matMulRule: VjpRule = (o, node, dys, wants) => {
  if (node.op !== "matMul") throw new Error("unreachable");
  const [a, b] = node.inputs, dc = dy0(dys), { transposeA: ta, transposeB: tb } = node.attrs;
  const mm = (x: Tensor, y: Tensor, tx: boolean, ty: boolean) => o.matMul(x, y, tx, ty);
  let da: Tensor | null = null, db: Tensor | null = null;
  if (wants[0]) {
    da = !ta ? mm(dc, b, false, !tb) : tb ? mm(b, dc, true, true) : mm(b, dc, false, true);
    da = reduceTo(o, da, a.shape);
  }
  if (wants[1]) {
    if (b.shape.length === 2 && a.shape.length > 2 && !ta) {
      // b is shared by every leading index of a: fold the leading axes into rows, one GEMM.
      const a2 = o.reshape(a, [-1, a.shape[a.shape.length - 1]]);
      const dc2 = o.reshape(dc, [-1, dc.shape[dc.shape.length - 1]]);
      db = tb ? mm(dc2, a2, true, false) : mm(a2, dc2, true, false);
    } else {
      db = !tb
        ? (ta ? mm(a, dc, false, false) : mm(a, dc, true, false))
        : ta
        ? mm(dc, a, true, true)
        : mm(dc, a, true, false);
      db = reduceTo(o, db, b.shape);
    }
  }
  return [da, db];
};

const layerNormRule: VjpRule = (o, node, dys, wants) => {
  const [x, w] = node.inputs, [, mean, inv] = node.outputs, dy = dy0(dys);
  const xhat = o.mul(o.sub(x, mean), inv);
  const dw = wants[1] ? o.sum(o.mul(dy, xhat), leading(x)) : null;
  const db = wants[2] ? o.sum(dy, leading(x)) : null;
  let dx: Tensor | null = null;
  if (wants[0]) {
    const g = o.mul(dy, w);
    const centred = o.sub(g, o.mean(g, -1, true));
    dx = o.mul(o.sub(centred, o.mul(xhat, o.mean(o.mul(g, xhat), -1, true))), inv);
  }
  return [dx, dw, db];
};

const rmsNormRule: VjpRule = (o, node, dys, wants) => {
  const [x, w] = node.inputs, inv = node.outputs[1], dy = dy0(dys);
  const xhat = o.mul(x, inv);
  const out: (Tensor | null)[] = [null];
  if (w) out.push(wants[1] ? o.sum(o.mul(dy, xhat), leading(x)) : null);
  if (wants[0]) {
    const g = w ? o.mul(dy, w) : dy;
    out[0] = o.mul(o.sub(g, o.mul(xhat, o.mean(o.mul(g, xhat), -1, true))), inv);
  }
  return out;
};

const INV_SQRT2 = 1 / Math.SQRT2, INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI), TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

export const VJP_RULES: Partial<Record<OpKind, VjpRule>> = {
  add: binary((_o, dy) => [dy, dy]),
  sub: binary((o, dy, _a, _b, _y, wants) => [dy, wants[1] ? o.neg(dy) : null]),
  mul: binary((o, dy, a, b, _y, wants) => [wants[0] ? o.mul(dy, b) : null, wants[1] ? o.mul(dy, a) : null]),
  div: binary((o, dy, _a, b, y, wants) => {
    const da = o.div(dy, b);
    return [da, wants[1] ? o.neg(o.mul(da, y)) : null];
  }),
  maximum: binary((o, dy, a, b, _y, wants) => {
    const ga = o.mul(dy, o.greaterEqual(a, b)); // ties go to `a`, as tfjs
    return [ga, wants[1] ? o.sub(dy, ga) : null];
  }),
  minimum: binary((o, dy, a, b, _y, wants) => {
    const ga = o.mul(dy, o.greaterEqual(b, a));
    return [ga, wants[1] ? o.sub(dy, ga) : null];
  }),
  neg: unary((o, dy) => o.neg(dy)),
  abs: unary((o, dy, x) => o.mul(dy, o.sign(x))),
  square: unary((o, dy, x) => o.mul(dy, o.mul(x, 2))),
  sqrt: unary((o, dy, _x, y) => o.div(o.mul(dy, 0.5), y)),
  rsqrt: unary((o, dy, _x, y) => o.mul(o.mul(dy, -0.5), o.mul(o.square(y), y))),
  exp: unary((o, dy, _x, y) => o.mul(dy, y)),
  log: unary((o, dy, x) => o.div(dy, x)),
  erf: unary((o, dy, x) => o.mul(dy, o.mul(o.exp(o.neg(o.square(x))), TWO_OVER_SQRT_PI))),
  sin: unary((o, dy, x) => o.mul(dy, o.cos(x))),
  cos: unary((o, dy, x) => o.neg(o.mul(dy, o.sin(x)))),
  gelu: unary((o, dy, x) => {
    // d/dx [x Phi(x)] = Phi(x) + x phi(x)
    const cdf = o.add(o.mul(o.erf(o.mul(x, INV_SQRT2)), 0.5), 0.5);
    const pdf = o.mul(o.exp(o.mul(o.square(x), -0.5)), INV_SQRT_2PI);
    return o.mul(dy, o.add(cdf, o.mul(x, pdf)));
  }),
  softmax: (o, node, dys) => {
    if (node.op !== "softmax") throw new Error("unreachable");
    const y = node.outputs[0], dy = dy0(dys);
    return [o.mul(o.sub(dy, o.sum(o.mul(dy, y), node.attrs.axis, true)), y)];
  },
  logSoftmax: (o, node, dys) => {
    if (node.op !== "logSoftmax") throw new Error("unreachable");
    const y = node.outputs[0], dy = dy0(dys);
    return [o.sub(dy, o.mul(o.exp(y), o.sum(dy, node.attrs.axis, true)))];
  },
  layerNorm: layerNormRule,
  rmsNorm: rmsNormRule,
  matMul: matMulRule,
  reshape: (o, node, dys) => [o.reshape(dy0(dys), [...node.inputs[0].shape])],
  transpose: (o, node, dys) => {
    if (node.op !== "transpose") throw new Error("unreachable");
    const inv = new Array<number>(node.attrs.perm.length);
    node.attrs.perm.forEach((p, i) => inv[p] = i);
    return [o.transpose(dy0(dys), inv)];
  },
  broadcastTo: (o, node, dys) => [reduceTo(o, dy0(dys), node.inputs[0].shape)],
  slice: (o, node, dys) => {
    if (node.op !== "slice") throw new Error("unreachable");
    const x = node.inputs[0], { begin, end } = node.attrs;
    return [o.pad(dy0(dys), begin, end.map((e, i) => x.shape[i] - e))];
  },
  pad: (o, node, dys) => {
    if (node.op !== "pad") throw new Error("unreachable");
    return [o.slice(dy0(dys), node.attrs.before, [...node.inputs[0].shape])];
  },
  concat: (o, node, dys, wants) => {
    if (node.op !== "concat") throw new Error("unreachable");
    const ax = node.attrs.axis, dy = dy0(dys);
    let at = 0;
    return node.inputs.map((x, i) => {
      const begin = x.shape.map((_, j) => j === ax ? at : 0);
      at += x.shape[ax];
      return wants[i] ? o.slice(dy, begin, x.shape.map((d, j) => j === ax ? d : -1)) : null;
    });
  },
  split: (o, node, dys) => {
    if (node.op !== "split") throw new Error("unreachable");
    const parts = node.outputs.map((v, i) => dys[i] ?? o.zeros([...v.shape]));
    return [o.concat(parts, node.attrs.axis)];
  },
  gather: (o, node, dys, wants) => {
    if (node.op !== "gather") throw new Error("unreachable");
    const [x, idx] = node.inputs;
    return [wants[0] ? o.scatterAdd(dy0(dys), idx, node.attrs.axis, x.shape[node.attrs.axis]) : null, null];
  },
  scatterAdd: (o, node, dys) => {
    if (node.op !== "scatterAdd") throw new Error("unreachable");
    return [o.gather(dy0(dys), node.inputs[1], node.attrs.axis), null];
  },
  sum: (o, node, dys) => {
    if (node.op !== "sum") throw new Error("unreachable");
    return [spread(o, dy0(dys), node.inputs[0], node.attrs.axes, node.attrs.keepDims)];
  },
  mean: (o, node, dys) => {
    if (node.op !== "mean") throw new Error("unreachable");
    const x = node.inputs[0], count = node.attrs.axes.reduce((n, a) => n * x.shape[a], 1);
    return [spread(o, o.div(dy0(dys), count), x, node.attrs.axes, node.attrs.keepDims)];
  },
  sumSquares: (o, node, dys) => {
    if (node.op !== "sumSquares") throw new Error("unreachable");
    const x = node.inputs[0];
    return [o.mul(spread(o, dy0(dys), x, node.attrs.axes, node.attrs.keepDims), o.mul(x, 2))];
  },
};
