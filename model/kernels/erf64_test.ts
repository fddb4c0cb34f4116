/** The double-precision erf reference against Python's math.erf / math.erfc (values printed by CPython 3.11). */
import assert from "node:assert/strict";
import { erf64, erfc64, gelu64, geluGrad64 } from "./erf64.ts";

// [x, math.erfc(x), math.erf(x)] from CPython 3.11.
const PYTHON: [number, number, number][] = [
  [-5.1, 1.9999999999994507, -0.9999999999994507],
  [-3, 1.9999779095030015, -0.9999779095030014],
  [-1, 1.842700792949715, -0.8427007929497149],
  [-0.3, 1.3286267594591274, -0.3286267594591274],
  [0.7, 0.32219880616258156, 0.6778011938374184],
  [1.9, 0.0072095707647425325, 0.9927904292352575],
  [2.5, 0.0004069520174449589, 0.999593047982555],
  [3.3, 3.0577097964381654e-06, 0.9999969422902035],
  [5, 1.5374597944280351e-12, 0.9999999999984626],
  [12, 1.3562611692059042e-64, 1],
  [26, 5.663192408856143e-296, 1],
];

Deno.test("erfc64 and erf64 agree with CPython's math.erfc / math.erf to 4e-14 relative, tails included", () => {
  for (const [x, c, e] of PYTHON) {
    assert.ok(Math.abs(erfc64(x) - c) <= 4e-14 * c, `erfc64(${x}) = ${erfc64(x)}, python ${c}`);
    assert.ok(Math.abs(erf64(x) - e) <= 4e-16 + 1e-15 * Math.abs(e), `erf64(${x}) = ${erf64(x)}, python ${e}`);
  }
  assert.equal(erf64(0), 0);
  assert.ok(Number.isNaN(erfc64(NaN)));
});

Deno.test("gelu64 and geluGrad64: known values and a central difference", () => {
  assert.ok(Math.abs(gelu64(1) - 0.8413447460685429) < 1e-15);
  assert.ok(Math.abs(gelu64(-1) + 0.15865525393145707) < 1e-15);
  // gelu(-6) = -6 Phi(-6) = -6 * 9.865876450377012e-10: relatively accurate deep in the tail.
  assert.ok(Math.abs(gelu64(-6) / (-6 * 9.865876450377012e-10) - 1) < 1e-13);
  for (const x of [-4.2, -0.75, 0.3, 2.2]) {
    const h = 1e-5, fd = (gelu64(x + h) - gelu64(x - h)) / (2 * h);
    assert.ok(Math.abs(geluGrad64(x) - fd) < 1e-9, `gelu'(${x}) ${geluGrad64(x)} vs ${fd}`);
  }
});
