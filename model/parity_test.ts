/** ParityReport: both error rules, skips, excuses, noise waivers and the torch float32 comparison. */
import assert from "node:assert/strict";
import { loadFixture, parseFixture } from "./fixture.ts";
import { maxAbsErr, maxRelErr, maxScaleErr, ParityReport } from "./parity.ts";

function fixture(notes: string[] = [], hints: Record<string, unknown> = {}) {
  const entry = (name: string, offset: number) => ({
    name,
    shape: [2],
    dtype: "float32",
    offset,
    numel: 2,
    description: "",
  });
  const json = {
    format: "mim-fixture-v1",
    bin: "x.bin",
    byte_order: "little",
    notes,
    tolerance_hints: hints,
    tensors: [entry("input.x", 0), entry("out.a", 8), entry("out.b", 16), entry("grad.small", 24)],
  };
  // grad.small: a gradient whose entries are all far below 1e-4, like nine of simmim_tiny's.
  const data = new Float32Array([1, 2, 100, -0.5, 3, 4, 3e-6, -1e-6]);
  return parseFixture("x.json", json, new Uint8Array(data.buffer));
}

Deno.test("relative error uses max(1, |ref|) as the scale and propagates NaN", () => {
  assert.equal(maxRelErr([101, -0.5], [100, -0.5]), 0.01);
  assert.equal(maxRelErr([0.5], [0.25]), 0.25);
  assert.ok(Number.isNaN(maxRelErr([NaN], [1])));
  assert.equal(maxRelErr([9, 1], [1, 1], (i) => i === 1), 0);
});

Deno.test("untouched tensors count as skipped and fail the fixture", () => {
  const r = new ParityReport(fixture());
  r.compare("out.a", [100.005, -0.5]);
  assert.deepEqual(r.summary(), {
    passed: false,
    compared: 1,
    skipped: 2,
    failed: 0,
    maxRelErr: r.summary().maxRelErr,
    maxScaleErr: r.summary().maxScaleErr,
    vsTorchF32: NaN, // no tolerance_hints
  });
  r.compare("out.b", [3, 4]);
  r.compare("grad.small", [3e-6, -1e-6]);
  assert.equal(r.summary().passed, true);
  assert.equal(r.rows().length, 3, "inputs are not rows");
});

Deno.test("scale-relative error: max |a-b| over max |ref|; 0 for equal all-zero tensors, Infinity for noise on zeros", () => {
  assert.equal(maxScaleErr([101, -0.5], [100, -0.5]), 0.01);
  assert.equal(maxScaleErr([0, 0], [3e-6, -1e-6]), 1);
  assert.equal(maxScaleErr([0, 0], [0, 0]), 0);
  assert.equal(maxScaleErr([1e-9], [0]), Infinity);
  assert.ok(Number.isNaN(maxScaleErr([1, NaN], [1, 1])));
  assert.equal(maxScaleErr([9, 2], [1, 4], (i) => i === 1), 0.5);
});

Deno.test("an all-zeros answer for a small tensor fails the scale rule though it passes 1e-4; a correct one passes", () => {
  const r = new ParityReport(fixture());
  r.compare("out.a", [100, -0.5]);
  r.compare("out.b", [3, 4]);
  const zeros = r.compare("grad.small", [0, 0]);
  assert.ok(zeros.err! <= 1e-4, "the old rule alone would pass it");
  assert.equal(zeros.scaleErr, 1);
  assert.equal(zeros.status, "fail");
  assert.equal(r.summary().passed, false);
  assert.equal(r.summary().maxScaleErr, 1);
  // 1% of the tensor's scale is the bound: 2.9e-8 off passes, 3.1e-8 off (1.03%) fails.
  assert.equal(r.compare("grad.small", [3e-6 + 2.9e-8, -1e-6]).status, "pass");
  assert.equal(r.compare("grad.small", [3e-6 + 3.1e-8, -1e-6]).status, "fail");
  const right = r.compare("grad.small", [3.00001e-6, -0.99999e-6]);
  assert.equal(right.status, "pass");
  assert.ok(right.scaleErr! < 1e-5, `scale err ${right.scaleErr}`);
  assert.equal(r.summary().passed, true);
});

Deno.test("the scale rule is waived only for a tensor the manifest's notes call noise, quoting the note", () => {
  const note = "grad.small is analytically zero: rounding noise";
  const r = new ParityReport(fixture([note]));
  r.compare("out.a", [100, -0.5]);
  r.compare("out.b", [3, 4]);
  const row = r.compare("grad.small", [-2e-6, 4e-6], { noise: note });
  assert.equal(row.status, "pass");
  assert.match(row.note!, /grad\.small is analytically zero/);
  assert.equal(r.summary().maxScaleErr, 0, "waived rows do not count towards maxScaleErr");
  assert.equal(r.compare("grad.small", [1, 0], { noise: note }).status, "fail", "1e-4 still holds");
  assert.throws(
    () => new ParityReport(fixture()).compare("grad.small", [0, 0], { noise: note }),
    /x\.json: 'grad\.small' is waived as noise by a note the manifest does not have/,
  );
});

