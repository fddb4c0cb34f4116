/**
 * Data specs (`KIND:ROOT`) and the one function that turns a spec into an `ImageDataset`.
 *
 *   imagenet:/data/imagenet        ImageNet-1k folder layout (classification)
 *   ade20k:/data/ade               ADEChallengeData2016 layout (segmentation)
 *   synthetic  |  synthetic:DIR    the embedded default, generated on first use (both tasks)
 *
 * Also the data part of a run's config (`DataConfig`: changes results) and the loader's
 * runtime knobs (`LoaderConfig`: does not).
 *
 * @module
 */
import { z } from "zod";
import { openAde20k } from "./ade20k.ts";
import type { ImageDataset, Split, Task } from "./dataset.ts";
import { openImagenet } from "./imagenet.ts";
import { ensureSynthetic, openSynthetic, requireSynthetic } from "./synthetic.ts";

export const DATA_KINDS = ["imagenet", "ade20k", "synthetic"] as const;
export type DataKind = typeof DATA_KINDS[number];

/** A parsed spec; `root` null means the default location (synthetic only). */
export interface DataSpec {
  kind: DataKind;
  root: string | null;
}

/** Identity-relevant data settings (part of the run's config hash). */
export const DataConfig = z.strictObject({
  spec: z.string().default("synthetic").describe(
    "KIND:ROOT with KIND imagenet | ade20k | synthetic; the synthetic default needs no download",
  ),
  onBadSample: z.enum(["fail", "skip"]).default("fail").describe(
    "fail on the first unreadable sample (default: a silently smaller dataset changes results), or skip and count it",
  ),
});
export type DataConfig = z.infer<typeof DataConfig>;

/** Runtime loader knobs (do not change results: batches are identical for any value). */
export const LoaderConfig = z.strictObject({
  concurrency: z.number().int().positive().default(8).describe(
    "decodes in flight; libvips decodes on its own threads, 8 keeps 2 cores busy",
  ),
  prefetch: z.number().int().min(0).default(2).describe("finished batches buffered ahead of the consumer"),
});
export type LoaderConfig = z.infer<typeof LoaderConfig>;

/** Parse `KIND:ROOT` (or bare `synthetic`); errors say what is accepted. */
export function parseDataSpec(text: string): DataSpec {
  const colon = text.indexOf(":");
  const kind = (colon < 0 ? text : text.slice(0, colon)).trim();
  const root = colon < 0 ? "" : text.slice(colon + 1).trim();
  const usage = "expected imagenet:ROOT, ade20k:ROOT, synthetic or synthetic:ROOT";
  if (!(DATA_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`data spec '${text}': unknown kind '${kind}'; ${usage}`);
  }
  if (kind !== "synthetic" && root === "") {
    throw new Error(`data spec '${text}': ${kind} needs a folder, e.g. '${kind}:/data/${kind}'; ${usage}`);
  }
  return { kind: kind as DataKind, root: root === "" ? null : root };
}

/** The task a kind serves when none is asked for. */
export function defaultTask(kind: DataKind): Task {
  return kind === "ade20k" ? "segmentation" : "classification";
}

/**
 * Open one split of the dataset a spec names. The synthetic one is generated on first use,
 * unless `generate: false` (then a missing one is an error saying how to make it).
 *
 * @example
 * ```ts ignore
 * const train = await openDataset("imagenet:/data/imagenet", "train");
 * const seg = await openDataset("synthetic", "val", { task: "segmentation" });
 * ```
 */
export async function openDataset(
  spec: DataSpec | string,
  split: Split,
  options: { task?: Task; log?: (line: string) => void; generate?: boolean } = {},
): Promise<ImageDataset> {
  const s = typeof spec === "string" ? parseDataSpec(spec) : spec;
  const task = options.task ?? defaultTask(s.kind);
  switch (s.kind) {
    case "imagenet":
      if (task !== "classification") throw new Error(`data spec imagenet:${s.root}: imagenet has no ${task} labels`);
      return openImagenet(s.root!, split);
    case "ade20k":
      if (task !== "segmentation") throw new Error(`data spec ade20k:${s.root}: ade20k has no ${task} labels`);
      return openAde20k(s.root!, split);
    case "synthetic": {
      const root = options.generate === false
        ? await requireSynthetic(s.root ?? undefined)
        : await ensureSynthetic({ root: s.root ?? undefined, log: options.log });
      return openSynthetic(root, split, task);
    }
  }
}
