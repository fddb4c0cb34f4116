/**
 * MAE's fixed 2-D sin-cos position embedding (mae:util/pos_embed.py), computed in float64
 * on the host.
 *
 * For a `Gh x Gw` grid and width D: channels `[0, D/2)` encode the **column** index and
 * `[D/2, D)` the **row** index (the official `np.meshgrid(grid_w, grid_h)` puts w first);
 * each half is `[sin(pos*w_0..w_{D/4-1}), cos(pos*w_0..)]` with `w_k = 10000^(-k/(D/4))`.
 * With `cls`, row 0 is all zeros. The official code takes a square grid; `[Gh, Gw]` is the
 * same construction on a rectangular one (meshgrid of `Gh` rows by `Gw` columns).
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";

/** 1-D sin-cos of positions `pos` at width `dim` (even): `[len(pos), dim]`, row-major. */
function sincos1d(dim: number, pos: number, out: Float32Array, offset: number): void {
  const half = dim / 2;
  for (let k = 0; k < half; k++) {
    const omega = 1 / 10000 ** (k / half);
    out[offset + k] = Math.sin(pos * omega);
    out[offset + half + k] = Math.cos(pos * omega);
  }
}

/** `get_2d_sincos_pos_embed(dim, grid, cls_token)`: `[cls + Gh*Gw, dim]`. */
export function sincos2d(dim: number, grid: [number, number], cls: boolean): HostTensor<Float32Array> {
  if (dim % 4 !== 0) throw new Error(`sincos2d: width ${dim} must be a multiple of 4`);
  const [gh, gw] = grid;
  const first = cls ? 1 : 0;
  const out = new Float32Array((first + gh * gw) * dim);
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) {
      const row = (first + i * gw + j) * dim;
      sincos1d(dim / 2, j, out, row); // first half: column index
      sincos1d(dim / 2, i, out, row + dim / 2); // second half: row index
    }
  }
  return { shape: [first + gh * gw, dim], data: out };
}
