/**
 * The embedded default dataset: generated from a seed on first use into a cache folder
 * (default `.cache/synthetic-v1/` under the repository root; gitignored, never committed),
 * written as real JPEG/PNG files in exactly the ImageNet and ADE20K layouts so the real
 * adapters, decoders and transforms run end to end. See SYNTHETIC.md for the card.
 *
 *   ROOT/synthetic.json                                   manifest (config, classes, counts)
 *   ROOT/imagenet/{train,val}/cNN_<shape>/*.JPEG          classification: class = shape
 *   ROOT/ade20k/ADEChallengeData2016/{images,annotations}/{training,validation}/ADE_*.{jpg,png}
 *
 * Generation is deterministic (same config -> same bytes) and concurrency-safe: files go to
 * a temporary sibling folder that is renamed into place only when complete, so an
 * interrupted run is never mistaken for a finished one.
 *
 * @module
 */
import { z } from "zod";
import { Rng } from "../model/rng.ts";
import { openAde20k } from "./ade20k.ts";
import type { ImageDataset, Split, Task } from "./dataset.ts";
import { encodeJpeg, encodePng } from "./decode.ts";
import { openImagenet } from "./imagenet.ts";
import { renderScene, type ShapeName, SHAPES } from "./synthetic_render.ts";

/** The dataset family; part of the cache folder name. */
export const SYNTHETIC_VERSION = "synthetic-v1";
/** Bump when the rendering changes: a default cache of an older revision is regenerated. */
export const RENDER_REVISION = 2;

export const SyntheticConfig = z.strictObject({
  seed: z.number().int().default(0).describe("generator seed; the default dataset is seed 0"),
  trainPerClass: z.number().int().positive().default(200).describe(
    "classification train images per class (x10 classes = 2000: pretraining in minutes on 2 cores)",
  ),
  valPerClass: z.number().int().positive().default(50).describe("classification val images per class (500)"),
  segTrain: z.number().int().positive().default(400).describe("segmentation train pairs"),
  segVal: z.number().int().positive().default(100).describe("segmentation val pairs"),
  minSide: z.number().int().min(16).default(56).describe("smallest image side; sizes vary so crops/resizes do work"),
  maxSide: z.number().int().min(16).default(80).describe("largest image side (~64 px images, 32 px crops)"),
  jpegQuality: z.number().int().min(1).max(100).default(90).describe("JPEG quality of the images"),
});
export type SyntheticConfig = z.infer<typeof SyntheticConfig>;

/** Classification classes (folder `cNN_<shape>`, so sorted folders give this order). */
export const SYNTHETIC_CLASSES: readonly ShapeName[] = Object.keys(SHAPES) as ShapeName[];
/** Segmentation classes: label value v is `SYNTHETIC_SEG_CLASSES[v - 1]`; 0 = object edges (ignored). */
export const SYNTHETIC_SEG_CLASSES: readonly string[] = ["background", "disk", "square", "triangle", "star", "ring"];

const SEG_SHAPES: ShapeName[] = ["disk", "square", "triangle", "star", "ring"];

/** Default cache folder for a config: `.cache/synthetic-v1` for the defaults, else suffixed by a hash. */
export function defaultSyntheticRoot(config: SyntheticConfig = SyntheticConfig.parse({})): string {
  const base = new URL(`../.cache/${SYNTHETIC_VERSION}`, import.meta.url).pathname;
  const isDefault = JSON.stringify(config) === JSON.stringify(SyntheticConfig.parse({}));
  return isDefault ? base : `${base}-${hashText(JSON.stringify(config))}`;
}

