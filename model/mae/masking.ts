/**
 * MAE per-sample random masking (mae:models_mae.py:123-148), on the host.
 *
 * `noise ~ U[0,1)^(B, L)`; `ids_shuffle = argsort(noise)` (small noise = kept),
 * `ids_restore = argsort(ids_shuffle)`, the first `len_keep` of `ids_shuffle` are kept (in
 * that order) and `mask` is 0 for kept and 1 for removed tokens, in the original order.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { Rng } from "../rng.ts";

export interface MaeMasking {
  batch: number;
  /** L tokens per image. */
  length: number;
  lenKeep: number;
  /** `[B, L]` argsort(noise). */
  idsShuffle: Int32Array;
  /** `[B, L]` argsort(ids_shuffle). */
  idsRestore: Int32Array;
  /** `[B, len_keep]` the kept token indices, in `ids_shuffle` order. */
  idsKeep: Int32Array;
  /** `[B, L]` 0 = kept, 1 = removed. */
  mask: Float32Array;
}

/** `torch.rand(B, L)` from the suite's generator. */
export function sampleNoise(rng: Rng, batch: number, length: number): HostTensor<Float32Array> {
  return { shape: [batch, length], data: rng.fillUniform(new Float32Array(batch * length)) };
}

/** Ascending argsort of one row; ties (never seen with float noise) keep index order. */
function argsort(row: ArrayLike<number>): Int32Array {
  const idx = Int32Array.from({ length: row.length }, (_, i) => i);
  return idx.sort((a, b) => row[a] - row[b] || a - b);
}

/** The masking that `noise` (`[B, L]`) determines, keeping `lenKeep` tokens per image. */
export function maskingFromNoise(noise: HostTensor<Float32Array>, lenKeep: number): MaeMasking {
  const [batch, length] = noise.shape;
  if (noise.shape.length !== 2 || !(lenKeep >= 0 && lenKeep <= length)) {
    throw new Error(`maskingFromNoise: expected noise [B, L] and 0 <= lenKeep <= L, got [${noise.shape}], ${lenKeep}`);
  }
  const idsShuffle = new Int32Array(batch * length);
  const idsRestore = new Int32Array(batch * length);
  const idsKeep = new Int32Array(batch * lenKeep);
  const mask = new Float32Array(batch * length);
  for (let b = 0; b < batch; b++) {
    const shuffle = argsort(noise.data.subarray(b * length, (b + 1) * length));
    idsShuffle.set(shuffle, b * length);
    for (let r = 0; r < length; r++) {
      idsRestore[b * length + shuffle[r]] = r;
      mask[b * length + shuffle[r]] = r < lenKeep ? 0 : 1;
    }
    idsKeep.set(shuffle.subarray(0, lenKeep), b * lenKeep);
  }
  return { batch, length, lenKeep, idsShuffle, idsRestore, idsKeep, mask };
}
