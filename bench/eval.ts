/**
 * `deno task eval --checkpoint PATH --probe linear|attentive|knn|seg_knn|seg_logreg --data KIND:ROOT
 *   [--protocol cpu|paper] [--backend wasm|cpu|tensorflow] [--onnx] [--threads 2] [--batch 32]
 *   [--limit-train N] [--limit-val N] [--seed 0] [--probe-config JSON] [--cache DIR | --no-cache]
 *   [--adapter FILE.json] [--out FILE.json]`
 *
 * One frozen-encoder evaluation (SPEC 1.10): opens the encoder of a `deno task pretrain`
 * checkpoint (tfjs, or `--onnx`: exported from the same weights and run by onnxruntime; an
 * external `.onnx` with `--adapter`), runs the probe under the chosen protocol (`cpu`: scaled
 * for 2 cores; `paper`: the official evaluation's settings, eval/protocols.ts) with
 * hyper-parameters chosen on a held-out part of train, prints `<probe>/<metric> value` lines
 * and a status line (converged, constant prediction), and writes a JSON record with the
 * protocol, resolved config, metrics, status, details and timings (default:
 * `<checkpoint dir>/eval_<probe>.json`). Features go to a sharded store on disk (cached by
 * checkpoint hash + data + subset + transform), or, for `paper` linear/attentive, are computed
 * on the fly from augmented images as the official code does. `--limit-train/--limit-val N`
 * evaluate on N samples drawn stratified by class with `--seed`.
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
import type { ImageDataset } from "../datasets/dataset.ts";
import { extractFeatures } from "../eval/features.ts";
import { datasetSource, subsetDataset } from "../eval/dataset_source.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import {
  isSegmentation,
  parseProbe,
  probeImageSize,
  probeInput,
  resolveProbeConfig,
  runProbe,
} from "../eval/probes.ts";
import { parseProtocol } from "../eval/protocols.ts";
import { stratifiedSubset } from "../eval/splits.ts";
import { atomicWriteJson } from "./atomic_write.ts";
import { gitState, runtimeVersions } from "./provenance.ts";

const USAGE = "usage: deno task eval --checkpoint PATH --probe linear|attentive|knn|seg_knn|seg_logreg " +
  "--data KIND:ROOT [--protocol cpu|paper] [--backend wasm] [--onnx] [--threads 2] [--batch 32] " +
  "[--limit-train N] [--limit-val N] [--seed 0] [--probe-config JSON] [--cache DIR | --no-cache] " +
  "[--adapter FILE.json] [--out FILE.json]";

function intFlag(v: string | undefined, name: string, fallback: number | undefined, min = 1): number | undefined {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

/** `ds`, or N of its samples stratified by class with `seed` (the id then names the subset). */
function limited(ds: ImageDataset, id: string, n: number | undefined, seed: number) {
  if (n === undefined || n >= ds.length) return { ds, id };
  const labels = Int32Array.from({ length: ds.length }, (_, i) => ds.label(i));
  return { ds: subsetDataset(ds, stratifiedSubset(labels, n, seed)), id: `${id} stratified n=${n} seed=${seed}` };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      checkpoint: { type: "string" },
      probe: { type: "string" },
      data: { type: "string" },
      protocol: { type: "string" },
      backend: { type: "string" },
      onnx: { type: "boolean", default: false },
      threads: { type: "string" },
      batch: { type: "string" },
      "limit-train": { type: "string" },
      "limit-val": { type: "string" },
      seed: { type: "string" },
      "probe-config": { type: "string" },
      cache: { type: "string" },
      "no-cache": { type: "boolean", default: false },
      adapter: { type: "string" },
      out: { type: "string" },
    },
  });
  if (!values.checkpoint || !values.probe || !values.data) throw new Error(USAGE);
  const probe = parseProbe(values.probe);
  const protocol = parseProtocol(values.protocol);
  const backend = parseBackend(values.backend);
  const threads = intFlag(values.threads, "threads", 2)!;
  const batch = intFlag(values.batch, "batch", 32)!;
  const overrides = values["probe-config"] ? JSON.parse(values["probe-config"]) : {};
  const seed = intFlag(values.seed, "seed", typeof overrides.seed === "number" ? overrides.seed : 0, 0)!;
  const config = resolveProbeConfig(probe, protocol, { ...overrides, seed });
  await initBackend(backend);

  const spec = parseDataSpec(values.data);
  const task = isSegmentation(probe) ? "segmentation" : "classification";
  const log = (line: string) => console.error(line);
  const train = limited(
    await openDataset(spec, "train", { task, log }),
    `${values.data} train`,
    intFlag(values["limit-train"], "limit-train", undefined),
    seed,
  );
  const val = limited(
    await openDataset(spec, "val", { task, log }),
    `${values.data} val`,
    intFlag(values["limit-val"], "limit-val", undefined),
    seed,
  );

  const t0 = performance.now();
  const opened = await openEncoder(values.checkpoint, { onnx: values.onnx, threads, adapterPath: values.adapter });
  const enc = opened.encoder;
  const input = probeInput(probe, config);
  const tables: { close(): Promise<void> }[] = [];
  try {
    const size = probeImageSize(probe, config, enc.info);
    const cache = values["no-cache"] ? undefined : {
      dir: values.cache ?? ".cache/eval-features",
      encoderKey: `${opened.sha256} ${values.onnx ? "onnx" : "tfjs"}`,
    };
    const extract = async (ds: ImageDataset, id: string) => {
      const t = performance.now();
      const src = datasetSource(ds, id, size);
      const table = await extractFeatures(enc, src, { batchSize: batch, keepPatches: input.patches, cache });
      tables.push(table);
      return { table, seconds: (performance.now() - t) / 1000 };
    };
    const tr = input.online ? null : await extract(train.ds, train.id);
    const va = input.online ? null : await extract(val.ds, val.id);
    const out = await runProbe(
      probe,
      input.online
        ? { online: { encoder: enc, train: train.ds, val: val.ds, batchPerDevice: batch, evalBatch: batch } }
        : { train: tr!.table, val: va!.table },
      { method: opened.method, classes: train.ds.numClasses, protocol, config, log },
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
      protocol,
      metrics: out.metrics,
      status: out.status,
      config: { probe: out.config, batch, data: values.data, imageSize: size, onnx: values.onnx },
      checkpoint: { path: values.checkpoint, sha256: opened.sha256, method: opened.method, step: opened.step },
      model: opened.config,
      encoder: enc.info,
      data: {
        spec: values.data,
        train: { n: train.ds.length, id: train.id },
        val: { n: val.ds.length, id: val.id },
        classes: train.ds.numClasses,
      },
      timings: {
        extractTrainSec: tr?.seconds ?? 0,
        extractValSec: va?.seconds ?? 0,
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
    for (const t of tables) await t.close();
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
