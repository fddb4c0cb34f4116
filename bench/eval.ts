/**
 * `deno task eval --checkpoint PATH --probe linear|attentive|knn|seg_knn|seg_logreg --data KIND:ROOT
 *   [--backend wasm|cpu|tensorflow] [--onnx] [--threads 2] [--batch 32] [--limit-train N] [--limit-val N]
 *   [--probe-config JSON] [--cache DIR | --no-cache] [--adapter FILE.json] [--out FILE.json]`
 *
 * One frozen-encoder evaluation (SPEC 1.10): opens the encoder of a `deno task pretrain`
 * checkpoint (tfjs, or `--onnx`: exported from the same weights and run by onnxruntime; an
 * external `.onnx` with `--adapter`), extracts train and val features (cached by checkpoint
 * hash + data + transform), runs the probe with hyper-parameters chosen on a 10% train
 * holdout, prints `<probe>/<metric> value` lines and writes a JSON record with the resolved
 * config, metrics, details and timings (default: `<checkpoint dir>/eval_<probe>.json`).
 *
 * Example (2 shared cores; times in eval/README.md):
 *   deno task pretrain --method capi --preset tiny --data synthetic --steps 200 --out runs/capi
 *   deno task eval --checkpoint runs/capi/checkpoint.safetensors --probe knn --data synthetic
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { initBackend, parseBackend } from "../model/engine.ts";
import { openDataset, parseDataSpec } from "../datasets/data_spec.ts";
import { extractFeatures } from "../eval/features.ts";
import { datasetSource } from "../eval/dataset_source.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import { isSegmentation, needsPatches, parseProbe, runProbe } from "../eval/probes.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { gitState, runtimeVersions } from "./provenance.ts";

const USAGE = "usage: deno task eval --checkpoint PATH --probe linear|attentive|knn|seg_knn|seg_logreg " +
  "--data KIND:ROOT [--backend wasm] [--onnx] [--threads 2] [--batch 32] [--limit-train N] [--limit-val N] " +
  "[--probe-config JSON] [--cache DIR | --no-cache] [--adapter FILE.json] [--out FILE.json]";

function intFlag(v: string | undefined, name: string, fallback: number | undefined): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got '${v}'`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      checkpoint: { type: "string" },
      probe: { type: "string" },
      data: { type: "string" },
      backend: { type: "string" },
      onnx: { type: "boolean", default: false },
      threads: { type: "string" },
      batch: { type: "string" },
      "limit-train": { type: "string" },
      "limit-val": { type: "string" },
      "probe-config": { type: "string" },
      cache: { type: "string" },
      "no-cache": { type: "boolean", default: false },
      adapter: { type: "string" },
      out: { type: "string" },
    },
  });
  if (!values.checkpoint || !values.probe || !values.data) throw new Error(USAGE);
  const probe = parseProbe(values.probe);
  const backend = parseBackend(values.backend);
  const threads = intFlag(values.threads, "threads", 2)!;
  const batch = intFlag(values.batch, "batch", 32)!;
  const probeConfig = values["probe-config"] ? JSON.parse(values["probe-config"]) : {};
  await initBackend(backend);

  const spec = parseDataSpec(values.data);
  const task = isSegmentation(probe) ? "segmentation" : "classification";
  const log = (line: string) => console.error(line);
  const [trainDs, valDs] = [
    await openDataset(spec, "train", { task, log }),
    await openDataset(spec, "val", { task, log }),
  ];

  const t0 = performance.now();
  const opened = await openEncoder(values.checkpoint, { onnx: values.onnx, threads, adapterPath: values.adapter });
  const enc = opened.encoder;
  try {
    const size = enc.info.imageSize;
    const cache = values["no-cache"] ? undefined : {
      dir: values.cache ?? ".cache/eval-features",
      encoderKey: `${opened.sha256} ${values.onnx ? "onnx" : "tfjs"}`,
    };
    const extract = async (ds: typeof trainDs, split: string, limit?: number) => {
      const t = performance.now();
      const src = datasetSource(ds, `${values.data} ${split}`, size, { limit });
      const f = await extractFeatures(enc, src, { batchSize: batch, keepPatches: needsPatches(probe), cache });
      return { f, seconds: (performance.now() - t) / 1000, n: src.length };
    };
    const tr = await extract(trainDs, "train", intFlag(values["limit-train"], "limit-train", undefined));
    const va = await extract(valDs, "val", intFlag(values["limit-val"], "limit-val", undefined));
    const out = await runProbe(probe, tr.f, va.f, {
      method: opened.method,
      classes: trainDs.numClasses,
      config: probeConfig,
      log,
    });
    for (const [k, v] of Object.entries(out.metrics)) console.log(`${k} ${v.toFixed(4)}`);
    const record = {
      format: "mim-eval-v1",
      probe,
      metrics: out.metrics,
      config: { probe: out.config, batch, data: values.data, imageSize: size, onnx: values.onnx },
      checkpoint: { path: values.checkpoint, sha256: opened.sha256, method: opened.method, step: opened.step },
      model: opened.config,
      encoder: enc.info,
      data: { spec: values.data, train: tr.n, val: va.n, classes: trainDs.numClasses },
      timings: {
        extractTrainSec: tr.seconds,
        extractValSec: va.seconds,
        probeSec: out.seconds,
        totalSec: (performance.now() - t0) / 1000,
      },
      backend: values.onnx ? `onnxruntime-node (${threads} threads)` : backend,
      git: await gitState(),
      runtime: await runtimeVersions(),
      details: out.details,
    };
    const path = values.out ?? join(dirname(values.checkpoint), `eval_${probe}.json`);
    await atomicWriteJson(path, record);
    console.error(`wrote ${path}`);
  } finally {
    opened.dispose();
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`eval: ${(e as Error).stack ?? e}`);
    Deno.exit(1);
  }
}
