/**
 * Float32 erf, GELU and GELU gradient of the tfjs engine against float64, with the accuracy measured on 2026-12-01
 * (model/ops/GELU_PRECISION.md) as bounds: torch float32's level, so a tfjs upgrade or a kernel change that loses
 * precision fails here. wasm always; blas (fused kernel included) where a BLAS library is installed.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { loadBlas } from "./blas.ts";
import { accuracy, FUNCS, grid, tfjsRows } from "./gelu_accuracy.ts";

Deno.test("accuracy: max absolute error, and relative error in the tail only", () => {
  const xs = new Float32Array([-4, -1, 2]);
  const a = accuracy(xs, [1e-3 * 1.5, 0, 7], (x) => (x === -4 ? 1e-3 : x === 2 ? 5 : 0));
  assert.equal(a.maxAbs, 2);
  assert.ok(Math.abs(a.maxRelTail - 0.5) < 1e-12, `${a.maxRelTail}`);
  assert.ok(Number.isNaN(accuracy(xs, [NaN, 0, 5], () => 0).maxAbs));
});

/** [max abs, max tail rel] per row label suffix; measured values x ~1.5. */
const BOUNDS: Record<string, [number, number]> = {
  "Erf(x / sqrt 2)": [1.6e-7, Infinity], // erf near -1 in the tail: relative error is meaningless there
  "composite gelu (TfOps off blas)": [9e-7, 0.16],
  "composite gelu, autodiff": [2.5e-7, 6.5e-3],
  "fusedGelu": [5e-7, 2.5e-3],
  "fusedGelu gradient": [2e-7, 1e-4],
};

for (const backend of ["wasm", "blas"] as const) {
  const blasMissing = backend === "blas" && !loadBlas();
  Deno.test({
    name: `${backend}: erf, GELU and its gradient as accurate as measured (torch float32's level), within 1.5x`,
    ignore: blasMissing,
    fn: async () => {
      await initBackend(backend);
      assert.equal(tf.getBackend(), backend);
      const xs = grid(40_001);
      const rows = await tfjsRows(xs);
      assert.equal(rows.length, backend === "blas" ? 5 : 3);
      for (const [label, fn, got] of rows) {
        const key = label.slice(label.indexOf(": ") + 2);
        const [abs, rel] = BOUNDS[key];
        const a = accuracy(xs, got, FUNCS[fn]);
        assert.ok(a.maxAbs <= abs && a.maxRelTail <= rel, `${label}: ${JSON.stringify(a)}, bounds ${abs}, ${rel}`);
      }
    },
  });
  if (blasMissing) {
    console.log("gelu_accuracy_test: blas skipped: no BLAS library (apt-get install libopenblas0-pthread)");
  }
}
