/**
 * Patch-level data for the segmentation probes (capi: eval_segmentation.py, SPEC 1.10):
 * every patch token carries the `ph x pw` pixel labels it covers, its training target is
 * the mode of those labels (smallest label on ties, as torch `mode`), and patches whose
 * target is an ignore label (0/255) are dropped from training. Features are standardised
 * per channel (sklearn `StandardScaler`) with statistics of every patch of the images the
 * classifiers are fitted on (the official code fits it on all 90% "train" patch tokens,
 * ignored ones included, and keeps it for the final refit on train + val).
 *
 * Everything streams over image blocks of a `FeatureTable`; `LabelledPatches` keeps the
 * prepared training blocks on the tensor backend up to a byte budget and re-reads the rest,
 * so memory is bounded whatever the number of images.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import type { HostTensor } from "../model/fixture.ts";
import { IGNORE_LABELS } from "./metrics.ts";
import { chunks, type FeatureTable, requireField } from "./feature_table.ts";
import { roundToBf16InPlace } from "./topk.ts";

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

/** One prepared block of training patches: standardised features on the backend, labels on the host. */
export interface LabelledBlock {
  x: tf.Tensor2D;
  pixels: Int32Array;
  targets: Int32Array;
}

/**
 * The labelled (non-ignored) patches of `images`, standardised, in blocks of about
 * `blockBytes` (few, large blocks: a pass over them is a handful of backend calls). Blocks are
 * kept on the backend while they fit in `budgetBytes` and prepared again from the table
 * otherwise, so memory stays bounded and data that fits is read from disk once.
 */
export class LabelledPatches {
  readonly #t: FeatureTable;
  readonly #images: Int32Array;
  readonly #scaler: StandardScaler;
  readonly #budget: number;
  readonly #bf16: boolean;
  readonly #blockBytes: number;
  readonly #kept: LabelledBlock[] = [];
  #count: number | null = null;
  #keptBytes = 0;
  /** Images the kept blocks cover. */
  #keptImages = 0;
  #complete = false;

  /** `roundBf16`: round the standardised features to bfloat16 (the official k-NN's feature dtype). */
  constructor(
    t: FeatureTable,
    images: Int32Array,
    scaler: StandardScaler,
    budgetBytes: number,
    o: { roundBf16?: boolean; blockBytes?: number } = {},
  ) {
    this.#t = t;
    this.#images = images;
    this.#scaler = scaler;
    this.#budget = budgetBytes;
    this.#bf16 = o.roundBf16 ?? false;
    this.#blockBytes = o.blockBytes ?? 32 * 2 ** 20;
  }

  /** Number of labelled patches (one pass over the blocks, which also fills the kept ones). */
  async count(): Promise<number> {
    if (this.#count === null) {
      let n = 0;
      for await (const b of this.blocks()) n += b.targets.length;
      this.#count = n;
    }
    return this.#count;
  }

  /** Prepared blocks from image `from` on, each with the number of images read so far. */
  async *#prepare(from: number): AsyncGenerator<{ block: LabelledBlock; images: number }> {
    let xs: Float32Array[] = [], px: Int32Array[] = [], ts: Int32Array[] = [], bytes = 0, images = from;
    const d = this.#t.dims.patches![2];
    const make = (): LabelledBlock => {
      const x = concatF32(xs);
      const block = {
        x: tf.tensor2d(this.#bf16 ? roundToBf16InPlace(x) : x, [x.length / d, d]),
        pixels: concatI32(px),
        targets: concatI32(ts),
      };
      xs = [], px = [], ts = [], bytes = 0;
      return block;
    };
    const ipb = imagesPerBlock(this.#t);
    for (const imgs of chunks(this.#images.subarray(from), ipb)) {
      const { patches, targets } = keepLabelled(await readPatches(this.#t, imgs));
      images += imgs.length;
      if (targets.length > 0) {
        xs.push(this.#scaler.transform(patches.x).data);
        px.push(patches.pixels);
        ts.push(targets);
        bytes += 4 * (patches.x.data.length + patches.pixels.length + targets.length);
      }
      if (bytes >= this.#blockBytes) yield { block: make(), images };
    }
    if (ts.length > 0) yield { block: make(), images };
  }

  /** Every block, in a fixed order. A block that is not kept is valid until the next one is requested. */
  async *blocks(): AsyncGenerator<LabelledBlock> {
    for (const b of this.#kept) yield b;
    if (this.#complete) return;
    let keeping = true;
    for await (const { block, images } of this.#prepare(this.#keptImages)) {
      const bytes = 4 * (block.x.size + block.pixels.length + block.targets.length);
      if (keeping && this.#keptBytes + bytes <= this.#budget) {
        this.#kept.push(block);
        this.#keptBytes += bytes;
        this.#keptImages = images;
        yield block;
      } else {
        keeping = false;
        try {
          yield block;
        } finally {
          block.x.dispose();
        }
      }
    }
    if (keeping) this.#complete = true;
  }

  dispose(): void {
    for (const b of this.#kept) b.x.dispose();
    this.#kept.length = 0;
  }
}

function concatF32(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatI32(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
