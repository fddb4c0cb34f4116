/**
 * The real phases of a benchmark cell, wired to the suite's modules: data from `datasets/`
 * (the synthetic default generated on first use), methods from `model/methods.ts`, the
 * method-agnostic trainer (`model/trainer.ts`, resumable safetensors checkpoints), and the
 * probes of `eval/`. `cell_runner.ts` does the bookkeeping around them.
 *
 * Every method gets the same data, budget (steps x global batch; the method's schedules are
 * stretched to exactly that many steps) and probe protocol; only its own augmentation scale
 * (SPEC: CAPI 0.6-1, MAE 0.2-1, SimMIM 0.67-1) and optimisation recipe differ.
 *
 * @module
 */
import { ensureSynthetic, openSynthetic } from "../datasets/synthetic.ts";
import { openImagenet } from "../datasets/imagenet.ts";
import { openAde20k } from "../datasets/ade20k.ts";
import type { ImageDataset, Split, Task } from "../datasets/dataset.ts";
import { DataLoader } from "../datasets/loader.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import type { MethodName, MimMethod } from "../model/method.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { readSafetensors } from "../model/safetensors.ts";
import { CHECKPOINT_FILE, train } from "../model/trainer.ts";
import type { HostTensor } from "../model/fixture.ts";
import { CapiConfig } from "../model/capi/config.ts";
import { AttentiveProbeConfig, ClassProbeConfig, runClassProbe } from "../eval/class_probe.ts";
import { KnnProbeConfig, runKnnProbe } from "../eval/knn_probe.ts";
import { runSegKnn, SegKnnConfig } from "../eval/seg_knn.ts";
import { runSegLogreg, SegLogregConfig } from "../eval/seg_logreg.ts";
import type { BenchPhases, EvaluateContext, PretrainContext, ProbeOutcome } from "./cell_runner.ts";
import { hashFileList } from "./identity.ts";
import { type ClassFeatures, extractClassFeatures, extractSegFeatures, type SegFeatureSet } from "./features.ts";
import { RawPixelEncoder } from "./raw_pixels.ts";
import type { ResolvedData } from "./run_record.ts";
import type { Cell, DataSpec, ProbeSpec } from "./suite.ts";

/** RandomResizedCrop scale of each method's recipe (SPEC 1.6, 2, 3). */
const CROP_SCALE: Record<MethodName, [number, number]> = { capi: [0.6, 1], mae: [0.2, 1], simmim: [0.67, 1] };

/** The folder whose file list identifies a data spec. */
function dataFolder(spec: DataSpec): string {
  if (spec.source === "synthetic") {
    return spec.kind === "imagenet" ? `${spec.root}/imagenet/${spec.split}` : `${spec.root}/ade20k`;
  }
  return spec.kind === "imagenet" ? `${spec.root}/${spec.split}` : spec.root;
}

function asSplit(spec: DataSpec): Split {
  if (spec.split !== "train" && spec.split !== "val") {
    throw new Error(`data '${spec.name}': split must be 'train' or 'val', got '${spec.split}'`);
  }
  return spec.split;
}

function openSpec(spec: DataSpec): Promise<ImageDataset> {
  const task: Task = spec.kind === "imagenet" ? "classification" : "segmentation";
  if (spec.source === "synthetic") return openSynthetic(spec.root, asSplit(spec), task);
  return spec.kind === "imagenet" ? openImagenet(spec.root, asSplit(spec)) : openAde20k(spec.root, asSplit(spec));
}

/** Deep-merge plain objects (`b` wins). */
function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    const isObj = (x: unknown) => x !== null && typeof x === "object" && !Array.isArray(x);
    out[k] = isObj(cur) && isObj(v) ? merge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

/**
 * The method's config for a cell: preset, then the suite's overrides, then the budget. The
 * preset's schedule (`optim.totalIters`, `warmupIters`, `milestones`) is rescaled to the budget
 * so that every method's schedule spans exactly the suite's steps.
 */
export function methodConfig(method: MethodName, cell: Cell): Record<string, unknown> {
  const cfg = merge(methodPreset(method, cell.model.preset), cell.model.overrides);
  const steps = cell.pretrain?.steps;
  if (!steps) return cfg;
  const optim = { ...(cfg.optim as Record<string, unknown> | undefined ?? {}) };
  const total = typeof optim.totalIters === "number" ? optim.totalIters : null;
  if (total) {
    const scale = (x: number) => Math.max(0, Math.min(steps, Math.round((x * steps) / total)));
    if (typeof optim.warmupIters === "number") optim.warmupIters = scale(optim.warmupIters);
    if (Array.isArray(optim.milestones)) optim.milestones = (optim.milestones as number[]).map(scale);
  }
  optim.totalIters = steps;
  return { ...cfg, optim };
}

