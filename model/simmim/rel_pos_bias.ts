/**
 * BEiT/SimMIM shared relative position bias (simmim:models/vision_transformer.py:179-213).
 *
 * A table `[(2Gh-1)(2Gw-1) + 3, heads]`; the bias of query `a = (i1, j1)` on key
 * `b = (i2, j2)` reads row `(i1-i2+Gh-1)*(2Gw-1) + (j1-j2+Gw-1)`. With the cls token at
 * sequence position 0: row 0 (cls as query) reads `T-3`, column 0 (cls as key) `T-2`, and
 * (0, 0) `T-1`. The gathered bias is `[heads, 1+N, 1+N]`.
 *
 * @module
 */
import type { Ops, Tensor } from "../ops/ops.ts";

/** `relative_position_index`, `[(1+N) * (1+N)]` row-major, for a `gh x gw` grid. */
export function relativePositionIndex(gh: number, gw: number): Int32Array {
  const n = gh * gw, l = n + 1;
  const t = (2 * gh - 1) * (2 * gw - 1) + 3;
  const idx = new Int32Array(l * l);
  for (let a = 0; a < n; a++) {
    const i1 = Math.floor(a / gw), j1 = a % gw;
    for (let b = 0; b < n; b++) {
      const i2 = Math.floor(b / gw), j2 = b % gw;
      idx[(a + 1) * l + b + 1] = (i1 - i2 + gh - 1) * (2 * gw - 1) + (j1 - j2 + gw - 1);
    }
  }
  for (let k = 0; k < l; k++) {
    idx[k] = t - 3; // cls as query
    idx[k * l] = t - 2; // cls as key
  }
  idx[0] = t - 1;
  return idx;
}

/** Gather `table` `[T, h]` into the bias `[h, 1+N, 1+N]` for `index` (int32 `[(1+N)^2]`). */
export function gatherRelPosBias(o: Ops, table: Tensor, index: Tensor): Tensor {
  const l = Math.round(Math.sqrt(index.shape[0]));
  const h = table.shape[1];
  const flat = o.gather(table, index); // [(1+N)^2, h]
  return o.transpose(o.reshape(flat, [l, l, h]), [2, 0, 1]); // [h, 1+N, 1+N]
}
