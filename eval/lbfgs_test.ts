/** L-BFGS (cuML semantics): known minima, the stopping rules, and a run that says it did not converge. */
import assert from "node:assert/strict";
import { type LbfgsOptions, minimize } from "./lbfgs.ts";
import { assertAlmostEquals } from "./test_assert.ts";

const OFFICIAL: LbfgsOptions = { maxIter: 1000, gradTol: 1e-12, changeTol: 1e-14, memory: 5, maxLinesearch: 50 };

Deno.test("lbfgs: a convex quadratic is solved to its closed-form minimum A^-1 b", () => {
  // f = 1/2 x'Ax - b'x + 3 with A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]], b = [1, 2, 3].
  const A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]], b = [1, 2, 3];
  const fun = (x: Float64Array) => {
    const ax = A.map((r) => r.reduce((s, v, j) => s + v * x[j], 0));
    return {
      f: 0.5 * ax.reduce((s, v, i) => s + v * x[i], 0) - b.reduce((s, v, i) => s + v * x[i], 0) + 3,
      g: Float64Array.from(ax, (v, i) => v - b[i]),
    };
  };
  const r = minimize(fun, new Float64Array(3), OFFICIAL);
  // A^-1 b by hand (y = 1 - 4x, z = 1 + 2x, then -9x = -2): [2/9, 1/9, 13/9].
  [2 / 9, 1 / 9, 13 / 9].forEach((v, i) => assertAlmostEquals(r.x[i], v, 1e-10, `x[${i}]`));
  assert.equal(r.status, "converged");
  assert.ok(r.gradNorm < 1e-9, `gradient ${r.gradNorm}`);
});

Deno.test("lbfgs: Rosenbrock reaches (1, 1); capped at 5 iterations it reports max_iter", () => {
  const fun = (x: Float64Array) => {
    const [a, b] = x;
    return {
      f: (1 - a) ** 2 + 100 * (b - a * a) ** 2,
      g: Float64Array.of(-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)),
    };
  };
  const r = minimize(fun, Float64Array.of(-1.2, 1), OFFICIAL);
  assertAlmostEquals(r.x[0], 1, 1e-6, "x");
  assertAlmostEquals(r.x[1], 1, 1e-6, "y");
  assert.ok(r.status === "converged" || r.status === "line_search_failed", r.status);
  assert.ok(r.f < 1e-12, `f ${r.f}`);
  const capped = minimize(fun, Float64Array.of(-1.2, 1), { ...OFFICIAL, maxIter: 5 });
  assert.equal(capped.status, "max_iter");
  assert.equal(capped.iterations, 5);
  assert.ok(capped.f > 1e-3, "5 iterations are not enough here: the test must see an unconverged run");
});

Deno.test("lbfgs: a start point that passes the gradient test is returned; flat objectives and NaN are reported", () => {
  const zero = minimize((x) => ({ f: 1 + x[0] ** 2, g: Float64Array.of(2 * x[0]) }), Float64Array.of(0), OFFICIAL);
  assert.deepEqual([zero.status, zero.iterations, zero.evaluations], ["converged", 0, 1]);
  // A gradient that promises descent on a flat objective: the change test over 10 iterations stops it.
  const flat = minimize(() => ({ f: 2, g: Float64Array.of(1) }), Float64Array.of(0), OFFICIAL);
  assert.deepEqual([flat.status, flat.iterations], ["converged", 10]);
  // Without the change test it spins (rounding lets tiny steps pass Armijo) until the cap, and says so.
  const spin = minimize(() => ({ f: 2, g: Float64Array.of(1) }), Float64Array.of(0), {
    ...OFFICIAL,
    changeTol: 0,
    maxIter: 20,
  });
  assert.deepEqual([spin.status, spin.iterations], ["max_iter", 20]);
  const nan = minimize(() => ({ f: NaN, g: Float64Array.of(1) }), Float64Array.of(0), OFFICIAL);
  assert.equal(nan.status, "numeric_error");
});