function buildMethod(cell: Cell): MimMethod {
  if (cell.subject.kind === "raw_pixels") throw new Error("raw_pixels has no method");
  const method = cell.subject.method;
  return createMethod(method, methodConfig(method, cell), cell.seed, { batchSize: cell.pretrain?.batchSize });
}

/** Load a finished checkpoint's parameters (optimizer state skipped) into `method`. */
async function loadWeights(method: MimMethod, dir: string): Promise<void> {
  const path = `${dir}/${CHECKPOINT_FILE}`;
  const f = await readSafetensors(path);
  const params = new Map<string, HostTensor<Float32Array>>();
  for (const [name, t] of f.tensors) {
    if (!name.startsWith("optim.") && t.data instanceof Float32Array) params.set(name, t as HostTensor<Float32Array>);
  }
  const missing = method.params.names().filter((n) => !params.has(n));
  if (missing.length) {
    throw new Error(`${path}: lacks ${missing.length} parameters of ${method.name}, e.g. '${missing[0]}'`);
  }
  method.params.assign(params);
}

/** Training images from iteration `start` on: whole epochs are skipped unread, then `start % perEpoch` batches. */
async function* imagesFrom(loader: DataLoader, perEpoch: number, start: number) {
  let skip = start % perEpoch;
  for (let epoch = Math.floor(start / perEpoch);; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      if (skip > 0) {
        skip--;
        continue;
      }
      yield batch.images;
    }
  }
}

async function pretrain({ cell, checkpointDir, pretrainHash }: PretrainContext) {
  const pre = cell.pretrain!;
  const method = buildMethod(cell);
  try {
    const [h, w] = method.encoder().info.imageSize;
    const ds = await openSpec(pre.data);
    const loader = new DataLoader(ds, {
      batchSize: pre.batchSize,
      transform: { kind: "train", size: [h, w], scale: CROP_SCALE[method.name], ratio: [3 / 4, 4 / 3], hflip: 0.5 },
      seed: cell.seed,
      shuffle: true,
      dropLast: true,
      concurrency: 4 * cell.runtime.workers,
    });
    const perEpoch = loader.batchesPerEpoch;
    if (perEpoch < 1) throw new Error(`pretraining data '${pre.data.name}' has fewer images than one batch`);
    return await train(method, (start) => imagesFrom(loader, perEpoch, start), {
      steps: pre.steps,
      seed: cell.seed,
      outDir: checkpointDir,
      logEvery: cell.runtime.logEvery,
      checkpointEvery: cell.runtime.checkpointEvery,
      resume: true,
      identity: { pretrainHash },
    });
  } finally {
    method.dispose();
  }
}

/** The encoder a cell evaluates, and its owner to dispose. */
async function encoderFor(cell: Cell, checkpointDir: string | null) {
  if (cell.subject.kind === "raw_pixels") {
    // Raw pixels at the resolution and patch size the methods' encoders see for this preset.
    const c = CapiConfig.parse(merge(methodPreset("capi", cell.model.preset), cell.model.overrides));
    const size: [number, number] = typeof c.imageSize === "number" ? [c.imageSize, c.imageSize] : c.imageSize;
    const enc = new RawPixelEncoder(size, c.patchSize);
    return { encoder: enc as VisionEncoder, config: { imageSize: size, patchSize: c.patchSize }, dispose: () => {} };
  }
  const method = buildMethod(cell);
  if (cell.subject.kind === "pretrained") await loadWeights(method, checkpointDir!);
  return {
    encoder: method.encoder(),
    config: methodConfig(cell.subject.method, cell),
    dispose: () => method.dispose(),
  };
}

