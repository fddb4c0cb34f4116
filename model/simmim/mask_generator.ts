/**
 * SimMIM's coarse random mask (simmim:data/data_simmim.py `MaskGenerator`), on the host.
 *
 * The image is cut into `mask_patch_size` cells (`rand_size` per axis); `ceil(cells *
 * mask_ratio)` cells chosen by a random permutation are masked, and each cell is expanded
 * `scale = mask_patch_size / model_patch_size` times on both axes to the model's token grid.
 * The official generator takes square sizes; `[H, W]` uses `H/m x W/m` cells, row-major.
 *
 * @module
 */
import type { Rng } from "../rng.ts";
import type { SimmimDims } from "./config.ts";

/**
 * Token mask `[Gh*Gw]` (1 = masked, row-major) from a permutation of the coarse cells;
 * the first `dims.maskCount` entries of `perm` are masked (`np.random.permutation(n)[:count]`).
 */
export function maskFromPermutation(perm: ArrayLike<number>, dims: SimmimDims): Int32Array {
  const { randH, randW, scale, gridW, maskCount } = dims;
  if (perm.length !== randH * randW) {
    throw new Error(
      `maskFromPermutation: permutation has ${perm.length} entries, the ${randH}x${randW} coarse grid needs ${
        randH * randW
      }`,
    );
  }
  const mask = new Int32Array(dims.gridH * gridW);
  for (let k = 0; k < maskCount; k++) {
    const cell = perm[k];
    const ci = Math.floor(cell / randW), cj = cell % randW;
    for (let di = 0; di < scale; di++) {
      for (let dj = 0; dj < scale; dj++) mask[(ci * scale + di) * gridW + cj * scale + dj] = 1;
    }
  }
  return mask;
}

/** Draw one mask per image: `[B, Gh*Gw]` int (1 = masked). */
export function sampleSimmimMasks(rng: Rng, batch: number, dims: SimmimDims): Int32Array {
  const out = new Int32Array(batch * dims.nTokens);
  for (let b = 0; b < batch; b++) {
    out.set(maskFromPermutation(rng.permutation(dims.randH * dims.randW), dims), b * dims.nTokens);
  }
  return out;
}
