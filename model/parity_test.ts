import assert from "node:assert/strict";
import { parseFixture } from "./fixture.ts";
import { maxRelErr, ParityReport } from "./parity.ts";

function fixture() {
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
    tensors: [entry("input.x", 0), entry("out.a", 8), entry("out.b", 16)],
  };
  const data = new Float32Array([1, 2, 100, -0.5, 3, 4]);
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
    skipped: 1,
    failed: 0,
    maxRelErr: r.summary().maxRelErr,
  });
  r.compare("out.b", [3, 4]);
  assert.equal(r.summary().passed, true);
  assert.equal(r.rows().length, 2, "inputs are not rows");
});

Deno.test("a tensor over tolerance, of the wrong size, or NaN fails; excused tensors do not", () => {
  const r = new ParityReport(fixture());
  assert.equal(r.compare("out.a", [100.02, -0.5]).status, "fail");
  assert.equal(r.compare("out.a", [100]).status, "fail");
  assert.equal(r.compare("out.a", [NaN, -0.5]).status, "fail");
  r.compare("out.a", [100, -0.5]);
  r.excuse("out.b", "analytically zero gradient");
  assert.equal(r.summary().passed, true);
  assert.throws(() => r.compare("out.c", [1, 2]), /no tensor 'out.c'/);
});
