/**
 * `deno task embed --checkpoint FILE|DIR|HUB_NAME [--method capi|mae|simmim] [--preset P] [--config JSON]
 *   (--images FILE.safetensors | --data KIND:ROOT [--split val] [--image-size N] [--limit N])
 *   --out OUT.safetensors [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME] [--batch 16] [--hub-cache DIR]`
 *
 * Writes what a frozen encoder computes, as float32 safetensors:
 * - `patches` `[N, H/p, W/p, D]`: the final-norm patch tokens, row-major over the grid, no
 *   prefix tokens (no cls, no registers);
 * - `global` `[N, D]`: the method's global representation as its official evaluation code
 *   defines it: CAPI `global_repr` (mean over all positions of the predictor's first block,
 *   `EncoderDecoder.forward`), MAE the cls token after the final norm (`main_linprobe.py`,
 *   global pooling off), SimMIM (none in its code) the mean of the final-norm patch tokens;
 * - `labels` `[N]` (int32) with `--data` on a classification set (ImageNet layouts, synthetic).
 *
 * `--images` reads an already-normalised `[N, 3, H, W]` float32 tensor named `images` (no
 * transform; the encoder runs at H x W). `--data` applies the evaluation transform (resize +
 * centre crop) at `--image-size` (default: the config's). The output is written piece by
 * piece to a temp file and renamed: memory stays one batch plus `global`.
 *
 * Example (ViT-L/14 CAPI on 2 CPU cores: ~3 s an image at 224 px with --backend blas):
 *   deno task embed --checkpoint capi_vitl14_in1k --images imgs.safetensors --out feats.safetensors
 *
 * @module
 */
import { openDataset, parseDataSpec } from "../datasets/data_spec.ts";
import type { EncoderFeatures } from "../model/encoder.ts";
import { createSafetensorsWriter, openSafetensors } from "../model/safetensors.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import { datasetSource, subsetDataset } from "../eval/dataset_source.ts";
import { type EvalImageSource, progressLine, type SourceBatch } from "../eval/features.ts";
import { parseConfigFlag, parseMethod, resolveCheckpoint } from "./checkpoint_arg.ts";
import { ENGINE_FLAG_HELP, parseEngineChoice, startEngine } from "../model/engine_choice.ts";
import { choiceFlag, type CliSpec, intFlag, type ParsedArgs, requiredFlag, runCli, UsageError } from "./cli.ts";
import { codeVersion } from "./code_version.ts";
import { peakRssBytes } from "./provenance.ts";

