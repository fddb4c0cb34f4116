/**
 * Recording: inferred shapes and dtypes (cross-checked by the float64 interpreter, which
 * computes every op and compares with what the recorder inferred), and the errors for bad
 * operands, each naming the op and the shapes.
 */
import assert from "node:assert/strict";
import { GraphOps } from "./graph_ops.ts";
import { refEval } from "./ref_eval.ts";
import { OP_CASES, recordCase } from "./op_cases.ts";

const f = (...shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

Deno.test("recorded shapes: every case's forward and gradient values are what the interpreter computes", () => {
  for (const c of OP_CASES) {
    const { o, y, loss, grads } = recordCase(c);
    // refEval throws if any computed shape differs from the recorded one.
    const [yv] = refEval(o.graph, [y, loss, ...grads.filter((g) => g !== null)]);
    assert.deepEqual(yv.shape, y.shape, c.name);
  }
});

Deno.test("recorded shapes: products, gathers, reductions, slices", () => {
  const o = new GraphOps();
  const a = o.input("a", f(5, 2, 3, 4)), b = o.input("b", f(2, 4, 5));
  assert.deepEqual(o.matMul(a, b).shape, [5, 2, 3, 5]);
  assert.deepEqual(o.matMul(o.input("c", f(2, 4, 3)), o.input("d", f(5, 4)), true, true).shape, [2, 3, 5]);
  const idx = o.input("i", { shape: [2, 3], data: new Int32Array(6) });
  assert.deepEqual(o.gather(a, idx, 2).shape, [5, 2, 2, 3, 4]);
  assert.deepEqual(o.sum(a, [-1, 1]).shape, [5, 3]);
  assert.deepEqual(o.mean(a, 0, true).shape, [1, 2, 3, 4]);
  assert.deepEqual(o.slice(a, [1, 0, 1, 0], [-1, 1, 2, -1]).shape, [4, 1, 2, 4]);
  assert.deepEqual(o.split(a, [1, 3], -1).map((t) => t.shape), [[5, 2, 3, 1], [5, 2, 3, 3]]);
  assert.deepEqual(o.reshape(a, [-1, 12]).shape, [10, 12]);
  assert.equal(o.reshape(idx, [6]).dtype, "int32");
  assert.deepEqual(o.add(o.input("s", f(3, 1)), 2).shape, [3, 1]);
});

Deno.test("recording errors name the op and the shapes", () => {
  const o = new GraphOps();
  const a = o.input("a", f(2, 3)), b = o.input("b", f(4, 5));
  const idx = o.input("i", { shape: [2], data: new Int32Array(2) });
  assert.throws(() => o.add(a, b), /^Error: GraphOps.add: shapes \[2,3\] and \[4,5\] do not broadcast$/);
  assert.throws(
    () => o.matMul(a, b),
    /GraphOps.matMul: float32\[2,3\] @ float32\[4,5\]: inner dimensions 3 and 4 differ/,
  );
  assert.throws(() => o.matMul(a, a, false, false), /inner dimensions 3 and 2 differ/);
  assert.throws(
    () => o.reshape(a, [4, -1]),
    /GraphOps.reshape: cannot reshape float32\[2,3\] \(6 elements\) to \[4,-1\]/,
  );
  assert.throws(() => o.transpose(a, [0, 0]), /perm \[0,0\] is not a permutation of the axes of float32\[2,3\]/);
  assert.throws(() => o.concat([a, b], 0), /operands float32\[2,3\], float32\[4,5\] do not concatenate on axis 0/);
  assert.throws(() => o.slice(a, [1, 0], [2, -1]), /begin \[1,0\] size \[2,-1\] is out of range for float32\[2,3\]/);
  assert.throws(() => o.split(a, [1, 1], 1), /sizes \[1,1\] do not add up to axis 1 of float32\[2,3\]/);
  assert.throws(() => o.gather(a, a), /GraphOps.gather: indices are float32\[2,3\]; expected int32/);
  assert.throws(() => o.sum(a, 2), /GraphOps.sum: axis 2 is out of range for rank 2 \(operand float32\[2,3\]\)/);
  assert.throws(() => o.mul(idx, 2), /GraphOps.mul: operand 0 is int32\[2\]; arithmetic takes float32/);
  assert.throws(
    () => o.layerNorm(a, o.input("w", f(2)), o.input("bb", f(3)), 1e-6),
    /weight float32\[2\] and bias float32\[3\] must be \[3\]/,
  );
  assert.throws(() => o.broadcastTo(b, [4, 1]), /float32\[4,5\] does not broadcast to \[4,1\]/);
  assert.throws(() => o.input("a", f(1)), /'a' is already an input of this graph/);
  const other = new GraphOps().input("x", f(2, 3));
  assert.throws(() => o.add(a, other), /GraphOps.add: operand float32\[2,3\] belongs to another graph/);
});
