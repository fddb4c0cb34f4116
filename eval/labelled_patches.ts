/**
 * `LabelledPatches`: the training patches of the segmentation probes, prepared once per probe
 * run: patches whose mode label is not ignored, standardised (optionally rounded to bfloat16),
 * grouped into a few large blocks on the tensor backend. Blocks are kept while they fit a
 * byte budget and prepared again from the feature table otherwise, so memory stays bounded
 * and data that fits is read from disk once (the logistic regression passes over it hundreds
 * of times, the k-NN once per query chunk).
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import { chunks, concatArrays, type FeatureTable } from "./feature_table.ts";
import { imagesPerBlock, keepLabelled, readPatches, type StandardScaler } from "./seg_data.ts";
import { roundToBf16InPlace } from "./topk.ts";

/** One prepared block of training patches: standardised features on the backend, labels on the host. */
export interface LabelledBlock {
  x: tf.Tensor2D;
  pixels: Int32Array;
  targets: Int32Array;
}

/** The labelled patches of `images`, standardised, in blocks of about `blockBytes`. */
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
      const x = concatArrays(Float32Array, xs);
      const block = {
        x: tf.tensor2d(this.#bf16 ? roundToBf16InPlace(x) : x, [x.length / d, d]),
        pixels: concatArrays(Int32Array, px),
        targets: concatArrays(Int32Array, ts),
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