Deno.test("a tensor over tolerance, of the wrong size, or NaN fails; excused tensors do not", () => {
  const r = new ParityReport(fixture());
  assert.equal(r.compare("out.a", [100.02, -0.5]).status, "fail");
  assert.equal(r.compare("out.a", [100]).status, "fail");
  assert.equal(r.compare("out.a", [NaN, -0.5]).status, "fail");
  r.compare("out.a", [100, -0.5]);
  r.excuse("out.b", "analytically zero gradient");
  r.compare("grad.small", [3e-6, -1e-6]);
  assert.equal(r.summary().passed, true);
  assert.throws(() => r.compare("out.c", [1, 2]), /no tensor 'out.c'/);
});

Deno.test("simmim_tiny: the nine gradients below 1e-4 pass the old rule with all zeros and fail the new one", async () => {
  const fx = await loadFixture(new URL("./testdata/simmim_tiny.json", import.meta.url).pathname);
  const small = fx.names().filter((n) => {
    if (n.startsWith("input.") || n.startsWith("param.")) return false;
    const t = fx.tensor(n).data;
    return t.length > 0 && t.every((v) => Math.abs(v) < 1e-4);
  });
  assert.equal(small.length, 9, `tensors below 1e-4: ${small}`);
  const r = new ParityReport(fx);
  for (const name of small) {
    const ref = fx.f32(name).data;
    const zeros = r.compare(name, new Float32Array(ref.length));
    assert.ok(
      zeros.err! <= 1e-4 && zeros.scaleErr === 1 && zeros.status === "fail",
      `${name}: ${JSON.stringify(zeros)}`,
    );
    assert.equal(r.compare(name, ref).status, "pass", name);
  }
});

Deno.test("vsTorchF32: median of our max error over torch float32's from tolerance_hints; NaN without hints", () => {
  assert.equal(maxAbsErr([1, 5], [1.5, 2], (i) => i === 0), 0.5);
  assert.ok(Number.isNaN(maxAbsErr([NaN, 1], [1, 1])), "a NaN anywhere is NaN");
  const hints = {
    "out.a": { max_abs_diff_f32_vs_f64: 0.03125 },
    "out.b": { max_abs_diff_f32_vs_f64: 0.5 },
    "grad.small": { max_abs_diff_f32_vs_f64: 0 }, // exact in torch: no ratio
  };
  const r = new ParityReport(fixture([], hints));
  r.compare("out.a", [100.0625, -0.5]); // 2x torch's error (exact in float32)
  r.compare("out.b", [3, 4.5]); // 1x
  r.compare("grad.small", [3e-6, -1e-6]);
  assert.equal(r.vsTorchF32(), 1.5);
  r.compare("out.b", [3, 4]); // 0x
  assert.equal(r.summary().vsTorchF32, 1);
  assert.ok(Number.isNaN(new ParityReport(fixture()).vsTorchF32()));
});

/** A one-parameter fixture: gradient `g` (torch float32 error `noise` on it) and the AdamW step `step`. */
function stepFixture(g: number[], step: number[], noise: number) {
  const entry = (name: string, offset: number) => ({ name, shape: [3], dtype: "float32", offset, numel: 3 });
  const json = {
    format: "mim-fixture-v1",
    bin: "s.bin",
    byte_order: "little",
    tolerance_hints: { "grad.w": { max_abs_diff_f32_vs_f64: noise } },
    tensors: [entry("grad.w", 0), entry("step.w", 12)],
  };
  return parseFixture("s.json", json, new Uint8Array(new Float32Array([...g, ...step]).buffer));
}

Deno.test("AdamW-step tensors leave out elements whose gradient float32 does not determine, and only those", () => {
  // Element 1's gradient (2e-9) is below torch float32's own error on it (1e-8): its step is luck.
  const fx = stepFixture([0.3, 2e-9, -0.02], [0.999, 0.5, 1.001], 1e-8);
  const r = new ParityReport(fx);
  r.compare("grad.w", [0.3, -3e-9, -0.02]);
  const row = r.compare("step.w", [0.999, 0.4, 1.001]); // 0.1 off where the gradient is noise
  assert.equal(row.status, "pass");
  assert.equal(row.illConditioned, 1);
  assert.equal(row.n, 2);
  assert.match(row.note ?? "", /1 element\(s\) left out: \|grad\.w\| <= 1\.0e-8/);
  // The same error on a well-determined element fails.
  const bad = new ParityReport(fx).compare("step.w", [0.999, 0.5, 1.101]);
  assert.equal(bad.status, "fail");
  assert.equal(bad.illConditioned, 1);
});

Deno.test("capi_illcond: the held-out configuration at an ill-conditioned draw leaves out few step elements", async () => {
  const fx = await loadFixture(new URL("testdata/variants/capi_illcond.json", import.meta.url).pathname);
  const name = "step.student.backbone.encoder.blocks.2.residual2.fn.fc2.weight";
  const ref = fx.tensor(name).data;
  const r = new ParityReport(fx);
  const row = r.compare(name, ref);
  assert.equal(row.status, "pass");
  // The draw's point: some elements of this tensor have gradients below float32's resolution.
  assert.ok((row.illConditioned ?? 0) >= 1 && (row.illConditioned ?? 0) < 20, `left out ${row.illConditioned}`);
});
