/**
 * `checkDataset`: read every file of a split once and report counts and every problem with
 * its file path (what `deno task data check` prints). Decoding uses the same `load(i)` as
 * training, so a file that passes here loads in training and vice versa.
 *
 * @module
 */
import type { ExpectedCounts, ImageDataset, Problem } from "./dataset.ts";
import { BadSampleError } from "./decode.ts";

export interface CheckReport {
  description: string;
  task: ImageDataset["task"];
  images: number;
  /** Classification: classes with at least one readable image; segmentation: label values seen. */
  classesFound: number;
  numClasses: number;
  expected: ExpectedCounts | null;
  /** Segmentation: pixel count per label value 0..255 over readable samples. */
  labelHistogram: Float64Array | null;
  problems: Problem[];
  /** Indices of the samples that failed to load (unreadable, missing annotation, bad labels), ascending. */
  badSamples: number[];
}

/** Decode every sample of `ds` (bounded concurrency) and collect its problems. */
export async function checkDataset(
  ds: ImageDataset,
  options: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<CheckReport> {
  const problems: Problem[] = [...ds.layoutProblems];
  const seg = ds.task === "segmentation";
  const histogram = seg ? new Float64Array(256) : null;
  const perClass = new Int32Array(ds.numClasses);
  const badSamples: number[] = [];
  let next = 0, done = 0;
  const worker = async () => {
    while (next < ds.length) {
      const i = next++;
      try {
        const s = await ds.load(i);
        if (histogram && s.labelMap) { for (const v of s.labelMap.data) histogram[v]++; }
        else perClass[s.label]++;
      } catch (e) {
        if (!(e instanceof BadSampleError)) throw e;
        badSamples.push(i);
        // A missing annotation is already listed by the layout scan.
        if (!problems.some((p) => p.path === e.path && e.reason.startsWith("missing annotation"))) {
          problems.push({ path: e.path, problem: e.reason });
        }
      }
      options.onProgress?.(++done, ds.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const classesFound = histogram
    ? histogram.reduce((n, c, v) => n + (c > 0 && !ds.ignoreLabels.includes(v) ? 1 : 0), 0)
    : perClass.reduce((n, c) => n + (c > 0 ? 1 : 0), 0);
  return {
    description: ds.description,
    task: ds.task,
    images: ds.length,
    classesFound,
    numClasses: ds.numClasses,
    expected: ds.expected,
    labelHistogram: histogram,
    problems,
    badSamples: badSamples.sort((a, b) => a - b),
  };
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** Human-readable report lines (counts, expected sizes, histogram, problems). */
export function formatReport(r: CheckReport, classNames: readonly string[]): string[] {
  const exp = r.expected;
  const lines = [
    `${r.description}: ${fmt(r.images)} images${exp ? ` (full size ${fmt(exp.images)})` : ""}, ` +
    `${r.classesFound} of ${r.numClasses} classes present${exp ? ` (full size ${fmt(exp.classes)})` : ""}`,
  ];
  if (r.labelHistogram) {
    const total = r.labelHistogram.reduce((a, b) => a + b, 0) || 1;
    lines.push("  label histogram (value name: pixels, share):");
    r.labelHistogram.forEach((c, v) => {
      if (c === 0) return;
      const name = v === 0
        ? "(other, ignored)"
        : v === 255
        ? "(unlabelled, ignored)"
        : classNames[v - 1] ?? "(out of range)";
      lines.push(`    ${String(v).padStart(3)} ${name}: ${fmt(c)} (${((100 * c) / total).toFixed(2)}%)`);
    });
  }
  lines.push(r.problems.length === 0 ? "  no problems" : `  ${r.problems.length} problem(s):`);
  for (const p of r.problems) lines.push(`    ${p.path}: ${p.problem}`);
  return lines;
}
