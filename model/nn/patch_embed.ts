/**
 * Patch embedding: `Conv2d(3, D, kernel=p, stride=p)` computed as patchify + matmul.
 *
 * Patchifying happens on the host (images arrive from the loader as typed arrays and
 * need no gradient), which avoids a 6-D transpose on the device. The Conv2d weight
 * `[D, C, p, p]` reshaped to `[D, C*p*p]` matches the `(c, py, px)` patch order.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { Ops, Tensor } from "../ops/ops.ts";
import { linear } from "./linear.ts";

/** Order of the values inside one patch vector. */
export type PatchOrder =
  /** `(c, py, px)`: the Conv2d weight layout (patch embedding, SimMIM's PixelShuffle channels). */
  | "chw"
  /** `(py, px, c)`: MAE's `patchify` (its loss targets). */
  | "hwc";

/**
 * `[B, C, H, W]` -> `[B, Gh*Gw, C*p*p]`, patches row-major over the grid.
 * H and W must be multiples of p.
 */
export function patchify(
  images: HostTensor<Float32Array>,
  p: number,
  order: PatchOrder = "chw",
): HostTensor<Float32Array> {
  const [b, c, h, w] = images.shape;
  if (images.shape.length !== 4 || h % p !== 0 || w % p !== 0) {
    throw new Error(`patchify: expected [B, C, H, W] with H, W multiples of ${p}, got [${images.shape}]`);
  }
  const gh = h / p, gw = w / p, pp = p * p, dim = c * pp;
  const out = new Float32Array(b * gh * gw * dim);
  const src = images.data;
  for (let n = 0; n < b; n++) {
    for (let gi = 0; gi < gh; gi++) {
      for (let gj = 0; gj < gw; gj++) {
        const base = ((n * gh + gi) * gw + gj) * dim;
        for (let ch = 0; ch < c; ch++) {
          for (let py = 0; py < p; py++) {
            const row = ((n * c + ch) * h + gi * p + py) * w + gj * p;
            for (let px = 0; px < p; px++) {
              const k = order === "chw" ? ch * pp + py * p + px : (py * p + px) * c + ch;
              out[base + k] = src[row + px];
            }
          }
        }
      }
    }
  }
  return { shape: [b, gh * gw, dim], data: out };
}

/** Inverse of `patchify`: `[B, Gh*Gw, C*p*p]` -> `[B, C, Gh*p, Gw*p]`. */
export function unpatchify(
  patches: HostTensor<Float32Array>,
  p: number,
  grid: [number, number],
  order: PatchOrder = "chw",
): HostTensor<Float32Array> {
  const [b, n, dim] = patches.shape;
  const [gh, gw] = grid;
  const pp = p * p, c = dim / pp;
  if (n !== gh * gw || !Number.isInteger(c)) {
    throw new Error(`unpatchify: [${patches.shape}] does not fit grid ${gh}x${gw} with patch ${p}`);
  }
  const h = gh * p, w = gw * p;
  const out = new Float32Array(b * c * h * w);
  for (let s = 0; s < b; s++) {
    for (let gi = 0; gi < gh; gi++) {
      for (let gj = 0; gj < gw; gj++) {
        const base = ((s * gh + gi) * gw + gj) * dim;
        for (let ch = 0; ch < c; ch++) {
          for (let py = 0; py < p; py++) {
            for (let px = 0; px < p; px++) {
              const k = order === "chw" ? ch * pp + py * p + px : (py * p + px) * c + ch;
              out[((s * c + ch) * h + gi * p + py) * w + gj * p + px] = patches.data[base + k];
            }
          }
        }
      }
    }
  }
  return { shape: [b, c, h, w], data: out };
}

/**
 * Patch embedding of patchified images: `[B, N, C*p*p]` -> `[B, N, D]`.
 * `weight` is the Conv2d weight `[D, C, p, p]`, `bias` `[D]`.
 */
export function patchEmbed(o: Ops, patches: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const d = weight.shape[0];
  return linear(o, patches, o.reshape(weight, [d, -1]), bias);
}
