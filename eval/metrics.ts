/**
 * Evaluation metrics with exact known answers: classification top-1, and segmentation
 * mIoU / pixel accuracy exactly as the CAPI segmentation eval computes them
 * (capi: eval_segmentation.py, sklearn `jaccard_score(gt, pred, average="macro")`).
 *
 * Segmentation rules (SPEC 1.10):
 * - only pixels whose ground truth is not an ignore label (0 and 255) are scored;
 * - the class set is the union of labels present in the ground truth or the prediction of
 *   those pixels, so a predicted 0/255 counts as a class whose IoU is 0;
 * - per class `|P ∩ G| / |P ∪ G|`, averaged with equal weight (macro).
 *
 * @module
 */

/** Labels never scored as ground truth (ADE20K "other" and the usual void label). */
export const IGNORE_LABELS: readonly number[] = [0, 255];

/** Fraction of `pred[i] === gt[i]`. Throws on empty or mismatched inputs. */
export function top1(pred: ArrayLike<number>, gt: ArrayLike<number>): number {
  if (pred.length !== gt.length) {
    throw new Error(`top1: ${pred.length} predictions for ${gt.length} labels`);
  }
  if (gt.length === 0) throw new Error("top1: no samples to score");
  let hit = 0;
  for (let i = 0; i < gt.length; i++) if (pred[i] === gt[i]) hit++;
  return hit / gt.length;
}

/** Index of the largest value in each row of a row-major `[n, c]` score matrix (first on ties). */
export function argmaxRows(scores: ArrayLike<number>, n: number, c: number): Int32Array {
  if (scores.length !== n * c) throw new Error(`argmaxRows: ${scores.length} scores, expected ${n}x${c}`);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestV = scores[i * c];
    for (let j = 1; j < c; j++) {
      const v = scores[i * c + j];
      if (v > bestV) {
        bestV = v;
        best = j;
      }
    }
    out[i] = best;
  }
  return out;
}

/** Result of scoring a segmentation. */
export interface SegScores {
  miou: number;
  pixelAcc: number;
  /** Classes averaged in `miou` (union of gt and predicted labels on scored pixels). */
  classes: number;
  /** Pixels scored (gt not ignored). */
  pixels: number;
  /** IoU per class label, for reports. */
  perClass: Map<number, number>;
}

/**
 * Streaming confusion counts for mIoU: feed label maps image by image, read the scores
 * at the end. Memory is three counters per label seen, independent of the image count.
 */
export class SegMetricAccumulator {
  readonly #ignore: Set<number>;
  readonly #gt = new Map<number, number>();
  readonly #pred = new Map<number, number>();
  readonly #inter = new Map<number, number>();
  #pixels = 0;
  #correct = 0;

  constructor(ignore: readonly number[] = IGNORE_LABELS) {
    this.#ignore = new Set(ignore);
  }

  /** Add one or more label maps (same length, any layout as long as both agree). */
  add(pred: ArrayLike<number>, gt: ArrayLike<number>): void {
    if (pred.length !== gt.length) {
      throw new Error(`SegMetricAccumulator.add: ${pred.length} predicted pixels for ${gt.length} labelled pixels`);
    }
    const inc = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
    for (let i = 0; i < gt.length; i++) {
      const g = gt[i];
      if (this.#ignore.has(g)) continue;
      const p = pred[i];
      this.#pixels++;
      inc(this.#gt, g);
      inc(this.#pred, p);
      if (p === g) {
        this.#correct++;
        inc(this.#inter, g);
      }
    }
  }

  scores(): SegScores {
    if (this.#pixels === 0) throw new Error("SegMetricAccumulator: no scored pixels (every gt pixel is ignored)");
    const labels = new Set([...this.#gt.keys(), ...this.#pred.keys()]);
    const perClass = new Map<number, number>();
    let sum = 0;
    for (const c of [...labels].sort((a, b) => a - b)) {
      const i = this.#inter.get(c) ?? 0;
      const union = (this.#gt.get(c) ?? 0) + (this.#pred.get(c) ?? 0) - i;
      const iou = i / union; // union >= 1: c was seen in gt or pred
      perClass.set(c, iou);
      sum += iou;
    }
    return {
      miou: sum / labels.size,
      pixelAcc: this.#correct / this.#pixels,
      classes: labels.size,
      pixels: this.#pixels,
      perClass,
    };
  }
}

/** mIoU and pixel accuracy of one prediction against one ground truth (see the module doc). */
export function segScores(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  ignore: readonly number[] = IGNORE_LABELS,
): SegScores {
  const acc = new SegMetricAccumulator(ignore);
  acc.add(pred, gt);
  return acc.scores();
}