async function runProbe(
  spec: ProbeSpec,
  seed: number,
  cls: (d: DataSpec) => Promise<{ feats: ClassFeatures; classes: number }>,
  seg: (d: DataSpec) => Promise<SegFeatureSet>,
): Promise<ProbeOutcome> {
  const t0 = performance.now();
  const cfg = { ...spec.config, seed };
  const p = spec.probe;
  let metrics: Record<string, number>, config: Record<string, unknown>;
  switch (p) {
    case "knn": {
      const [tr, va] = [await cls(spec.train), await cls(spec.eval)];
      const c = KnnProbeConfig.parse(cfg);
      const r = await runKnnProbe(
        { x: tr.feats.global, labels: tr.feats.labels },
        { x: va.feats.global, labels: va.feats.labels },
        tr.classes,
        c,
      );
      metrics = { "knn/top1": r.top1 };
      config = { ...c, selectedK: r.k };
      break;
    }
    case "linear":
    case "attentive": {
      const [tr, va] = [await cls(spec.train), await cls(spec.eval)];
      const c = p === "linear" ? ClassProbeConfig.parse(cfg) : AttentiveProbeConfig.parse(cfg);
      const x = (f: ClassFeatures) => (p === "linear" ? f.global : f.tokens);
      const r = await runClassProbe(
        p,
        { x: x(tr.feats), labels: tr.feats.labels },
        { x: x(va.feats), labels: va.feats.labels },
        tr.classes,
        c,
      );
      metrics = { [`${p}/top1`]: r.top1 };
      config = { ...c, selectedLr: r.lr, selectedWd: r.wd };
      break;
    }
    case "seg_knn":
    case "seg_logreg": {
      const [tr, va] = [await seg(spec.train), await seg(spec.eval)];
      const r = p === "seg_knn"
        ? await runSegKnn(tr, va, SegKnnConfig.parse(cfg))
        : await runSegLogreg(tr, va, SegLogregConfig.parse(cfg));
      metrics = { [`${p}/miou`]: r.miou, [`${p}/pixelAcc`]: r.pixelAcc };
      config = { ...cfg, selected: r.selected };
      break;
    }
  }
  return { probe: p, metrics, config, seconds: (performance.now() - t0) / 1000 };
}

async function evaluate({ cell, checkpointDir, log }: EvaluateContext) {
  const { encoder, config, dispose } = await encoderFor(cell, checkpointDir);
  let extractSec = 0;
  const opts = { batchSize: cell.runtime.evalBatchSize, concurrency: 4 * cell.runtime.workers };
  const clsCache = new Map<string, Promise<{ feats: ClassFeatures; classes: number }>>();
  const segCache = new Map<string, Promise<SegFeatureSet>>();
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await f();
    extractSec += (performance.now() - t0) / 1000;
    log(`  features ${what} in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    return out;
  };
  const key = (d: DataSpec) => JSON.stringify([d.kind, d.source, d.root, d.split]);
  const cls = (d: DataSpec) => {
    if (!clsCache.has(key(d))) {
      clsCache.set(
        key(d),
        timed(`${d.name}/${d.split}`, async () => {
          const ds = await openSpec(d);
          return { feats: await extractClassFeatures(encoder, ds, opts), classes: ds.numClasses };
        }),
      );
    }
    return clsCache.get(key(d))!;
  };
  const seg = (d: DataSpec) => {
    if (!segCache.has(key(d))) {
      segCache.set(
        key(d),
        timed(`${d.name}/${d.split}`, async () => extractSegFeatures(encoder, await openSpec(d), opts)),
      );
    }
    return segCache.get(key(d))!;
  };
  try {
    const probes: ProbeOutcome[] = [];
    for (const spec of cell.protocol.probes) {
      const out = await runProbe(spec, cell.seed, cls, seg);
      const main = `${spec.probe}/${spec.mainMetric}`;
      log(`  ${spec.probe}: ${main}=${out.metrics[main]?.toFixed(4)} (${out.seconds.toFixed(1)}s)`);
      probes.push(out);
    }
    // Probe time excludes the feature extraction that the first probe of each split triggered.
    return { arch: encoder.info.arch, resolvedConfig: config, extractSec, probes };
  } finally {
    encoder.dispose();
    dispose();
  }
}

/** Resolve a data spec: generate the synthetic data if needed, hash its file list. */
async function resolveData(spec: DataSpec): Promise<ResolvedData> {
  if (spec.source === "synthetic") await ensureSynthetic({ root: spec.root, log: (l) => console.log(l) });
  const { hash, numFiles } = await hashFileList(dataFolder(spec));
  return { kind: spec.kind, name: spec.name, root: spec.root, split: spec.split, fileListHash: hash, numFiles };
}

/** The phases `deno task bench` runs. */
export const BENCH_PHASES: BenchPhases = { resolveData, pretrain, evaluate };
