/**
 * ImageNet-1k adapter on the standard folder layout:
 *
 *   ROOT/train/<wnid>/*.JPEG
 *   ROOT/val/<wnid>/*.JPEG                       (folders, as torchvision's ImageFolder), or
 *   ROOT/val/*.JPEG + ROOT/LOC_val_solution.csv  (the Kaggle release: flat val, CSV labels)
 *
 * Class index = position of the wnid in the sorted list of train folders (torchvision's
 * convention, so top-1 numbers compare with PyTorch suites); samples are ordered by class,
 * then file name, as ImageFolder does. The synthetic default uses the same layout.
 * Not supported: the devkit's `ILSVRC2012_validation_ground_truth.txt`, whose ids need the
 * MATLAB `meta.mat` to map to wnids (convert it to folders or the CSV first).
 *
 * @module
 */
import { decodeRgb } from "./decode.ts";
import {
  checkIndex,
  type ExpectedCounts,
  type ImageDataset,
  isDir,
  type Problem,
  readSortedDir,
  type Sample,
  type Split,
} from "./dataset.ts";

/** ILSVRC-2012 full sizes (train 1,281,167, val 50,000, 1,000 classes). */
export const IMAGENET_EXPECTED: Record<Split, ExpectedCounts> = {
  train: { images: 1_281_167, classes: 1000 },
  val: { images: 50_000, classes: 1000 },
};

const IMAGE_EXT = /\.(jpe?g|png)$/i;

export interface ImagenetOptions {
  /** Compare against the official sizes (false for the synthetic default). */
  expected?: boolean;
  /** Name used in messages (default "imagenet"). */
  name?: string;
}

/** Open one split of an ImageNet-layout folder (lists files; decodes nothing). */
export async function openImagenet(root: string, split: Split, options: ImagenetOptions = {}): Promise<ImageDataset> {
  const name = options.name ?? "imagenet";
  const problems: Problem[] = [];
  const classDir = (await isDir(`${root}/train`)) ? `${root}/train` : `${root}/${split}`;
  const wnids: string[] = [];
  for (const e of await readSortedDir(classDir)) {
    if (e.isDirectory) wnids.push(e.name); // stray files are reported by the split listing below
  }
  if (wnids.length === 0) {
    throw new Error(`${classDir}: no class folders found; expected ${root}/train/<wnid>/*.JPEG (ImageNet layout)`);
  }
  const classOf = new Map(wnids.map((w, i) => [w, i]));
  const paths: string[] = [];
  const labels: number[] = [];
  const splitDir = `${root}/${split}`;
  const entries = await readSortedDir(splitDir);
  if (entries.some((e) => e.isDirectory)) {
    for (const e of entries) {
      const path = `${splitDir}/${e.name}`;
      if (!e.isDirectory) {
        problems.push({ path, problem: "unexpected file (val has class folders, so files belong inside them)" });
        continue;
      }
      const label = classOf.get(e.name);
      if (label === undefined) {
        problems.push({ path, problem: `class folder '${e.name}' is not among the ${wnids.length} train classes` });
        continue;
      }
      const before = paths.length;
      await listClassFolder(path, label, paths, labels, problems);
      if (paths.length === before) problems.push({ path, problem: "empty class folder" });
    }
  } else {
    await listFlatVal(root, splitDir, entries, classOf, paths, labels, problems);
  }
  const description = `${name} ${split} (${root})`;
  return {
    description,
    task: "classification",
    split,
    length: paths.length,
    numClasses: wnids.length,
    classNames: wnids,
    ignoreLabels: [],
    expected: options.expected === false ? null : IMAGENET_EXPECTED[split],
    layoutProblems: problems,
    path: (i) => (checkIndex(description, i, paths.length), paths[i]),
    label: (i) => (checkIndex(description, i, paths.length), labels[i]),
    async load(i: number): Promise<Sample> {
      checkIndex(description, i, paths.length);
      const image = await decodeRgb(paths[i]);
      return { index: i, path: paths[i], image, label: labels[i], labelMap: null };
    },
  };
}

async function listClassFolder(
  dir: string,
  label: number,
  paths: string[],
  labels: number[],
  problems: Problem[],
): Promise<void> {
  for (const f of await readSortedDir(dir)) {
    const path = `${dir}/${f.name}`;
    if (f.isFile && IMAGE_EXT.test(f.name)) {
      paths.push(path);
      labels.push(label);
    } else {
      problems.push({ path, problem: "unexpected file (expected *.JPEG images)" });
    }
  }
}

/** Flat `val/*.JPEG` labelled by the Kaggle `LOC_val_solution.csv` (ImageId,PredictionString "wnid x y x y ..."). */
async function listFlatVal(
  root: string,
  splitDir: string,
  entries: Deno.DirEntry[],
  classOf: Map<string, number>,
  paths: string[],
  labels: number[],
  problems: Problem[],
): Promise<void> {
  const csvPath = `${root}/LOC_val_solution.csv`;
  let csv: string;
  try {
    csv = await Deno.readTextFile(csvPath);
  } catch {
    throw new Error(
      `${splitDir}: flat validation folder but no labels: expected ${csvPath} (Kaggle) or ${splitDir}/<wnid>/ folders`,
    );
  }
  const wnidOf = new Map<string, string>();
  for (const [n, line] of csv.split(/\r?\n/).entries()) {
    if (n === 0 || line.trim() === "") continue; // header "ImageId,PredictionString"
    const [id, pred] = line.split(",");
    const wnid = pred?.trim().split(/\s+/)[0];
    if (!id || !wnid) throw new Error(`${csvPath}:${n + 1}: expected "ImageId,wnid x1 y1 x2 y2 ...", got "${line}"`);
    wnidOf.set(id, wnid);
  }
  for (const e of entries) {
    const path = `${splitDir}/${e.name}`;
    if (!e.isFile || !IMAGE_EXT.test(e.name)) {
      problems.push({ path, problem: "unexpected file" });
      continue;
    }
    const wnid = wnidOf.get(e.name.replace(IMAGE_EXT, ""));
    const label = wnid === undefined ? undefined : classOf.get(wnid);
    if (label === undefined) {
      problems.push({
        path,
        problem: wnid === undefined ? `no row in ${csvPath}` : `label '${wnid}' is not a train class`,
      });
      continue;
    }
    paths.push(path);
    labels.push(label);
  }
}
