/**
 * ADE20K (SceneParsing, ADEChallengeData2016) adapter:
 *
 *   ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg
 *   ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png   (same stem)
 *
 * (ROOT may also be the ADEChallengeData2016 folder itself.) Annotations are 8-bit
 * grayscale PNGs: value v in 1..150 is class `ADE20K_CLASSES[v - 1]`, 0 is "other" and
 * 255 is unlabelled; both are ignored (SPEC 1.10). A missing annotation, an annotation of a
 * different size than its image, or a value above 150 other than 255 is a bad sample.
 * The synthetic default writes the same layout with its own (fewer) classes.
 *
 * @module
 */
import { BadSampleError, decodeLabels, decodeRgb } from "./decode.ts";
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

/** The 150 SceneParsing classes (first name of each `objectInfo150.csv` row, as in mmsegmentation). */
export const ADE20K_CLASSES: readonly string[] = [
  "wall",
  "building",
  "sky",
  "floor",
  "tree",
  "ceiling",
  "road",
  "bed",
  "windowpane",
  "grass",
  "cabinet",
  "sidewalk",
  "person",
  "earth",
  "door",
  "table",
  "mountain",
  "plant",
  "curtain",
  "chair",
  "car",
  "water",
  "painting",
  "sofa",
  "shelf",
  "house",
  "sea",
  "mirror",
  "rug",
  "field",
  "armchair",
  "seat",
  "fence",
  "desk",
  "rock",
  "wardrobe",
  "lamp",
  "bathtub",
  "railing",
  "cushion",
  "base",
  "box",
  "column",
  "signboard",
  "chest of drawers",
  "counter",
  "sand",
  "sink",
  "skyscraper",
  "fireplace",
  "refrigerator",
  "grandstand",
  "path",
  "stairs",
  "runway",
  "case",
  "pool table",
  "pillow",
  "screen door",
  "stairway",
  "river",
  "bridge",
  "bookcase",
  "blind",
  "coffee table",
  "toilet",
  "flower",
  "book",
  "hill",
  "bench",
  "countertop",
  "stove",
  "palm",
  "kitchen island",
  "computer",
  "swivel chair",
  "boat",
  "bar",
  "arcade machine",
  "hovel",
  "bus",
  "towel",
  "light",
  "truck",
  "tower",
  "chandelier",
  "awning",
  "streetlight",
  "booth",
  "television receiver",
  "airplane",
  "dirt track",
  "apparel",
  "pole",
  "land",
  "bannister",
  "escalator",
  "ottoman",
  "bottle",
  "buffet",
  "poster",
  "stage",
  "van",
  "ship",
  "fountain",
  "conveyer belt",
  "canopy",
  "washer",
  "plaything",
  "swimming pool",
  "stool",
  "barrel",
  "basket",
  "waterfall",
  "tent",
  "bag",
  "minibike",
  "cradle",
  "oven",
  "ball",
  "food",
  "step",
  "tank",
  "trade name",
  "microwave",
  "pot",
  "animal",
  "bicycle",
  "lake",
  "dishwasher",
  "screen",
  "blanket",
  "sculpture",
  "hood",
  "sconce",
  "vase",
  "traffic light",
  "tray",
  "ashcan",
  "fan",
  "pier",
  "crt screen",
  "plate",
  "monitor",
  "bulletin board",
  "shower",
  "radiator",
  "glass",
  "clock",
  "flag",
];

/** ADEChallengeData2016 full sizes (training 20,210, validation 2,000, 150 classes). */
export const ADE20K_EXPECTED: Record<Split, ExpectedCounts> = {
  train: { images: 20_210, classes: 150 },
  val: { images: 2_000, classes: 150 },
};

/** Label values that are never a class: 0 ("other") and 255 (unlabelled). */
export const ADE20K_IGNORE: readonly number[] = [0, 255];

const FOLDER: Record<Split, string> = { train: "training", val: "validation" };

export interface Ade20kOptions {
  /** Class names (label v is `classNames[v - 1]`); default the 150 ADE20K classes. */
  classNames?: readonly string[];
  /** Compare against the official sizes (false for the synthetic default). */
  expected?: boolean;
  /** Name used in messages (default "ade20k"). */
  name?: string;
}

