/**
 * `deno task eval --checkpoint FILE|RUN_DIR|HUB_NAME --probe linear|attentive|knn|seg_knn|seg_logreg --data KIND:ROOT
 *   [--method capi|mae|simmim] [--preset P] [--config JSON] [--image-size N] [--hub-cache DIR]
 *   [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME] [--allow-missing] [--threads 2] [--batch 32] [--limit-train N] [--limit-val N]
 *   [--probe-config JSON] [--cache DIR | --no-cache] [--adapter FILE.json] [--out FILE.json]`
 *
 * One frozen-encoder evaluation (SPEC 1.10): opens the encoder of a `deno task pretrain`
 * checkpoint or run directory (on the chosen engine: tfjs on `--backend`, or the one-graph
 * onnxruntime engine on `--ep`; the probe heads train on tfjs), of released weights (a `.pth` in the CAPI / MAE / SimMIM layout, official-name
 * safetensors, a hub name such as `capi_vitl14_in1k`: `--method`/`--preset` say what to
 * build, a hub name implies them), or an external `.onnx` with `--adapter`; the checkpoint is
 * checked before any data is opened. Extracts train and val features (cached by checkpoint
 * hash + data + transform), runs the probe with hyper-parameters chosen on a 10% train
 * holdout, prints `<probe>/<metric> value` lines and writes a JSON record with the resolved
 * config, metrics, details and timings (default: `<checkpoint dir>/eval_<probe>.json`).
 * Data is read strictly: unlabelled images, unknown class folders, missing annotations and
 * unreadable files fail the run naming their paths, unless `--allow-missing` skips them (the
 * count is printed and recorded). `--help` lists every flag; a refused command line exits 2.
 *
 * Example (2 shared cores; times in eval/README.md):
 *   deno task pretrain --method capi --preset tiny --data synthetic --steps 200 --out runs/capi
 *   deno task eval --checkpoint runs/capi --probe knn --data synthetic
 *   deno task eval --checkpoint mae_pretrain_vit_base --probe knn --data imagenet:/data/in1k
 *
 * @module
 */
import { dirname, join } from "node:path";
import { describeChoice, ENGINE_FLAG_HELP, parseEngineChoice, startEngine } from "../model/engine_choice.ts";
import { tfEngineDescription } from "../model/tf_train_engine.ts";
import { openDataset, parseDataSpec } from "../datasets/data_spec.ts";
import { strictDataset } from "../datasets/strict_dataset.ts";
import { extractFeatures } from "../eval/features.ts";
import { datasetSource } from "../eval/dataset_source.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import { HUB } from "./hub.ts";
import { parseConfigFlag, parseMethod, resolveCheckpoint } from "./checkpoint_arg.ts";
import { isSegmentation, needsPatches, parseProbe, runProbe } from "../eval/probes.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { codeVersion } from "./code_version.ts";
import { decoderVersions, deviceInfo, isCi, runtimeVersions } from "./provenance.ts";
import { type CliSpec, intFlag, type ParsedArgs, requiredFlag, runCli, UsageError } from "./cli.ts";
import { PROBE_NAMES } from "./suite.ts";

