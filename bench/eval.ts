/**
 * `deno task eval --checkpoint FILE|RUN_DIR|HUB_NAME --probe linear|attentive|knn|seg_knn|seg_logreg --data KIND:ROOT
 *   [--method capi|mae|simmim] [--preset P] [--config JSON] [--image-size N] [--hub-cache DIR]
 *   [--protocol cpu|paper] [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME] [--allow-missing]
 *   [--threads 2] [--batch 32] [--limit-train N] [--limit-val N] [--seed 0] [--probe-config JSON]
 *   [--cache DIR | --no-cache] [--adapter FILE.json] [--out FILE.json]`
 *
 * One frozen-encoder evaluation (SPEC 1.10): opens the encoder of a `deno task pretrain`
 * checkpoint or run directory (on the chosen engine: tfjs on `--backend`, or the one-graph
 * onnxruntime engine on `--ep`; the probe heads train on tfjs), of released weights (a `.pth` in the CAPI / MAE / SimMIM layout, official-name
 * safetensors, a hub name such as `capi_vitl14_in1k`: `--method`/`--preset` say what to
 * build, a hub name implies them), or an external `.onnx` with `--adapter`; the checkpoint is
 * checked before any data is opened. Runs the probe under the chosen protocol (`cpu`: scaled
 * for 2 cores; `paper`: the official evaluation's settings, eval/protocols.ts) with
 * hyper-parameters chosen on a held-out part of train, prints `<probe>/<metric> value` lines
 * and a status line (converged, constant prediction), and writes a JSON record with the
 * protocol, resolved config, metrics, status, details and timings (default:
 * `<checkpoint dir>/eval_<probe>.json`). Features go to a sharded store on disk (cached by
 * checkpoint hash + engine + data + subset + transform), or, for `paper` linear/attentive, are
 * computed on the fly from augmented images as the official code does. `--limit-train/--limit-val
 * N` evaluate on N samples drawn stratified by class with `--seed`.
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
import { datasetSource, limitedDataset } from "../eval/dataset_source.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import type { ImageDataset } from "../datasets/dataset.ts";
import { HUB } from "./hub.ts";
import { parseConfigFlag, parseMethod, resolveCheckpoint } from "./checkpoint_arg.ts";
import {
  isSegmentation,
  parseProbe,
  probeImageSize,
  probeInput,
  resolveProbeConfig,
  runProbe,
} from "../eval/probes.ts";
import { EVAL_PROTOCOLS } from "../eval/protocols.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { codeVersion } from "./code_version.ts";
import { decoderVersions, deviceInfo, isCi, runtimeVersions } from "./provenance.ts";
import { choiceFlag, type CliSpec, intFlag, type ParsedArgs, requiredFlag, runCli, UsageError } from "./cli.ts";
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
    protocol: {
      type: "string",
      arg: EVAL_PROTOCOLS.join("|"),
      help: "cpu: scaled for 2 cores (default); paper: the official evaluation's settings",
    },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default wasm)` },
    threads: { type: "string", arg: "N", help: "onnxruntime threads (default 2)" },
    batch: { type: "string", arg: "N", help: "feature extraction batch (default 32)" },
    "limit-train": { type: "string", arg: "N", help: "use N training samples, stratified by class with --seed" },
    "limit-val": { type: "string", arg: "N", help: "use N validation samples, stratified by class with --seed" },
    seed: { type: "string", arg: "N", help: "seed of the probe and of the --limit-* samples (default 0)" },
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
  const probe = parseProbe(requiredFlag("probe", values.probe, "NAME"));
  const protocol = choiceFlag("protocol", values.protocol ?? "cpu", EVAL_PROTOCOLS);
  const overrides = probeConfig as Record<string, unknown>;
  const seed = intFlag("seed", values.seed, {
    min: 0,
    fallback: typeof overrides.seed === "number" ? overrides.seed : 0,
  });
  return {
    checkpoint,
    method: parseMethod(values.method),
    preset: values.preset,
    overrides: parseConfigFlag(values.config),
    imageSize: side === undefined ? undefined : [side, side] as [number, number],
    hubCache: values["hub-cache"],
    probe,
    protocol,
    seed,
    probeConfig: resolveProbeConfig(probe, protocol, { ...overrides, seed }),
    data,
    spec: parseDataSpec(data),
    choice: parseEngineChoice(values),
    threads: intFlag("threads", values.threads, { min: 1, fallback: 2 }),
    batch: intFlag("batch", values.batch, { min: 1, fallback: 32 }),
    limitTrain: intFlag("limit-train", values["limit-train"], { min: 1 }),
    limitVal: intFlag("limit-val", values["limit-val"], { min: 1 }),
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
  const tables: { close(): Promise<void> }[] = [];
  try {
    const task = isSegmentation(probe) ? "segmentation" : "classification";
    // Strict data: a split with problems fails here naming them, unless --allow-missing skips them.
    const strict = { allowMissing: o.allowMissing, log };
    const train = await strictDataset(await openDataset(o.spec, "train", { task, log }), strict);
    const val = await strictDataset(await openDataset(o.spec, "val", { task, log }), strict);
    const trainDs = limitedDataset(train.dataset, o.limitTrain, o.seed);
    const valDs = limitedDataset(val.dataset, o.limitVal, o.seed);
    const input = probeInput(probe, o.probeConfig);
    const size = probeImageSize(probe, o.probeConfig, enc.info);
    const cache = o.cache === null ? undefined : {
      dir: o.cache,
      encoderKey: `${opened.sha256} ${started.description.engine} ${started.description.device}`,
    };
    // The data id names the subset: a --limit sample must not share a cache entry with the full split.
    const idOf = (ds: ImageDataset, split: string) => `${o.data} ${split} ${ds.description}`;
    const extract = async (ds: ImageDataset, split: string) => {
      const t = performance.now();
      const src = datasetSource(ds, idOf(ds, split), size);
      const table = await extractFeatures(enc, src, { batchSize: batch, keepPatches: input.patches, cache });
      tables.push(table);
      return { table, seconds: (performance.now() - t) / 1000 };
    };
    const tr = input.online ? null : await extract(trainDs, "train");
    const va = input.online ? null : await extract(valDs, "val");
    const out = await runProbe(
      probe,
      input.online
        ? { online: { encoder: enc, train: trainDs, val: valDs, batchPerDevice: batch, evalBatch: batch } }
        : { train: tr!.table, val: va!.table },
      { method: opened.method, classes: trainDs.numClasses, protocol: o.protocol, config: o.probeConfig, log },
    );
    for (const [k, v] of Object.entries(out.metrics)) console.log(`${k} ${v.toFixed(4)}`);
    const st = out.status;
    console.log(
      `status protocol=${st.protocol} converged=${st.converged ?? "n/a"} constant_prediction=${st.constantPrediction}` +
        (st.notes.length ? ` (${st.notes.join("; ")})` : ""),
    );
    const record = {
      format: "mim-eval-v2",
      probe,
      protocol: o.protocol,
      metrics: out.metrics,
      status: out.status,
      config: { probe: out.config, batch, data: o.data, imageSize: size, engine: o.choice, seed: o.seed },
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
        train: { n: trainDs.length, id: idOf(trainDs, "train") },
        val: { n: valDs.length, id: idOf(valDs, "val") },
        classes: trainDs.numClasses,
        skipped: { train: train.skipped.length, val: val.skipped.length },
      },
      timings: {
        extractTrainSec: tr?.seconds ?? 0,
        extractValSec: va?.seconds ?? 0,
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
    for (const t of tables) await t.close();
    opened.dispose();
  }
}

if (import.meta.main) Deno.exit(await runCli(EVAL_CLI, Deno.args, { check: checkArgs, run: main }));
