/**
 * Parameter initialisers, drawn on the host from the suite's `Rng` so that
 * initial weights are identical on every backend.
 *
 * Shapes follow torch: a Linear weight is `[out, in]`, a Conv2d weight `[out, in, kh, kw]`.
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";
import type { Rng } from "./rng.ts";

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function zeros(shape: number[]): HostTensor<Float32Array> {
  return { shape, data: new Float32Array(numel(shape)) };
}

export function constant(shape: number[], value: number): HostTensor<Float32Array> {
  return { shape, data: new Float32Array(numel(shape)).fill(value) };
}

/** torch `xavier_uniform_` (gain 1) on a `[fanOut, fanIn, ...]` weight; receptive field folded into fans. */
export function xavierUniform(rng: Rng, shape: number[]): HostTensor<Float32Array> {
  const receptive = numel(shape.slice(2));
  const fanOut = shape[0] * receptive;
  const fanIn = (shape[1] ?? 1) * receptive;
  const a = Math.sqrt(6 / (fanIn + fanOut));
  return { shape, data: rng.fillUniform(new Float32Array(numel(shape)), -a, a) };
}

export function normal(rng: Rng, shape: number[], std: number, mean = 0): HostTensor<Float32Array> {
  return { shape, data: rng.fillNormal(new Float32Array(numel(shape)), mean, std) };
}

export function uniform(rng: Rng, shape: number[], lo: number, hi: number): HostTensor<Float32Array> {
  return { shape, data: rng.fillUniform(new Float32Array(numel(shape)), lo, hi) };
}

/** torch `trunc_normal_(std=std, a=lo, b=hi)`: bounds are absolute values, not multiples of std. */
export function truncNormal(
  rng: Rng,
  shape: number[],
  std: number,
  lo = -2,
  hi = 2,
): HostTensor<Float32Array> {
  return { shape, data: rng.fillTruncNormal(new Float32Array(numel(shape)), 0, std, lo, hi) };
}

/** torch's default Linear/Conv2d bias init: U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function defaultBias(rng: Rng, size: number, fanIn: number): HostTensor<Float32Array> {
  const b = 1 / Math.sqrt(fanIn);
  return uniform(rng, [size], -b, b);
}
