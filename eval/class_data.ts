/**
 * `ClassData` over extracted features (the `cached` class-probe input): train and val
 * `FeatureTable`s, a seeded held-out part of train, training batches drawn epoch by epoch from
 * a seeded permutation of the fit rows, and every read a batch or a chunk of rows, so memory
 * does not depend on the split's size.
 *
 * @module
 */
import { Rng } from "../model/rng.ts";
import type { GridBatch } from "./grid_train.ts";
import { checkLabels, type ClassData, rowsTensor } from "./class_probe.ts";
import { type FeatureSource, type SourceScratch, sourceShape, tableSourceRows } from "./feature_sources.ts";
import { allRows, chunks, type FeatureTable } from "./feature_table.ts";
import { holdoutSplit } from "./splits.ts";

/** Bytes of one evaluation chunk's inputs (memory only). */
const CHUNK_BYTES = 16 * 2 ** 20;

function labelsOf(t: FeatureTable, split: string): Int32Array {
  if (!t.labels) {
    throw new Error(`${split} features carry no class labels (a segmentation dataset for a classification probe?)`);
  }
  return t.labels;
}

/** Class-probe input streamed from feature tables. */
export function cachedClassData(
  train: FeatureTable,
  val: FeatureTable,
  sources: FeatureSource[],
  o: { classes: number; holdoutFraction: number; seed: number },
): ClassData {
  const ytr = labelsOf(train, "train"), yva = labelsOf(val, "val");
  checkLabels(ytr, o.classes, "train");
  checkLabels(yva, o.classes, "val");
  const shapes = Object.fromEntries(sources.map((s) => [s, sourceShape(s, train.dims)]));
  for (const s of sources) {
    if (JSON.stringify(sourceShape(s, val.dims)) !== JSON.stringify(shapes[s])) {
      throw new Error(
        `class probe: source '${s}' has shape [${sourceShape(s, val.dims)}] on val, [${shapes[s]}] on train`,
      );
    }
  }
  // Shared by linear, attentive and kNN: the same samples pick every probe's hyper-parameters.
  const split = holdoutSplit(train.length, o.holdoutFraction, o.seed, "class-holdout");
  const rowBytes = sources.reduce((a, s) => a + 4 * shapes[s].reduce((x, y) => x * y, 1), 0);
  const chunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));

  // One set of buffers per stream: a batch is uploaded before the next is read, so they are
  // reused instead of leaving ~16 MiB of garbage per chunk for the GC (peak RSS would grow with N).
  const batchOf = async (t: FeatureTable, labels: Int32Array, rows: Int32Array, scratch: SourceScratch) => {
    const inputs: GridBatch["inputs"] = {};
    for (const s of sources) inputs[s] = rowsTensor(await tableSourceRows(t, s, rows, scratch), shapes[s]);
    return { inputs, labels: Int32Array.from(rows, (r) => labels[r]) };
  };
  async function* over(t: FeatureTable, labels: Int32Array, rows: Int32Array): AsyncGenerator<GridBatch> {
    const scratch: SourceScratch = {};
    for (const c of chunks(rows, chunk)) yield await batchOf(t, labels, c, scratch);
  }
  return {
    shapes,
    fitCount: split.fit.length,
    async *trainBatches(batchSize: number) {
      const rng = Rng.from(o.seed, "eval", "class-batches");
      const n = split.fit.length;
      let order = rng.fork("epoch", 0).permutation(n), epoch = 0, pos = 0;
      const rows = new Int32Array(batchSize);
      const scratch: SourceScratch = {};
      for (;;) {
        for (let i = 0; i < batchSize; i++) {
          if (pos === n) {
            order = rng.fork("epoch", ++epoch).permutation(n);
            pos = 0;
          }
          rows[i] = split.fit[order[pos++]];
        }
        yield await batchOf(train, ytr, rows, scratch);
      }
    },
    holdout: () => over(train, ytr, split.hold),
    val: () => over(val, yva, allRows(val.length)),
  };
}
