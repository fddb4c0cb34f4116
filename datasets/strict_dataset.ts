/**
 * Strict data by default, for every reader of a dataset (`deno task bench`, `eval`, `pretrain`),
 * not only `deno task data check`: a data set that would silently shrink is an error.
 *
 * What counts as a problem is what `data check` reports: unlabelled images (a flat validation
 * folder without a label), class folders that are not train classes, empty class folders, stray
 * files, missing annotations, and files that do not decode. Without `allowMissing`:
 * - the layout problems (found by the directory listing, no decoding) are one error listing their
 *   paths, before any work starts;
 * - an unreadable file stops the run when it is reached (the loader's default), naming the file.
 *
 * With `allowMissing` (`--allow-missing`) every sample is decoded once up front, as `data check`
 * does, and the returned view leaves out each sample that has a problem, so that every epoch and
 * every probe sees the same, smaller data set and the skipped count is known before the run (to
 * be printed and recorded). The pass costs one decode of the split (seconds for the synthetic
 * default, minutes for ImageNet train on a GPU runner's cores); it runs only when asked for.
 *
 * @module
 */
import { checkDataset } from "./check.ts";
import { checkIndex, type ImageDataset, type Problem } from "./dataset.ts";

/** How many problem lines a message lists before "and N more". */
const LISTED = 20;

export interface StrictOptions {
  /** Skip (and count) what has a problem instead of failing. */
  allowMissing: boolean;
  /** Decodes in flight during the allowMissing pass (default 8). */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface StrictDataset {
  /** `ds` itself when nothing is skipped, else the view without the skipped samples. */
  dataset: ImageDataset;
  /** The problems skipped (empty unless `allowMissing`), sorted by path. */
  skipped: Problem[];
}

/** Problem lines for a message: the first `LISTED`, then how many more. */
export function listProblems(problems: readonly Problem[]): string {
  const lines = problems.slice(0, LISTED).map((p) => `  ${p.path}: ${p.problem}`);
  if (problems.length > LISTED) lines.push(`  ... and ${problems.length - LISTED} more`);
  return lines.join("\n");
}

/** The data set as strict reading allows it; throws listing the paths when it does not. */
export async function strictDataset(ds: ImageDataset, options: StrictOptions): Promise<StrictDataset> {
  if (!options.allowMissing) {
    if (ds.layoutProblems.length === 0) return { dataset: ds, skipped: [] };
    throw new Error(
      `${ds.description}: ${ds.layoutProblems.length} problem(s) would leave data out; fix them ` +
        "(`deno task data check` lists every one) or pass --allow-missing to skip them:\n" +
        listProblems(ds.layoutProblems),
    );
  }
  const report = await checkDataset(ds, { concurrency: options.concurrency });
  if (report.problems.length === 0) return { dataset: ds, skipped: [] };
  options.log?.(
    `${ds.description}: skipping ${report.problems.length} problem(s) (--allow-missing), ` +
      `${report.badSamples.length} of ${ds.length} listed samples left out:\n${listProblems(report.problems)}`,
  );
  return { dataset: withoutSamples(ds, new Set(report.badSamples)), skipped: report.problems };
}

/** `ds` without the samples in `drop` (indices renumbered densely, order kept). */
function withoutSamples(ds: ImageDataset, drop: Set<number>): ImageDataset {
  const keep = Array.from({ length: ds.length }, (_, i) => i).filter((i) => !drop.has(i));
  const description = ds.description;
  return {
    description,
    task: ds.task,
    split: ds.split,
    length: keep.length,
    numClasses: ds.numClasses,
    classNames: ds.classNames,
    ignoreLabels: ds.ignoreLabels,
    expected: ds.expected,
    layoutProblems: [],
    path: (i) => (checkIndex(description, i, keep.length), ds.path(keep[i])),
    label: (i) => (checkIndex(description, i, keep.length), ds.label(keep[i])),
    async load(i) {
      checkIndex(description, i, keep.length);
      return { ...(await ds.load(keep[i])), index: i };
    },
  };
}