export const EMBED_CLI = {
  name: "embed",
  synopsis: "deno task embed --checkpoint PATH (--images FILE.safetensors | --data KIND:ROOT) --out OUT.safetensors",
  summary: "Write a frozen encoder's final-norm patch tokens and global representation as float32 safetensors.",
  flags: {
    checkpoint: {
      type: "string",
      arg: "PATH",
      help: "a pretrain checkpoint or run directory, released weights (.pth, safetensors) or a hub name",
    },
    method: { type: "string", arg: "capi|mae|simmim", help: "what released weights are (a hub name implies it)" },
    preset: { type: "string", arg: "P", help: "the method's preset for released weights (e.g. vit_l)" },
    config: { type: "string", arg: "JSON", help: "config keys replacing the preset's" },
    images: { type: "string", arg: "FILE", help: "safetensors holding normalised images [N, 3, H, W] named 'images'" },
    data: { type: "string", arg: "KIND:ROOT", help: "a data set instead of --images (evaluation transform)" },
    split: { type: "string", arg: "train|val", default: "val", help: "split of --data (default val)" },
    "image-size": { type: "string", arg: "N", help: "resolution with --data (default the config's)" },
    limit: { type: "string", arg: "N", help: "at most N images" },
    out: { type: "string", arg: "FILE", help: "output safetensors (patches, global, labels with --data)" },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default wasm)` },
    batch: { type: "string", arg: "N", help: "images per forward (default 16)" },
    "hub-cache": { type: "string", arg: "DIR", help: "download cache of hub names (default .cache/hub)" },
  },
} as const satisfies CliSpec;

/** The global representation of one batch: the encoder's, or (SimMIM, encoders without one) the patch mean. */
export function globalOf(f: EncoderFeatures): Float32Array {
  if (f.global) return f.global.data;
  const [b, gh, gw, d] = f.patches.shape;
  const n = gh * gw, out = new Float32Array(b * d);
  for (let i = 0; i < b; i++) {
    const acc = new Float64Array(d);
    for (let t = 0; t < n; t++) {
      const row = f.patches.data.subarray((i * n + t) * d, (i * n + t + 1) * d);
      for (let k = 0; k < d; k++) acc[k] += row[k];
    }
    for (let k = 0; k < d; k++) out[i * d + k] = acc[k] / n;
  }
  return out;
}

/** `--images FILE`: the `images` tensor `[N, 3, H, W]`, as one source. */
async function imagesSource(path: string, limit?: number): Promise<{ src: EvalImageSource; size: [number, number] }> {
  const f = await openSafetensors(path);
  let images;
  try {
    const t = f.tensors.get("images");
    if (!t) throw new Error(`--images ${path}: no tensor 'images' (has ${[...f.tensors.keys()].join(", ") || "none"})`);
    if (t.shape.length !== 4 || t.shape[1] !== 3) {
      throw new Error(`--images ${path}: 'images' is [${t.shape}], expected [N, 3, H, W]`);
    }
    images = await t.read();
  } finally {
    f.close();
  }
  const [n0, c, h, w] = images.shape, n = Math.min(n0, limit ?? Infinity), per = c * h * w;
  const src: EvalImageSource = {
    id: `images ${path}`,
    length: n,
    async *batches(batch: number): AsyncIterable<SourceBatch> {
      for (let i = 0; i < n; i += batch) {
        const b = Math.min(batch, n - i);
        yield { images: { shape: [b, c, h, w], data: images.data.subarray(i * per, (i + b) * per) } };
      }
    },
  };
  return { src, size: [h, w] };
}

/** The command line checked: a `UsageError` (exit 2) for anything refused, before anything runs. */
export function checkEmbedArgs({ values }: ParsedArgs<typeof EMBED_CLI>) {
  if (!values.images === !values.data) throw new UsageError("give exactly one of --images FILE and --data KIND:ROOT");
  const side = intFlag("image-size", values["image-size"], { min: 1 });
  return {
    checkpoint: requiredFlag("checkpoint", values.checkpoint, "PATH"),
    out: requiredFlag("out", values.out, "FILE"),
    method: parseMethod(values.method),
    preset: values.preset,
    overrides: parseConfigFlag(values.config),
    images: values.images,
    data: values.data,
    split: choiceFlag("split", values.split, ["train", "val"] as const),
    imageSize: side === undefined ? undefined : [side, side] as [number, number],
    limit: intFlag("limit", values.limit, { min: 1 }),
    choice: parseEngineChoice(values),
    batch: intFlag("batch", values.batch, { min: 1, fallback: 16 }),
    hubCache: values["hub-cache"],
  };
}

export type EmbedOptions = ReturnType<typeof checkEmbedArgs>;

/** `deno task embed` with checked options; progress and notes go to `log`. */
export async function runEmbed(o: EmbedOptions, log: (line: string) => void = (l) => console.error(l)): Promise<void> {
  const { batch, limit } = o;
  // The checkpoint first: a bad path or name fails before any data is touched.
  const ckpt = await resolveCheckpoint(o.checkpoint, { hubCache: o.hubCache });
  const started = await startEngine(o.choice);

  let size = o.imageSize;
  let src: EvalImageSource | undefined;
  if (o.images) ({ src, size } = await imagesSource(o.images, limit));
  const opened = await openEncoder(ckpt.path, {
    engine: started,
    threads: 2,
    method: o.method ?? ckpt.method,
    preset: o.preset ?? (o.method ? undefined : ckpt.preset),
    overrides: o.overrides,
    imageSize: size,
    log,
  });
  const enc = opened.encoder;
  let writer: Awaited<ReturnType<typeof createSafetensorsWriter>> | undefined;
  try {
    let labels: Int32Array | null = null;
    if (!src) {
      const spec = parseDataSpec(o.data!);
      // ADE20K: the segmentation transform (resize to H x W); ImageNet layouts: resize + centre crop, with labels.
      const task = spec.kind === "ade20k" ? "segmentation" : "classification";
      const all = await openDataset(spec, o.split, { task, log });
      // --limit: the first N images, in dataset order.
      const ds = limit && limit < all.length
        ? subsetDataset(all, Int32Array.from({ length: limit }, (_, i) => i))
        : all;
      src = datasetSource(ds, `${o.data} ${o.split}`, enc.info.imageSize);
      if (task === "classification") labels = new Int32Array(src.length);
    }
    const [h, w] = enc.info.imageSize, p = enc.info.patchSize, d = enc.info.embedDim, n = src.length;
    const global = new Float32Array(n * d);
    const code = await codeVersion("evaluation");
    const engine = started.description;
    writer = await createSafetensorsWriter(
      o.out,
      [
        { name: "patches", dtype: "F32", shape: [n, h / p, w / p, d] },
        { name: "global", dtype: "F32", shape: [n, d] },
        ...(labels ? [{ name: "labels", dtype: "I32" as const, shape: [n] }] : []),
      ],
      {
        format: "mim-embed-v1",
        method: opened.method,
        arch: enc.info.arch,
        checkpoint: o.checkpoint,
        checkpointSha256: opened.sha256,
        checkpointFormat: opened.format,
        config: JSON.stringify(opened.config),
        engine: JSON.stringify(engine),
        code: JSON.stringify(code),
      },
    );
    const t0 = performance.now();
    let done = 0;
    for await (const b of src.batches(batch)) {
      const f = await enc.encode(b.images);
      const bs = b.images.shape[0];
      await writer.write("patches", done * (h / p) * (w / p) * d, f.patches.data);
      global.set(globalOf(f), done * d);
      if (labels && b.labels) labels.set(b.labels, done);
      done += bs;
      log(progressLine("embed", done, n, (performance.now() - t0) / 1000));
    }
    await writer.write("global", 0, global);
    if (labels) await writer.write("labels", 0, labels);
    await writer.close();
    writer = undefined;
    log(
      `wrote ${o.out}: patches [${n}, ${h / p}, ${
        w / p
      }, ${d}], global [${n}, ${d}] (${opened.method}, ${engine.device})`,
    );
    const fileBytes = (await Deno.stat(ckpt.path)).size, peak = peakRssBytes();
    const ratio = fileBytes >= 2 ** 26 ? ` = ${(peak / fileBytes).toFixed(2)} x the checkpoint` : "";
    log(`peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB${ratio} (checkpoint ${(fileBytes / 2 ** 20).toFixed(1)} MiB)`);
  } finally {
    await writer?.abort();
    opened.dispose();
  }
}

if (import.meta.main) Deno.exit(await runCli(EMBED_CLI, Deno.args, { check: checkEmbedArgs, run: (o) => runEmbed(o) }));