export const EVAL_CLI = {
  name: "eval",
  synopsis: "deno task eval --checkpoint PATH --probe NAME --data KIND:ROOT [flags]",
  summary: "One frozen-encoder evaluation (SPEC 1.10): extract train/val features, fit the probe, print and " +
    "write its metrics.",
  flags: {
    checkpoint: {
      type: "string",
      arg: "PATH",
      help: "a `deno task pretrain` checkpoint or run directory, released weights (.pth, official-name " +
        "safetensors) or a hub name, or an .onnx with --adapter",
    },
    method: { type: "string", arg: "capi|mae|simmim", help: "what released weights are (a hub name implies it)" },
    preset: { type: "string", arg: "P", help: "the method's preset for released weights (e.g. vit_l, vit_b)" },
    config: { type: "string", arg: "JSON", help: "config keys replacing the preset's (released weights)" },
    "image-size": {
      type: "string",
      arg: "N",
      help: "evaluation resolution of released weights (default the preset's)",
    },
    "hub-cache": { type: "string", arg: "DIR", help: "download cache of hub names (default .cache/hub)" },
    probe: { type: "string", arg: PROBE_NAMES.join("|"), help: "the probe" },
    data: { type: "string", arg: "KIND:ROOT", help: "imagenet:DIR, ade20k:DIR, synthetic or synthetic:DIR" },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default wasm)` },
    threads: { type: "string", arg: "N", help: "onnxruntime threads (default 2)" },
    batch: { type: "string", arg: "N", help: "feature extraction batch (default 32)" },
    "limit-train": { type: "string", arg: "N", help: "use N training samples" },
    "limit-val": { type: "string", arg: "N", help: "use N validation samples" },
    "probe-config": { type: "string", arg: "JSON", help: "overrides of the probe's config" },
    cache: { type: "string", arg: "DIR", help: "feature cache (default .cache/eval-features)" },
    "no-cache": { type: "boolean", help: "extract features again, store nothing" },
    adapter: { type: "string", arg: "FILE.json", help: "outputs of an external ONNX encoder" },
    out: { type: "string", arg: "FILE.json", help: "the record (default <checkpoint dir>/eval_<probe>.json)" },
    "allow-missing": {
      type: "boolean",
      help: "skip (and record) unlabelled images, unknown classes, missing annotations, unreadable files",
    },
  },
} as const satisfies CliSpec;

async function checkArgs({ values }: ParsedArgs<typeof EVAL_CLI>) {
  let probeConfig: unknown = {};
  try {
    if (values["probe-config"] !== undefined) probeConfig = JSON.parse(values["probe-config"]);
  } catch (err) {
    throw new UsageError(`--probe-config: not valid JSON (${(err as Error).message})`);
  }
  if (probeConfig === null || typeof probeConfig !== "object" || Array.isArray(probeConfig)) {
    throw new UsageError(`--probe-config: expected a JSON object, got '${values["probe-config"]}'`);
  }
  const data = requiredFlag("data", values.data, "KIND:ROOT");
  const checkpoint = requiredFlag("checkpoint", values.checkpoint, "PATH");
  // The checkpoint first: a wrong path or hub name is refused before any data is listed.
  if (!HUB[checkpoint] && !(await Deno.stat(checkpoint).then(() => true, () => false))) {
    throw new UsageError(
      `--checkpoint ${checkpoint}: no such file or directory, and not a hub name (hub names: ${
        Object.keys(HUB).join(", ")
      })`,
    );
  }
  const side = intFlag("image-size", values["image-size"], { min: 1 });
  return {
    checkpoint,
    method: parseMethod(values.method),
    preset: values.preset,
    overrides: parseConfigFlag(values.config),
    imageSize: side === undefined ? undefined : [side, side] as [number, number],
    hubCache: values["hub-cache"],
    probe: parseProbe(requiredFlag("probe", values.probe, "NAME")),
    data,
    spec: parseDataSpec(data),
    choice: parseEngineChoice(values),
    threads: intFlag("threads", values.threads, { min: 1, fallback: 2 }),
    batch: intFlag("batch", values.batch, { min: 1, fallback: 32 }),
    limitTrain: intFlag("limit-train", values["limit-train"], { min: 1 }),
    limitVal: intFlag("limit-val", values["limit-val"], { min: 1 }),
    probeConfig: probeConfig as Record<string, unknown>,
    cache: values["no-cache"] ? null : values.cache ?? ".cache/eval-features",
    adapter: values.adapter,
    out: values.out,
    allowMissing: values["allow-missing"] ?? false,
  };
}

async function main(o: Awaited<ReturnType<typeof checkArgs>>): Promise<void> {
  const { probe, threads, batch } = o;
  const ckpt = await resolveCheckpoint(o.checkpoint, { hubCache: o.hubCache });
  const started = await startEngine(o.choice.engine === "ort" ? { ...o.choice, threads } : o.choice);
  console.error(`eval: features on ${describeChoice(o.choice)}`);

  const log = (line: string) => console.error(line);
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  // The encoder before the data: an unreadable checkpoint fails before any data is listed.
  const opened = await openEncoder(ckpt.path, {
    engine: started,
    threads,
    adapterPath: o.adapter,
    method: o.method ?? ckpt.method,
    preset: o.preset ?? (o.method ? undefined : ckpt.preset),
    overrides: o.overrides,
    imageSize: o.imageSize,
    log,
  });
  const enc = opened.encoder;
  try {
    const task = isSegmentation(probe) ? "segmentation" : "classification";
    // Strict data: a split with problems fails here naming them, unless --allow-missing skips them.
    const strict = { allowMissing: o.allowMissing, log };
    const train = await strictDataset(await openDataset(o.spec, "train", { task, log }), strict);
    const val = await strictDataset(await openDataset(o.spec, "val", { task, log }), strict);
    const [trainDs, valDs] = [train.dataset, val.dataset];
    const size = enc.info.imageSize;
    const cache = o.cache === null ? undefined : {
      dir: o.cache,
      encoderKey: `${opened.sha256} ${started.description.engine} ${started.description.device}`,
    };
    const extract = async (ds: typeof trainDs, split: string, limit?: number) => {
      const t = performance.now();
      const src = datasetSource(ds, `${o.data} ${split}`, size, { limit });
      const f = await extractFeatures(enc, src, { batchSize: batch, keepPatches: needsPatches(probe), cache });
      return { f, seconds: (performance.now() - t) / 1000, n: src.length };
    };
    const tr = await extract(trainDs, "train", o.limitTrain);
    const va = await extract(valDs, "val", o.limitVal);
    const out = await runProbe(probe, tr.f, va.f, {
      method: opened.method,
      classes: trainDs.numClasses,
      config: o.probeConfig,
      log,
    });
    for (const [k, v] of Object.entries(out.metrics)) console.log(`${k} ${v.toFixed(4)}`);
    const record = {
      format: "mim-eval-v2",
      probe,
      metrics: out.metrics,
      config: { probe: out.config, batch, data: o.data, imageSize: size, engine: o.choice },
      checkpoint: {
        path: o.checkpoint,
        file: ckpt.path,
        sha256: opened.sha256,
        method: opened.method,
        step: opened.step,
        format: opened.format,
        preset: o.preset ?? ckpt.preset ?? null,
        load: opened.load,
        hub: ckpt.hub ? { name: ckpt.hub.name, url: ckpt.hub.entry.url } : null,
      },
      model: opened.config,
      encoder: enc.info,
      data: {
        spec: o.data,
        train: tr.n,
        val: va.n,
        classes: trainDs.numClasses,
        skipped: { train: train.skipped.length, val: val.skipped.length },
      },
      timings: {
        extractTrainSec: tr.seconds,
        extractValSec: va.seconds,
        probeSec: out.seconds,
        totalSec: (performance.now() - t0) / 1000,
      },
      details: out.details,
      provenance: {
        code: await codeVersion("evalCli"),
        // Probe heads train on tfjs; features come from the chosen engine.
        engine: tfEngineDescription(),
        featureEngine: started.description,
        onnxThreads: o.choice.engine === "ort" ? threads : null,
        decoder: await decoderVersions(),
        runtime: runtimeVersions(),
        device: await deviceInfo(),
        ci: isCi(),
        startedAt,
        finishedAt: new Date().toISOString(),
      },
    };
    const path = o.out ?? join(dirname(ckpt.path), `eval_${probe}.json`);
    await atomicWriteJson(path, record);
    console.error(`wrote ${path}`);
  } finally {
    opened.dispose();
  }
}

if (import.meta.main) Deno.exit(await runCli(EVAL_CLI, Deno.args, { check: checkArgs, run: main }));
