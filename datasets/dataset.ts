/**
 * The `ImageDataset` contract that every adapter (ImageNet, ADE20K, the synthetic default)
 * implements, and the sample and problem types the loader and `data check` share.
 *
 * A dataset is an indexed list of files opened once (directory listing only, no decoding);
 * `load(i)` decodes sample `i` and throws a `BadSampleError` naming the file when it is
 * unusable. Label conventions:
 * - classification: `label(i)` in `[0, numClasses)` (torchvision: index of the sorted
 *   class-folder names);
 * - segmentation: `label(i) = -1`, and the sample carries a label map whose values are the
 *   ADE20K convention `1..numClasses` (class `v` is `classNames[v - 1]`), with the values in
 *   `ignoreLabels` (0 "other", 255) ignored by metrics.
 *
 * @module
 */
import type { Pixels } from "./resample.ts";

export type Split = "train" | "val";
export type Task = "classification" | "segmentation";

/** One decoded sample: RGB `[H, W, 3]`, and for segmentation the label map `[H, W]`. */
export interface Sample {
  index: number;
  path: string;
  image: Pixels;
  label: number;
  labelMap: Pixels | null;
}

/** Something wrong with one file (or folder) of a dataset. */
export interface Problem {
  path: string;
  problem: string;
}

/** Full-size counts of the official release, printed next to what was found. */
export interface ExpectedCounts {
  images: number;
  classes: number;
}

/** An indexed, lazily decoded image dataset (one split). */
export interface ImageDataset {
  /** e.g. `imagenet train (/data/imagenet)`. */
  readonly description: string;
  readonly task: Task;
  readonly split: Split;
  readonly length: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Label-map values that carry no class (segmentation); empty for classification. */
  readonly ignoreLabels: readonly number[];
  /** Counts of the official full-size split, or null for the synthetic default. */
  readonly expected: ExpectedCounts | null;
  /** Layout problems found while listing (unexpected files, empty class folders, ...). */
  readonly layoutProblems: readonly Problem[];
  /** Path of sample `i`'s image file. */
  path(i: number): string;
  /** Class of sample `i` (classification) or -1 (segmentation); needs no decoding. */
  label(i: number): number;
  /** Decode sample `i`; throws `BadSampleError` naming the file when it is unusable. */
  load(i: number): Promise<Sample>;
}

/** Names in `dir`, sorted by code unit (Python's `sorted`, so indices match torchvision). */
export async function readSortedDir(dir: string): Promise<Deno.DirEntry[]> {
  const entries: Deno.DirEntry[] = [];
  try {
    for await (const e of Deno.readDir(dir)) entries.push(e);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`${dir}: folder not found`);
    throw e;
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Whether `path` exists and is a directory. */
export async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** Throws a clear error for an index outside `[0, length)`. */
export function checkIndex(description: string, i: number, length: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw new RangeError(`${description}: sample index ${i} is outside [0, ${length})`);
  }
}
