/**
 * `erfc64`, `erf64`: the error function in double precision (relative error below 4e-14, tested
 * against Python's `math.erfc`), the reference the float32 erf and GELU kernels are measured against
 * (model/kernels/gelu_accuracy.ts, fused_gelu_test.ts).
 *
 * JavaScript has no `Math.erf`. Here `|x| < 2` uses the series
 * `erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))`, whose terms are all positive
 * (no cancellation), and `x >= 2` the continued fraction
 * `erfc(x) = exp(-x^2) / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...))))`, so the tail
 * `erfc` keeps its relative accuracy down to underflow. Slow (up to 200 steps): for references only.
 *
 * @module
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

function erfSeries(x: number): number {
  let term = x, sum = x;
  for (let n = 1; n < 200 && term > 1e-18 * sum; n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/** `1 - erf(x)` in double precision, relatively accurate in the right tail. */
export function erfc64(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc64(-x);
  if (x < 2) return 1 - erfSeries(x);
  let f = x; // the continued fraction, evaluated bottom-up from a fixed depth (200 is ample for x >= 2)
  for (let k = 200; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** `erf(x)` in double precision. */
export function erf64(x: number): number {
  if (Math.abs(x) < 2) return x < 0 ? -erfSeries(-x) : erfSeries(x);
  return x < 0 ? erfc64(-x) - 1 : 1 - erfc64(x);
}

/** Standard normal CDF `Phi(x) = 0.5 erfc(-x / sqrt 2)`, relatively accurate for negative x. */
export function normalCdf64(x: number): number {
  return 0.5 * erfc64(-x * Math.SQRT1_2);
}

/** Exact GELU `x Phi(x)` in double precision. */
export function gelu64(x: number): number {
  return x * normalCdf64(x);
}

/** `gelu'(x) = Phi(x) + x phi(x)` in double precision. */
export function geluGrad64(x: number): number {
  return normalCdf64(x) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
}