/** Open one split of an ADE20K-layout folder (lists files; decodes nothing). */
export async function openAde20k(root: string, split: Split, options: Ade20kOptions = {}): Promise<ImageDataset> {
  const name = options.name ?? "ade20k";
  const classNames = options.classNames ?? ADE20K_CLASSES;
  const base = (await isDir(`${root}/ADEChallengeData2016`)) ? `${root}/ADEChallengeData2016` : root;
  const imageDir = `${base}/images/${FOLDER[split]}`;
  const annDir = `${base}/annotations/${FOLDER[split]}`;
  if (!(await isDir(imageDir))) {
    throw new Error(`${imageDir}: folder not found; expected ROOT/ADEChallengeData2016/images/${FOLDER[split]}/*.jpg`);
  }
  const problems: Problem[] = [];
  const annotations = new Set<string>();
  if (await isDir(annDir)) {
    for (const e of await readSortedDir(annDir)) {
      if (e.isFile && e.name.endsWith(".png")) annotations.add(e.name);
      else problems.push({ path: `${annDir}/${e.name}`, problem: "unexpected file (expected *.png annotations)" });
    }
  } else {
    problems.push({ path: annDir, problem: "annotation folder not found" });
  }
  const images: string[] = [];
  const anns: string[] = [];
  for (const e of await readSortedDir(imageDir)) {
    const path = `${imageDir}/${e.name}`;
    if (!e.isFile || !/\.jpe?g$/i.test(e.name)) {
      problems.push({ path, problem: "unexpected file (expected *.jpg images)" });
      continue;
    }
    const ann = e.name.replace(/\.jpe?g$/i, ".png");
    images.push(path);
    anns.push(`${annDir}/${ann}`);
    // A missing annotation stays a sample: loading it fails (or is skipped) like any bad sample.
    if (!annotations.delete(ann)) {
      problems.push({ path: `${annDir}/${ann}`, problem: `missing annotation for ${path}` });
    }
  }
  for (const ann of annotations) {
    problems.push({ path: `${annDir}/${ann}`, problem: "unexpected file (annotation without image)" });
  }

  const description = `${name} ${split} (${root})`;
  const maxLabel = classNames.length;
  return {
    description,
    task: "segmentation",
    split,
    length: images.length,
    numClasses: classNames.length,
    classNames,
    ignoreLabels: ADE20K_IGNORE,
    expected: options.expected === false ? null : ADE20K_EXPECTED[split],
    layoutProblems: problems,
    path: (i) => (checkIndex(description, i, images.length), images[i]),
    label: (i) => (checkIndex(description, i, images.length), -1),
    async load(i: number): Promise<Sample> {
      checkIndex(description, i, images.length);
      // Both decodes run at once; the image's error wins so the message does not depend on timing.
      const [img, ann] = await Promise.allSettled([decodeRgb(images[i]), decodeAnnotation(anns[i], images[i])]);
      if (img.status === "rejected") throw img.reason;
      if (ann.status === "rejected") throw ann.reason;
      const image = img.value, labelMap = ann.value;
      if (labelMap.width !== image.width || labelMap.height !== image.height) {
        throw new BadSampleError(
          anns[i],
          `annotation is ${labelMap.width}x${labelMap.height} but its image ${
            images[i]
          } is ${image.width}x${image.height}`,
        );
      }
      checkLabelValues(anns[i], labelMap.data, maxLabel);
      return { index: i, path: images[i], image, label: -1, labelMap };
    },
  };
}

async function decodeAnnotation(path: string, image: string) {
  try {
    return await decodeLabels(path);
  } catch (e) {
    if (e instanceof BadSampleError && e.reason === "file not found") {
      throw new BadSampleError(path, `missing annotation for ${image}`);
    }
    throw e;
  }
}

/** Values above `maxLabel` other than 255 are errors (the message counts them). */
export function checkLabelValues(path: string, data: Uint8Array, maxLabel: number): void {
  let bad = 0, first = -1;
  for (let k = 0; k < data.length; k++) {
    const v = data[k];
    if (v > maxLabel && v !== 255) {
      if (bad++ === 0) first = v;
    }
  }
  if (bad > 0) {
    throw new BadSampleError(
      path,
      `label ${first} out of range (${bad} pixel(s) above ${maxLabel}; allowed 0..${maxLabel} and 255)`,
    );
  }
}