function hashText(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

const classFolder = (k: number) => `c${String(k).padStart(2, "0")}_${SYNTHETIC_CLASSES[k]}`;

function manifestOf(config: SyntheticConfig) {
  const nc = SYNTHETIC_CLASSES.length;
  return {
    format: SYNTHETIC_VERSION,
    renderRevision: RENDER_REVISION,
    config,
    classification: {
      classes: SYNTHETIC_CLASSES.map((_, k) => classFolder(k)),
      train: config.trainPerClass * nc,
      val: config.valPerClass * nc,
    },
    segmentation: { classes: SYNTHETIC_SEG_CLASSES, train: config.segTrain, val: config.segVal, ignore: [0, 255] },
  };
}

/** Write the whole dataset into `dir` (which must not exist yet). */
export async function writeSynthetic(dir: string, config: SyntheticConfig): Promise<void> {
  if (config.minSide > config.maxSide) {
    throw new Error(`synthetic: minSide ${config.minSide} > maxSide ${config.maxSide}`);
  }
  const jobs: (() => Promise<void>)[] = [];
  const nc = SYNTHETIC_CLASSES.length;
  for (const [split, perClass] of [["train", config.trainPerClass], ["val", config.valPerClass]] as const) {
    for (let k = 0; k < nc; k++) await Deno.mkdir(`${dir}/imagenet/${split}/${classFolder(k)}`, { recursive: true });
    for (let i = 0; i < perClass * nc; i++) {
      const k = i % nc; // balanced classes
      jobs.push(async () => {
        const rng = Rng.from(config.seed, "synthetic", "classification", split, i);
        const [w, h] = [rng.int(config.minSide, config.maxSide), rng.int(config.minSide, config.maxSide)];
        const { image } = renderScene(rng, w, h, [{ shape: SYNTHETIC_CLASSES[k], label: 1 }], [0.3, 0.48], 0);
        const name = `${classFolder(k)}_${String(i).padStart(5, "0")}.JPEG`;
        await Deno.writeFile(
          `${dir}/imagenet/${split}/${classFolder(k)}/${name}`,
          await encodeJpeg(image, config.jpegQuality),
        );
      });
    }
  }
  const ade = `${dir}/ade20k/ADEChallengeData2016`;
  for (
    const [split, folder, count] of [["train", "training", config.segTrain], [
      "val",
      "validation",
      config.segVal,
    ]] as const
  ) {
    await Deno.mkdir(`${ade}/images/${folder}`, { recursive: true });
    await Deno.mkdir(`${ade}/annotations/${folder}`, { recursive: true });
    for (let i = 0; i < count; i++) {
      jobs.push(async () => {
        const rng = Rng.from(config.seed, "synthetic", "segmentation", split, i);
        const [w, h] = [rng.int(config.minSide, config.maxSide), rng.int(config.minSide, config.maxSide)];
        const objects = Array.from({ length: rng.int(1, 4) }, () => {
          const s = rng.int(0, SEG_SHAPES.length - 1);
          return { shape: SEG_SHAPES[s], label: s + 2 }; // 1 = background
        });
        const { image, labels } = renderScene(rng, w, h, objects, [0.2, 0.4], 1);
        const stem = `ADE_${split}_${String(i + 1).padStart(8, "0")}`;
        await Deno.writeFile(`${ade}/images/${folder}/${stem}.jpg`, await encodeJpeg(image, config.jpegQuality));
        await Deno.writeFile(`${ade}/annotations/${folder}/${stem}.png`, await encodePng(labels));
      });
    }
  }
  // Bounded concurrency: rendering is JS, encoding runs on libvips threads.
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  await Deno.writeTextFile(`${dir}/synthetic.json`, JSON.stringify(manifestOf(config), null, 2) + "\n");
}

/**
 * Make sure the dataset for `config` exists at `root` (default `defaultSyntheticRoot`),
 * generating it if needed; returns the root. A folder generated with another config is an
 * error, except that an explicit `root` without an explicit `config` accepts whatever finished
 * synthetic dataset is there (its manifest says how it was made). A folder with the same
 * config from an older `RENDER_REVISION` is regenerated in place (atomically).
 */
export async function ensureSynthetic(
  options: { config?: Partial<SyntheticConfig>; root?: string; log?: (line: string) => void } = {},
): Promise<string> {
  const config = SyntheticConfig.parse(options.config ?? {});
  const root = options.root ?? defaultSyntheticRoot(config);
  const want = JSON.stringify(manifestOf(config));
  const have = await readManifest(root);
  let replace = false;
  if (have !== null) {
    if (JSON.stringify(have) === want) return root;
    const acceptAny = options.config === undefined && options.root !== undefined;
    if (acceptAny && have.format === SYNTHETIC_VERSION) return root;
    // Same config by an older renderer: the folder is derived data the manifest proves is
    // ours, so it is regenerated; a different config is an error (we would destroy it).
    replace = have.format === SYNTHETIC_VERSION && JSON.stringify(have.config) === JSON.stringify(config);
    if (!replace) {
      throw new Error(
        `${root}/synthetic.json: this folder holds a synthetic dataset with another config ` +
          `(${JSON.stringify(have.config)}); expected ${
            JSON.stringify(config)
          }. Delete the folder or pick another root.`,
      );
    }
  } else if (await Deno.stat(root).then(() => true, () => false)) {
    throw new Error(`${root}: exists but has no synthetic.json; it is not a finished synthetic dataset (delete it)`);
  }
  const parent = root.replace(/\/[^/]+\/?$/, "") || ".";
  await Deno.mkdir(parent, { recursive: true });
  const stamp = `${Deno.pid}-${Date.now()}`;
  const tmp = `${root}.tmp-${stamp}`;
  const t0 = performance.now();
  options.log?.(
    `${replace ? "regenerating (renderer revision changed)" : "generating"} the synthetic dataset ` +
      `(seed ${config.seed}) into ${root} ...`,
  );
  try {
    await writeSynthetic(tmp, config);
    if (replace) await Deno.rename(root, `${root}.stale-${stamp}`);
    await Deno.rename(tmp, root);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    // Another process may have finished the same dataset first: theirs is as good as ours.
    if (JSON.stringify(await readManifest(root)) === want) return root;
    throw e;
  }
  if (replace) await Deno.remove(`${root}.stale-${stamp}`, { recursive: true }).catch(() => {});
  options.log?.(`generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return root;
}

/**
 * The root of a finished synthetic dataset (default: the cache folder of the default config),
 * never generating one: `deno task data check` must look, not make. The error says how to make it.
 */
export async function requireSynthetic(root?: string): Promise<string> {
  const r = root ?? defaultSyntheticRoot();
  const have = await readManifest(r);
  if (have?.format !== SYNTHETIC_VERSION) {
    const exists = await Deno.stat(r).then(() => true, () => false);
    throw new Error(
      `${r}: ${exists ? "holds no finished synthetic dataset (no synthetic.json)" : "not found"}; ` +
        `make one with \`deno task data generate${root === undefined ? "" : ` --root ${root}`}\``,
    );
  }
  return r;
}

async function readManifest(root: string): Promise<{ format?: string; config?: unknown } | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${root}/synthetic.json`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${root}/synthetic.json: unreadable manifest (${(e as Error).message}); delete the folder`);
  }
}

/** Open a split of a generated synthetic dataset through the real ImageNet/ADE20K adapters. */
export function openSynthetic(root: string, split: Split, task: Task): Promise<ImageDataset> {
  return task === "classification"
    ? openImagenet(`${root}/imagenet`, split, { expected: false, name: "synthetic" })
    : openAde20k(`${root}/ade20k`, split, { classNames: SYNTHETIC_SEG_CLASSES, expected: false, name: "synthetic" });
}
