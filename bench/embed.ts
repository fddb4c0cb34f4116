/**
 * `deno task embed --checkpoint FILE|DIR|HUB_NAME [--method capi|mae|simmim] [--preset P] [--config JSON]
 *   (--images FILE.safetensors | --data KIND:ROOT [--split val] [--image-size N] [--limit N])
 *   --out OUT.safetensors [--backend wasm|blas|cpu|webgpu|tensorflow] [--batch 16] [--hub-cache DIR]`
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
import { parseArgs } from "node:util";
import { openDataset, parseDataSpec } from "../datasets/data_spec.ts";
import type { EncoderFeatures } from "../model/encoder.ts";
import { initBackend, parseBackend } from "../model/engine.ts";
import { createSafetensorsWriter, openSafetensors } from "../model/safetensors.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import { datasetSource } from "../eval/dataset_source.ts";
import { type EvalImageSource, progressLine, type SourceBatch } from "../eval/features.ts";
import { parseConfigFlag, parseMethod, resolveCheckpoint } from "./checkpoint_arg.ts";
import { gitState, peakRssBytes } from "./provenance.ts";

const USAGE = "usage: deno task embed --checkpoint FILE|DIR|HUB_NAME [--method capi|mae|simmim] [--preset P] " +
  "[--config JSON] (--images FILE.safetensors | --data KIND:ROOT [--split val] [--image-size N] [--limit N]) " +
  "--out OUT.safetensors [--backend wasm] [--batch 16] [--hub-cache DIR]";

function positiveInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${flag}: expected a positive integer, got '${v}'`);
  return n;
}

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

/** Run `deno task embed` with command-line `args`; progress and notes go to `log`. */
export async function runEmbed(args: string[], log: (line: string) => void = (l) => console.error(l)): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      checkpoint: { type: "string" },
      method: { type: "string" },
      preset: { type: "string" },
      config: { type: "string" },
      images: { type: "string" },
      data: { type: "string" },
      split: { type: "string", default: "val" },
      "image-size": { type: "string" },
      limit: { type: "string" },
      out: { type: "string" },
      backend: { type: "string" },
      batch: { type: "string" },
      "hub-cache": { type: "string" },
    },
  });
  if (!values.checkpoint || !values.out || !values.images === !values.data) throw new Error(USAGE);
  const method = parseMethod(values.method);
  const overrides = parseConfigFlag(values.config);
  const batch = positiveInt(values.batch, "batch") ?? 16;
  const limit = positiveInt(values.limit, "limit");
  const side = positiveInt(values["image-size"], "image-size");
  if (values.split !== "train" && values.split !== "val") throw new Error(`--split: expected train or val`);
  // The checkpoint first: a bad path or name fails before any data is touched.
  const ckpt = await resolveCheckpoint(values.checkpoint, { hubCache: values["hub-cache"] });
  const backend = parseBackend(values.backend);
  await initBackend(backend);

  let size: [number, number] | undefined = side ? [side, side] : undefined;
  let src: EvalImageSource | undefined;
  if (values.images) ({ src, size } = await imagesSource(values.images, limit));
  const opened = await openEncoder(ckpt.path, {
    onnx: false,
    threads: 2,
    method: method ?? ckpt.method,
    preset: values.preset ?? (method ? undefined : ckpt.preset),
    overrides,
    imageSize: size,
    log,
  });
  const enc = opened.encoder;
  let writer: Awaited<ReturnType<typeof createSafetensorsWriter>> | undefined;
  try {
    let labels: Int32Array | null = null;
    if (!src) {
      const spec = parseDataSpec(values.data!);
      // ADE20K: the segmentation transform (resize to H x W); ImageNet layouts: resize + centre crop, with labels.
      const task = spec.kind === "ade20k" ? "segmentation" : "classification";
      const ds = await openDataset(spec, values.split, { task, log });
      src = datasetSource(ds, `${values.data} ${values.split}`, enc.info.imageSize, { limit });
      if (task === "classification") labels = new Int32Array(src.length);
    }
    const [h, w] = enc.info.imageSize, p = enc.info.patchSize, d = enc.info.embedDim, n = src.length;
    const global = new Float32Array(n * d);
    writer = await createSafetensorsWriter(
      values.out,
      [
        { name: "patches", dtype: "F32", shape: [n, h / p, w / p, d] },
        { name: "global", dtype: "F32", shape: [n, d] },
        ...(labels ? [{ name: "labels", dtype: "I32" as const, shape: [n] }] : []),
      ],
      {
        format: "mim-embed-v1",
        method: opened.method,
        arch: enc.info.arch,
        checkpoint: values.checkpoint,
        checkpointSha256: opened.sha256,
        checkpointFormat: opened.format,
        config: JSON.stringify(opened.config),
        backend,
        commit: await gitState().then((g) => `${g.commit}${g.dirty ? " (dirty)" : ""}`),
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
      `wrote ${values.out}: patches [${n}, ${h / p}, ${
        w / p
      }, ${d}], global [${n}, ${d}] (${opened.method}, ${backend})`,
    );
    const fileBytes = (await Deno.stat(ckpt.path)).size, peak = peakRssBytes();
    const ratio = fileBytes >= 2 ** 26 ? ` = ${(peak / fileBytes).toFixed(2)} x the checkpoint` : "";
    log(`peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB${ratio} (checkpoint ${(fileBytes / 2 ** 20).toFixed(1)} MiB)`);
  } finally {
    await writer?.abort();
    opened.dispose();
  }
}

if (import.meta.main) {
  try {
    await runEmbed(Deno.args);
  } catch (e) {
    console.error(`embed: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
