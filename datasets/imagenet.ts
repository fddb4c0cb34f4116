/**
 * ImageNet-1k adapter on the standard folder layout:
 *
 *   ROOT/train/<wnid>/*.JPEG
 *   ROOT/val/<wnid>/*.JPEG                       (folders, as torchvision's ImageFolder), or
 *   ROOT/val/*.JPEG + ROOT/LOC_val_solution.csv  (the Kaggle release: flat val, CSV labels), or
 *   ROOT/val/*.JPEG + ROOT/ILSVRC2012_devkit_t12/data/{ILSVRC2012_validation_ground_truth.txt,meta.mat}
 *                                                (the original release; the devkit files may also sit in ROOT)
 *
 * Class index = position of the wnid in the sorted list of train folders (torchvision's
 * convention, so top-1 numbers compare with PyTorch suites); samples are ordered by class,
 * then file name, as ImageFolder does. The synthetic default uses the same layout.
 * The devkit's ground truth holds ILSVRC2012_IDs (not sorted-wnid indices); `meta.mat` maps
 * them to wnids, as torchvision's `ImageNet` dataset does.
 *
 * @module
 */
import { decodeRgb } from "./decode.ts";
import { readMat } from "./matlab.ts";
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
    // List class folders 16 at a time (1,000 folders of ImageNet on network storage), in order.
    const listings: Promise<Deno.DirEntry[]>[] = [];
    const dirs = entries.filter((e) => e.isDirectory && classOf.has(e.name));
    for (let k = 0; k < dirs.length; k += 16) {
      const chunk = dirs.slice(k, k + 16).map((e) => readSortedDir(`${splitDir}/${e.name}`));
      await Promise.all(chunk);
      listings.push(...chunk);
    }
    let next = 0;
    for (const e of entries) {
      const path = `${splitDir}/${e.name}`;
      if (!e.isDirectory) {
        problems.push({ path, problem: `unexpected file (${split} has class folders, so files belong inside them)` });
        continue;
      }
      const label = classOf.get(e.name);
      if (label === undefined) {
        problems.push({ path, problem: `class folder '${e.name}' is not among the ${wnids.length} train classes` });
        continue;
      }
      const before = paths.length;
      addClassFolder(path, await listings[next++], label, paths, labels, problems);
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

function addClassFolder(
  dir: string,
  files: Deno.DirEntry[],
  label: number,
  paths: string[],
  labels: number[],
  problems: Problem[],
): void {
  for (const f of files) {
    const path = `${dir}/${f.name}`;
    if (f.isFile && IMAGE_EXT.test(f.name)) {
      paths.push(path);
      labels.push(label);
    } else {
      problems.push({ path, problem: "unexpected file (expected *.JPEG images)" });
    }
  }
}

/** Flat `val/*.JPEG` labelled by the Kaggle CSV or by the devkit's ground truth + meta.mat. */
async function listFlatVal(
  root: string,
  splitDir: string,
  entries: Deno.DirEntry[],
  classOf: Map<string, number>,
  paths: string[],
  labels: number[],
  problems: Problem[],
): Promise<void> {
  const { source, wnidOf } = await readFlatValLabels(root, splitDir);
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
        problem: wnid === undefined ? `no label in ${source}` : `label '${wnid}' is not a train class`,
      });
      continue;
    }
    paths.push(path);
    labels.push(label);
  }
}

/** Image stem -> wnid from `LOC_val_solution.csv` or the devkit files; `source` names the file used. */
async function readFlatValLabels(
  root: string,
  splitDir: string,
): Promise<{ source: string; wnidOf: Map<string, string> }> {
  const csvPath = `${root}/LOC_val_solution.csv`;
  const wnidOf = new Map<string, string>();
  const csv = await Deno.readTextFile(csvPath).catch(() => null);
  if (csv !== null) {
    // Kaggle: header "ImageId,PredictionString", rows "ILSVRC2012_val_00000001,n01751748 x1 y1 x2 y2 ...".
    for (const [n, line] of csv.split(/\r?\n/).entries()) {
      if (n === 0 || line.trim() === "") continue;
      const [id, pred] = line.split(",");
      const wnid = pred?.trim().split(/\s+/)[0];
      if (!id || !wnid) throw new Error(`${csvPath}:${n + 1}: expected "ImageId,wnid x1 y1 x2 y2 ...", got "${line}"`);
      wnidOf.set(id, wnid);
    }
    return { source: csvPath, wnidOf };
  }
  for (const dir of [`${root}/ILSVRC2012_devkit_t12/data`, root]) {
    const gtPath = `${dir}/ILSVRC2012_validation_ground_truth.txt`;
    const gt = await Deno.readTextFile(gtPath).catch(() => null);
    if (gt === null) continue;
    const metaPath = `${dir}/meta.mat`;
    const synsets = (await readMat(metaPath).catch((e) => {
      throw new Error(`${metaPath}: needed to map ${gtPath} ids to wnids: ${(e as Error).message}`);
    })).get("synsets");
    if (!Array.isArray(synsets)) throw new Error(`${metaPath}: no 'synsets' struct array`);
    const wnidOfId = new Map<number, string>();
    for (const s of synsets as Record<string, unknown>[]) {
      wnidOfId.set((s.ILSVRC2012_ID as number[])[0], s.WNID as string);
    }
    for (const [n, line] of gt.split(/\r?\n/).entries()) {
      if (line.trim() === "") continue;
      const wnid = wnidOfId.get(Number(line));
      if (wnid === undefined) {
        throw new Error(`${gtPath}:${n + 1}: id '${line}' is not an ILSVRC2012_ID in ${metaPath}`);
      }
      wnidOf.set(`ILSVRC2012_val_${String(n + 1).padStart(8, "0")}`, wnid);
    }
    return { source: gtPath, wnidOf };
  }
  throw new Error(
    `${splitDir}: flat validation folder but no labels: expected ${csvPath} (Kaggle), ` +
      `${root}/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt + meta.mat (devkit) ` +
      `or ${splitDir}/<wnid>/ folders`,
  );
}
