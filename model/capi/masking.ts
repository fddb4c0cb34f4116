/**
 * CAPI masking (capi:data.py:375-472, SPEC 1.6): inverse block masking with a cyclic roll,
 * then prediction subsampling of the masked tokens, with absolute indices over `B*N`.
 *
 * Randomness comes through `MaskDraws` (python `random.uniform` / `random.randint`
 * semantics), so the suite's `Rng` drives training and a fixture's recorded draws can be
 * replayed to reproduce its masks exactly.
 *
 * @module
 */
import type { Rng } from "../rng.ts";
import type { SampleRange } from "../micro_batch.ts";

/** The two python `random` calls the block masking makes. */
export interface MaskDraws {
  /** `random.uniform(lo, hi)`. */
  uniform(lo: number, hi: number): number;
  /** `random.randint(lo, hi)`, both ends inclusive. */
  randint(lo: number, hi: number): number;
}

/** The suite's `Rng` as a `MaskDraws`. */
export function rngDraws(rng: Rng): MaskDraws {
  return { uniform: (lo, hi) => rng.uniform(lo, hi), randint: (lo, hi) => rng.int(lo, hi) };
}

/**
 * `BlockMasking(num)` with `roll=True` on a `gh x gw` grid: exactly `num` cells set (1),
 * row-major `Uint8Array(gh*gw)`. Aspect ratio in [0.5, 2] (`min_aspect`, `max_aspect`).
 */
export function blockMask(gh: number, gw: number, num: number, draws: MaskDraws): Uint8Array {
  const lo = Math.max(Math.log(0.5), Math.log(num / (gw * gw)));
  const hi = Math.min(Math.log(2), Math.log((gh * gh) / (num + 1e-5)));
  const ar = Math.exp(draws.uniform(lo, hi));
  // Clamp to the grid (a no-op whenever the aspect bounds above hold, as in the official code).
  const bh = Math.min(gh, Math.ceil(Math.sqrt(num * ar)));
  const bw = Math.min(gw, Math.ceil(Math.sqrt(num / ar)));
  const top = draws.randint(0, gh - bh);
  const left = draws.randint(0, gw - bw);
  const block = new Uint8Array(gh * gw);
  let marked = 0;
  for (let i = top; i < top + bh && marked < num; i++) {
    for (let j = left; j < left + bw && marked < num; j++) {
      block[i * gw + j] = 1; // keep only the first `num` marked cells in row-major order
      marked++;
    }
  }
  if (marked !== num) {
    throw new Error(`blockMask: a ${bh}x${bw} block holds ${marked} cells, fewer than ${num} (grid ${gh}x${gw})`);
  }
  const dr = draws.randint(0, gh - 1);
  const dc = draws.randint(0, gw - 1);
  const out = new Uint8Array(gh * gw);
  for (let i = 0; i < gh; i++) {
    for (let j = 0; j < gw; j++) out[((i + dr) % gh) * gw + ((j + dc) % gw)] = block[i * gw + j]; // np.roll
  }
  return out;
}

/** `InverseBlockMasking(nMasked)`: 1 = masked; the visible cells form one (rolled) block. */
export function inverseBlockMask(gh: number, gw: number, nMasked: number, draws: MaskDraws): Uint8Array {
  const visible = blockMask(gh, gw, gh * gw - nMasked, draws);
  return visible.map((v) => 1 - v);
}

/** A collated CAPI batch of masks and absolute indices. */
export interface CapiMasks {
  /** `[B*N]`, 1 = masked. */
  masks: Uint8Array;
  /** Absolute indices of the visible tokens, image-major, ascending: `[B*nVisible]`. */
  visibleIndices: Int32Array;
  /** Absolute indices of the predicted tokens, image-major, each image in argsort order: `[B*nPredict]`. */
  predictIndices: Int32Array;
}

/**
 * `collate_data_and_cast`: from per-image masks and the `torch.rand(B, nMasked)` draws
 * `rand` (`[B*nMasked]`), the predicted subset `argsort(rand[b])[:nPredict]` of each
 * image's masked tokens (ascending) in that random order.
 */
export function collateMasks(
  masks: Uint8Array,
  batch: number,
  nTokens: number,
  nPredict: number,
  rand: ArrayLike<number>,
): CapiMasks {
  const visible: number[] = [], predict: number[] = [];
  let nMasked = -1;
  for (let b = 0; b < batch; b++) {
    const masked: number[] = [];
    for (let t = 0; t < nTokens; t++) {
      const abs = b * nTokens + t;
      if (masks[abs]) masked.push(abs);
      else visible.push(abs);
    }
    if (nMasked >= 0 && masked.length !== nMasked) {
      throw new Error(`collateMasks: image ${b} has ${masked.length} masked tokens, image 0 has ${nMasked}`);
    }
    nMasked = masked.length;
    const order = Array.from({ length: nMasked }, (_, i) => i);
    const r = (i: number) => rand[b * nMasked + i];
    order.sort((x, y) => r(x) - r(y) || x - y);
    for (let k = 0; k < nPredict; k++) predict.push(masked[order[k]]);
  }
  return { masks, visibleIndices: Int32Array.from(visible), predictIndices: Int32Array.from(predict) };
}

/**
 * The masks of images `[start, start + size)`, with absolute indices re-based to those images (a
 * micro-batch's `CapiMasks`); every image has the same number of visible and predicted tokens.
 */
export function sliceCapiMasks(m: CapiMasks, r: SampleRange, nTokens: number): CapiMasks {
  const batch = m.masks.length / nTokens;
  if (r.start === 0 && r.size === batch) return m;
  const nVis = m.visibleIndices.length / batch, nPred = m.predictIndices.length / batch;
  const off = r.start * nTokens;
  const rebase = (idx: Int32Array, per: number) =>
    idx.slice(r.start * per, (r.start + r.size) * per).map((i) => i - off);
  return {
    masks: m.masks.slice(off, off + r.size * nTokens),
    visibleIndices: rebase(m.visibleIndices, nVis),
    predictIndices: rebase(m.predictIndices, nPred),
  };
}

/** Masks and indices for one batch, every draw from `rng`. */
export function sampleCapiMasks(
  rng: Rng,
  o: { batch: number; gridH: number; gridW: number; nMasked: number; nPredict: number },
): CapiMasks {
  const n = o.gridH * o.gridW;
  const masks = new Uint8Array(o.batch * n);
  for (let b = 0; b < o.batch; b++) {
    masks.set(inverseBlockMask(o.gridH, o.gridW, o.nMasked, rngDraws(rng.fork("mask", b))), b * n);
  }
  const rand = new Float64Array(o.batch * o.nMasked);
  const collate = rng.fork("collate");
  for (let i = 0; i < rand.length; i++) rand[i] = collate.float();
  return collateMasks(masks, o.batch, n, o.nPredict, rand);
}
