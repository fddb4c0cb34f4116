/**
 * Every gradient rule, twice: against central finite differences of the float64 interpreter
 * (to 1e-7), and against tfjs's own gradients (`tf.grads`, float32, to 1e-4 of the gradient's
 * scale) on the same inputs. The loss of each case is `sum(f(x) * R)` with a fixed random `R`,
 * so every output element weighs differently.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import { refEval, type RefTensor } from "./ref_eval.ts";
import { OP_CASES, recordCase } from "./op_cases.ts";
import type { Tensor } from "./ops.ts";

Deno.test("every gradient rule matches central finite differences in float64", () => {
  const h = 1e-5;
  for (const c of OP_CASES) {
    if (c.name === "stop_gradient") continue; // finite differences see through it: checked below
    const { o, host, loss, floats, grads } = recordCase(c);
    const analytic = refEval(o.graph, grads.map((g, i) => g ?? assert.fail(`${c.name}: no gradient for ${floats[i]}`)));
    const feeds: Record<string, RefTensor> = {};
    for (const [n, t] of Object.entries(host)) {
      feeds[n] = { shape: t.shape, data: t.data instanceof Int32Array ? t.data : Float64Array.from(t.data) };
    }
    floats.forEach((name, k) => {
      const x = feeds[name].data as Float64Array;
      for (let j = 0; j < x.length; j++) {
        const x0 = x[j];
        x[j] = x0 + h;
        const up = refEval(o.graph, [loss], feeds)[0].data[0];
        x[j] = x0 - h;
        const down = refEval(o.graph, [loss], feeds)[0].data[0];
        x[j] = x0;
        const fd = (up - down) / (2 * h), g = analytic[k].data[j];
        assert.ok(
          Math.abs(fd - g) <= 1e-7 * Math.max(1, Math.abs(g)),
          `${c.name}: d/d${name}[${j}] analytic ${g} vs finite difference ${fd}`,
        );
      }
    });
  }
});

Deno.test("stopGradient: the stopped factor is a constant to the gradient", () => {
  const { o, host, r, grads } = recordCase(OP_CASES.find((c) => c.name === "stop_gradient")!);
  const g = refEval(o.graph, grads as Tensor[])[0].data; // d/da sum(a * exp(a)' * R) = exp(a) * R
  host.a.data.forEach((a, i) => assert.ok(Math.abs(g[i] - Math.exp(a) * r.data[i]) < 1e-12 * Math.exp(a) + 1e-12));
});

type TfCase = (x: Record<string, tf.Tensor>) => tf.Tensor;
const softmaxAxis1 = (a: tf.Tensor) => tf.transpose(tf.softmax(tf.transpose(a, [0, 2, 1])), [0, 2, 1]);

/** The same computations in tfjs (cases without a tfjs twin: the internal `scatterAdd`). */
const TF_CASES: Record<string, TfCase> = {
  add_broadcast: (x) => tf.add(x.a, x.b),
  sub_broadcast: (x) => tf.sub(x.a, x.b),
  mul_broadcast: (x) => tf.mul(x.a, x.b),
  div_broadcast: (x) => tf.div(x.a, x.b),
  scalar_operands: (x) => tf.sub(2, tf.div(tf.mul(x.a, 3), 0.5)),
  maximum: (x) => tf.maximum(x.a, tf.broadcastTo(x.b, x.a.shape)), // tfjs does not reduce a broadcast maximum gradient
  minimum: (x) => tf.minimum(x.a, x.b),
  neg: (x) => tf.neg(x.a),
  abs: (x) => tf.abs(x.a),
  square: (x) => tf.square(x.a),
  sqrt: (x) => tf.sqrt(x.a),
  rsqrt: (x) => tf.rsqrt(x.a),
  exp: (x) => tf.exp(x.a),
  log: (x) => tf.log(x.a),
  erf: (x) => tf.erf(x.a),
  sin: (x) => tf.sin(x.a),
  cos: (x) => tf.cos(x.a),
  gelu: (x) => {
    const v = tf.mul(x.a, 2);
    return tf.mul(tf.mul(v, 0.5), tf.add(1, tf.erf(tf.div(v, Math.SQRT2))));
  },
  reshape: (x) => tf.reshape(x.a, [3, -1]),
  transpose: (x) => tf.transpose(x.a, [2, 0, 1]),
  concat: (x) => tf.concat([x.a, x.b, x.a], 1),
  slice: (x) => tf.slice(x.a, [1, 1], [2, -1]),
  pad: (x) => tf.pad(x.a, [[1, 0], [0, 2]]),
  split: (x) => {
    const [p, q] = tf.split(x.a, [2, 3], 1);
    return tf.concat([tf.mul(q, q), p], 1);
  },
  split_one_used: (x) => tf.exp(tf.split(x.a, [1, 3, 1], 1)[1]),
  gather_duplicates: (x) => tf.gather(x.a, x.i, 0),
  gather_axis1: (x) => tf.gather(x.a, x.i, 1),
  broadcast_to: (x) => tf.broadcastTo(x.a, [2, 3, 4]),
  sum: (x) => tf.sum(x.a, [0, 2]),
  sum_keepdims: (x) => tf.sum(x.a, -1, true),
  mean: (x) => tf.mean(x.a, 1),
  sum_squares: (x) => tf.sum(tf.square(x.a)),
  matmul: (x) => tf.matMul(x.a, x.b),
  matmul_ta: (x) => tf.matMul(x.a, x.b, true, false),
  matmul_tb: (x) => tf.matMul(x.a, x.b, false, true),
  matmul_ta_tb: (x) => tf.matMul(x.a, x.b, true, true),
  matmul_linear: (x) => tf.matMul(x.a, x.w, false, true),
  linear_bias: (x) => tf.add(tf.matMul(x.a, x.w, false, true), x.b),
  matmul_shared_b: (x) => tf.matMul(x.a, x.b),
  matmul_bcast_b: (x) => tf.matMul(x.a, x.b),
  matmul_shared_a: (x) => tf.matMul(x.a, x.b),
  matmul_ta_shared_b: (x) => tf.matMul(x.a, x.b, true, true),
  softmax: (x) => softmaxAxis1(x.a),
  log_softmax: (x) => tf.logSoftmax(tf.mul(x.a, 3)),
  layer_norm: (x) => {
    const v = tf.add(x.a, 1.5);
    const { mean, variance } = tf.moments(v, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(v, mean), tf.sqrt(tf.add(variance, 1e-5))), x.w), x.b);
  },
  rms_norm: (x) => tf.mul(tf.div(x.a, tf.sqrt(tf.add(tf.mean(tf.square(x.a), -1, true), 1e-6))), x.w),
  rms_norm_no_weight: (x) => tf.div(x.a, tf.sqrt(tf.add(tf.mean(tf.square(x.a), -1, true), 1e-6))),
  used_twice: (x) => tf.add(tf.mul(x.a, x.a), tf.mul(tf.sin(x.a), x.b)),
  stop_gradient: (x) => tf.mul(x.a, tf.tensor(tf.exp(x.a).dataSync(), x.a.shape)),
};

