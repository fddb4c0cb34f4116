/** `assertAlmostEquals` for tests (JSR's std/assert is unreachable here). */
import assert from "node:assert/strict";

/** Assert `|actual - expected| <= tol`, with both values in the message. */
export function assertAlmostEquals(actual: number, expected: number, tol = 1e-7, what = "value"): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: expected ${expected} ± ${tol}, got ${actual} (diff ${Math.abs(actual - expected)})`,
  );
}
