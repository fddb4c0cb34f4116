/**
 * Patch-level data for the segmentation probes (capi: eval_segmentation.py, SPEC 1.10):
 * every patch token carries the `ph x pw` pixel labels it covers, its training target is
 * the mode of those labels (smallest label on ties, as torch `mode`), and patches whose
 * target is an ignore label (0/255) are dropped from training. Features are standardised
 * per channel with statistics fitted on training patches only (sklearn `StandardScaler`).
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";
import { IGNORE_LABELS } from "./metrics.ts";

/** Features and label maps of one split at the eval resolution. */
export interface SegFeatures {
  /** Patch tokens `[n, Gh, Gw, D]`. */
  feats: HostTensor<Float32Array>;
  /** Pixel labels `[n, H, W]` with `H = Gh*ph`, `W = Gw*pw`. */
  labels: HostTensor<Int32Array>;
}

/** Patches of a split: features `[P, D]`, pixel labels `[P, ph*pw]`, image index per patch. */
export interface Patches {
  x: HostTensor<Float32Array>;
  pixels: Int32Array;
  pp: number;
  image: Int32Array;
}

/** Cut a split into patches, restricted to images `images` (all when omitted). */
export function toPatches(s: SegFeatures, images?: ArrayLike<number>): Patches {
  const [n, gh, gw, d] = s.feats.shape;
  const [nl, h, w] = s.labels.shape;
  if (nl !== n) throw new Error(`segmentation: ${n} feature maps but ${nl} label maps`);
  if (h % gh !== 0 || w % gw !== 0) {
    throw new Error(`segmentation: label maps ${h}x${w} do not split into the ${gh}x${gw} patch grid`);
  }
  const ph = h / gh, pw = w / gw, pp = ph * pw;
  const imgs = images ?? Int32Array.from({ length: n }, (_, i) => i);
  const count = imgs.length * gh * gw;
  const x = new Float32Array(count * d);
  const pixels = new Int32Array(count * pp);
  const image = new Int32Array(count);
  let p = 0;
  for (let t = 0; t < imgs.length; t++) {
    const i = imgs[t];
    for (let r = 0; r < gh; r++) {
      for (let c = 0; c < gw; c++, p++) {
        x.set(s.feats.data.subarray(((i * gh + r) * gw + c) * d, ((i * gh + r) * gw + c + 1) * d), p * d);
        image[p] = i;
        for (let y = 0; y < ph; y++) {
          const src = (i * h + r * ph + y) * w + c * pw;
          pixels.set(s.labels.data.subarray(src, src + pw), p * pp + y * pw);
        }
      }
    }
  }
  return { x: { shape: [count, d], data: x }, pixels, pp, image };
}

/**
 * Most frequent value of `vals[start + j*stride]`, j < len, smallest on ties.
 * `counts` is scratch, zero on entry and on exit, longer than the largest value.
 */
export function modeOf(
  vals: ArrayLike<number>,
  start: number,
  len: number,
  stride: number,
  counts: Int32Array,
): number {
  let best = -1, bestC = 0;
  for (let j = 0; j < len; j++) {
    const v = vals[start + j * stride];
    const c = ++counts[v];
    if (c > bestC || (c === bestC && v < best)) {
      best = v;
      bestC = c;
    }
  }
  for (let j = 0; j < len; j++) counts[vals[start + j * stride]] = 0;
  return best;
}

/** Largest label in an array plus one (size of a counting scratch buffer). */
export function labelSpan(...arrays: ArrayLike<number>[]): number {
  let m = 0;
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      if (a[i] < 0) throw new Error(`segmentation: negative label ${a[i]} at index ${i}`);
      if (a[i] > m) m = a[i];
    }
  }
  return m + 1;
}

/** Mode label of each patch. */
export function patchTargets(p: Patches): Int32Array {
  const n = p.image.length;
  const counts = new Int32Array(labelSpan(p.pixels));
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = modeOf(p.pixels, i * p.pp, p.pp, 1, counts);
  return out;
}

/** Keep the patches whose target is not an ignore label. */
export function keepLabelled(
  p: Patches,
  ignore: readonly number[] = IGNORE_LABELS,
): { patches: Patches; targets: Int32Array } {
  const all = patchTargets(p);
  const keep: number[] = [];
  for (let i = 0; i < all.length; i++) if (!ignore.includes(all[i])) keep.push(i);
  const d = p.x.shape[1];
  const x = new Float32Array(keep.length * d);
  const pixels = new Int32Array(keep.length * p.pp);
  const image = new Int32Array(keep.length);
  keep.forEach((src, i) => {
    x.set(p.x.data.subarray(src * d, (src + 1) * d), i * d);
    pixels.set(p.pixels.subarray(src * p.pp, (src + 1) * p.pp), i * p.pp);
    image[i] = p.image[src];
  });
  return {
    patches: { x: { shape: [keep.length, d], data: x }, pixels, pp: p.pp, image },
    targets: Int32Array.from(keep, (i) => all[i]),
  };
}

/** sklearn `StandardScaler` (population std; a constant channel keeps scale 1). */
export class StandardScaler {
  readonly mean: Float64Array;
  readonly scale: Float64Array;

  private constructor(mean: Float64Array, scale: Float64Array) {
    this.mean = mean;
    this.scale = scale;
  }

  static fit(x: HostTensor<Float32Array>): StandardScaler {
    const [n, d] = x.shape;
    if (n === 0) throw new Error("StandardScaler.fit: no training patches (every patch is ignored?)");
    const mean = new Float64Array(d), sq = new Float64Array(d);
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x.data[i * d + j];
    for (let j = 0; j < d; j++) mean[j] /= n;
    for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sq[j] += (x.data[i * d + j] - mean[j]) ** 2;
    const scale = sq.map((s) => Math.sqrt(s / n) || 1);
    return new StandardScaler(mean, scale);
  }

  /** Identity transform (for `standardize: false`). */
  static identity(d: number): StandardScaler {
    return new StandardScaler(new Float64Array(d), new Float64Array(d).fill(1));
  }

  transform(x: HostTensor<Float32Array>): HostTensor<Float32Array> {
    const [n, d] = x.shape;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) out[i * d + j] = (x.data[i * d + j] - this.mean[j]) / this.scale[j];
    }
    return { shape: [n, d], data: out };
  }
}