Deno.test("every gradient rule matches tfjs's gradient (float32)", async () => {
  await initBackend("cpu");
  const missing = OP_CASES.map((c) => c.name).filter((n) => !(n in TF_CASES) && n !== "scatter_add");
  assert.deepEqual(missing, [], "cases without a tfjs twin");
  for (const c of OP_CASES) {
    const fn = TF_CASES[c.name];
    if (!fn) continue;
    const { o, host, r, floats, grads } = recordCase(c);
    const ours = refEval(o.graph, grads as never);
    const t = (h: HostTensor) => tf.tensor(h.data, h.shape, h.data instanceof Int32Array ? "int32" : "float32");
    const fixed = Object.fromEntries(
      Object.entries(host).filter(([n]) => !floats.includes(n)).map(([n, h]) => [n, t(h)]),
    );
    const theirs = tf.grads((...xs: tf.Tensor[]) => {
      const named = { ...fixed, ...Object.fromEntries(floats.map((n, i) => [n, xs[i]])) };
      return tf.sum(tf.mul(fn(named), tf.tensor(r.data, r.shape)));
    })(floats.map((n) => t(host[n])));
    floats.forEach((name, k) => {
      const a = ours[k].data, b = theirs[k].dataSync();
      assert.deepEqual(theirs[k].shape, ours[k].shape, `${c.name}: d/d${name} shape`);
      const scale = Math.max(1e-3, ...Array.from(a, Math.abs));
      const err = Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
      assert.ok(err <= 1e-4 * scale, `${c.name}: d/d${name} differs from tfjs by ${err} (scale ${scale})`);
    });
    tf.dispose([...theirs, ...Object.values(fixed)]);
  }
});
