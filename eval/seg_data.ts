/**
 * Patch-level data for the segmentation probes (capi: eval_segmentation.py, SPEC 1.10):
 * every patch token carries the `ph x pw` pixel labels it covers, its training target is
 * the mode of those labels (smallest label on ties, as torch `mode`), and patches whose
 * target is an ignore label (0/255) are dropped from training. Features are standardised
 * per channel (sklearn `StandardScaler`) with statistics of every patch of the images the
 * classifiers are fitted on (the official code fits it on all 90% "train" patch tokens,
 * ignored ones included, and keeps it for the final refit on train + val).
 *
 * Everything streams over image blocks of a `FeatureTable` (labelled_patches.ts prepares the
 * training patches), so memory is bounded whatever the number of images.
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";
import { IGNORE_LABELS } from "./metrics.ts";
import { chunks, type FeatureTable, requireField } from "./feature_table.ts";

/** Features and label maps of a block of images at the eval resolution. */
export interface SegFeatures {
  /** Patch tokens `[n, Gh, Gw, D]`. */
  feats: HostTensor<Float32Array>;
  /** Pixel labels `[n, H, W]` with `H = Gh*ph`, `W = Gw*pw`. */
  labels: HostTensor<Int32Array>;
}

/** Patches of a block: features `[P, D]`, pixel labels `[P, ph*pw]`. */
export interface Patches {
  x: HostTensor<Float32Array>;
  pixels: Int32Array;
  pp: number;
}

/** Cut a block of images into patches (row-major over the grid). */
export function toPatches(s: SegFeatures): Patches {
  const [n, gh, gw, d] = s.feats.shape;
  const [nl, h, w] = s.labels.shape;
  if (nl !== n) throw new Error(`segmentation: ${n} feature maps but ${nl} label maps`);
  if (h % gh !== 0 || w % gw !== 0) {
    throw new Error(`segmentation: label maps ${h}x${w} do not split into the ${gh}x${gw} patch grid`);
  }
  const ph = h / gh, pw = w / gw, pp = ph * pw;
  const pixels = new Int32Array(n * gh * gw * pp);
  let p = 0;
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < gh; r++) {
      for (let c = 0; c < gw; c++, p++) {
        for (let y = 0; y < ph; y++) {
          const src = (i * h + r * ph + y) * w + c * pw;
          pixels.set(s.labels.data.subarray(src, src + pw), p * pp + y * pw);
        }
      }
    }
  }
  return { x: { shape: [n * gh * gw, d], data: s.feats.data }, pixels, pp };
}

/** Patches of the images `rows` of a table. */
export async function readPatches(t: FeatureTable, rows: ArrayLike<number>): Promise<Patches> {
  requireField(t, "patches", "segmentation probe");
  requireField(t, "labelMap", "segmentation probe");
  const [gh, gw, d] = t.dims.patches!, [h, w] = t.dims.labelMap!;
  const n = rows.length;
  return toPatches({
    feats: { shape: [n, gh, gw, d], data: await t.read("patches", rows) },
    labels: { shape: [n, h, w], data: await t.read("labelMap", rows) },
  });
}

/** Images per block so that a block's patch tokens take about `bytes`. */
export function imagesPerBlock(t: FeatureTable, bytes = 32 * 2 ** 20): number {
  const [gh, gw, d] = t.dims.patches!;
  return Math.max(1, Math.min(t.blockRows, Math.floor(bytes / (4 * gh * gw * d))));
}

/** The patches of `images` in blocks. */
export async function* patchBlocks(t: FeatureTable, images: Int32Array): AsyncGenerator<Patches> {
  for (const c of chunks(images, imagesPerBlock(t))) yield await readPatches(t, c);
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
  const n = p.pixels.length / p.pp;
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
  keep.forEach((src, i) => {
    x.set(p.x.data.subarray(src * d, (src + 1) * d), i * d);
    pixels.set(p.pixels.subarray(src * p.pp, (src + 1) * p.pp), i * p.pp);
  });
  return {
    patches: { x: { shape: [keep.length, d], data: x }, pixels, pp: p.pp },
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

  /** Fit on rows streamed in blocks (Chan et al.'s pairwise merge of means and squared deviations, float64). */
  static async fitBlocks(blocks: AsyncIterable<HostTensor<Float32Array>>): Promise<StandardScaler> {
    let n = 0, mean: Float64Array | null = null, m2: Float64Array | null = null;
    for await (const x of blocks) {
      const [nb, d] = x.shape;
      if (nb === 0) continue;
      const bm = new Float64Array(d), bq = new Float64Array(d);
      for (let i = 0; i < nb; i++) for (let j = 0; j < d; j++) bm[j] += x.data[i * d + j];
      for (let j = 0; j < d; j++) bm[j] /= nb;
      for (let i = 0; i < nb; i++) for (let j = 0; j < d; j++) bq[j] += (x.data[i * d + j] - bm[j]) ** 2;
      if (!mean || !m2) {
        [mean, m2, n] = [bm, bq, nb];
        continue;
      }
      const tot = n + nb;
      for (let j = 0; j < d; j++) {
        const delta = bm[j] - mean[j];
        mean[j] += (delta * nb) / tot;
        m2[j] += bq[j] + (delta * delta * n * nb) / tot;
      }
      n = tot;
    }
    if (!mean || !m2) throw new Error("StandardScaler: no training patches to fit on");
    return new StandardScaler(mean, m2.map((s) => Math.sqrt(s / n) || 1));
  }

  static fit(x: HostTensor<Float32Array>): Promise<StandardScaler> {
    return StandardScaler.fitBlocks((async function* () {
      yield x;
    })());
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

/** The scaler of a probe: fitted on every patch of `images` (official), or the identity. */
export function fitScaler(t: FeatureTable, images: Int32Array, standardize: boolean): Promise<StandardScaler> {
  if (!standardize) return Promise.resolve(StandardScaler.identity(t.dims.patches![2]));
  return StandardScaler.fitBlocks((async function* () {
    for await (const p of patchBlocks(t, images)) yield p.x;
  })());
}
