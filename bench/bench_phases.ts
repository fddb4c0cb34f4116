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
import { type StrictDataset, strictDataset } from "../datasets/strict_dataset.ts";
import { DataLoader } from "../datasets/loader.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import { initialValues, type MethodName, type MimMethod } from "../model/method.ts";
import { EngineEncoder, evalOnlySpec } from "../model/engine_encoder.ts";
import type { StartedEngine } from "../model/engine_choice.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { readSafetensors } from "../model/safetensors.ts";
import { CHECKPOINT_FILE, LOG_FILE, train, type TrainResult } from "../model/trainer.ts";
import type { HostTensor } from "../model/fixture.ts";
import { CapiConfig } from "../model/capi/config.ts";
import type { EvalMethod } from "../eval/feature_sources.ts";
import { openEncoder } from "../eval/checkpoint_encoder.ts";
import { limitedDataset } from "../eval/dataset_source.ts";
import { resolveCheckpoint } from "./checkpoint_arg.ts";
import { defaultSyntheticRoot, SyntheticConfig } from "../datasets/synthetic.ts";
import type { BenchPhases, EvaluateContext, PretrainContext } from "./cell_runner.ts";
import { runProtocolProbes } from "./protocol_probes.ts";
import { hashFileList } from "./identity.ts";
import { RawPixelEncoder } from "./raw_pixels.ts";
import type { LossCurves, ResolvedData } from "./run_record.ts";
import type { Cell, DataSpec } from "./suite.ts";

/** RandomResizedCrop scale of each method's recipe (SPEC 1.6, 2, 3). */
const CROP_SCALE: Record<MethodName, [number, number]> = { capi: [0.6, 1], mae: [0.2, 1], simmim: [0.67, 1] };

/** Where a spec's data lives: `auto` (synthetic only) is the generator's versioned cache folder. */
function rootOf(spec: DataSpec): string {
  if (spec.source === "synthetic" && spec.root === "auto") {
    return defaultSyntheticRoot(SyntheticConfig.parse(spec.synthetic ?? {}));
  }
  return spec.root;
}

/** The folder whose file list identifies a data spec. */
function dataFolder(spec: DataSpec): string {
  const root = rootOf(spec);
  if (spec.source === "synthetic") {
    return spec.kind === "imagenet" ? `${root}/imagenet/${spec.split}` : `${root}/ade20k`;
  }
  return spec.kind === "imagenet" ? `${root}/${spec.split}` : root;
}

function asSplit(spec: DataSpec): Split {
  if (spec.split !== "train" && spec.split !== "val") {
    throw new Error(`data '${spec.name}': split must be 'train' or 'val', got '${spec.split}'`);
  }
  return spec.split;
}

function openSpec(spec: DataSpec): Promise<ImageDataset> {
  const task: Task = spec.kind === "imagenet" ? "classification" : "segmentation";
  if (spec.source === "synthetic") return openSynthetic(rootOf(spec), asSplit(spec), task);
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
  if (cell.subject.kind === "raw_pixels" || cell.subject.kind === "released") {
    throw new Error(`${cell.subject.kind} has no method to build`);
  }
  const method = cell.subject.method;
  return createMethod(method, methodConfig(method, cell), cell.seed, { batchSize: cell.pretrain?.batchSize });
}

/** A finished checkpoint's parameters (optimizer state skipped); every name of `names` must be there. */
async function loadWeights(
  method: MimMethod,
  names: string[],
  dir: string,
): Promise<Map<string, HostTensor<Float32Array>>> {
  const path = `${dir}/${CHECKPOINT_FILE}`;
  const f = await readSafetensors(path);
  const params = new Map<string, HostTensor<Float32Array>>();
  for (const [name, t] of f.tensors) {
    if (!name.startsWith("optim.") && t.data instanceof Float32Array) params.set(name, t as HostTensor<Float32Array>);
  }
  const missing = names.filter((n) => !params.has(n));
  if (missing.length) {
    throw new Error(`${path}: lacks ${missing.length} parameters of ${method.name}, e.g. '${missing[0]}'`);
  }
  return params;
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

/** Keys of a log line that are not loss components: bookkeeping (and the method's schedule values). */
const NOT_COMPONENTS = ["step", "img_per_s", "time"];

/**
 * The pretraining curves from a trainer's JSONL log: every numeric key of each line except
 * `exclude` (bookkeeping, schedule values) is a component. A step logged twice (before a kill and
 * after the resume) keeps the later line; they are identical on deterministic backends.
 */
export function curvesFromLog(text: string, exclude: readonly string[] = []): LossCurves {
  const skip = new Set([...NOT_COMPONENTS, ...exclude]);
  const byStep = new Map<number, Record<string, unknown>>();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const e = JSON.parse(line) as Record<string, unknown>;
    if (typeof e.step === "number") byStep.set(e.step, e);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  const keys = new Set<string>();
  for (const e of byStep.values()) {
    for (const [k, v] of Object.entries(e)) if (!skip.has(k) && (typeof v === "number" || v === null)) keys.add(k);
  }
  const components: Record<string, (number | null)[]> = {};
  for (const k of [...keys].sort()) {
    components[k] = steps.map((s) => {
      const v = byStep.get(s)![k];
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    });
  }
  return { source: "log.jsonl", steps, components };
}

/**
 * The curves of the whole run: after a resume the trainer returns only this session's loss
 * points, while its JSONL log holds every session's. Without a log, the trainer's own curve.
 */
async function runCurves(
  dir: string,
  result: TrainResult,
  scheduleKeys: string[],
): Promise<{ lossCurve: TrainResult["lossCurve"]; curves?: LossCurves }> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${LOG_FILE}`);
  } catch {
    return { lossCurve: result.lossCurve }; // no log: the trainer's own curve is all there is
  }
  const curves = curvesFromLog(text, scheduleKeys);
  const byStep = new Map<number, number>();
  curves.steps.forEach((s, i) => {
    const v = curves.components.loss?.[i];
    if (typeof v === "number") byStep.set(s, v);
  });
  for (const p of result.lossCurve) byStep.set(p.step, p.loss);
  const lossCurve = [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
  return { lossCurve, curves };
}

/** Opens a data spec as strict reading allows (`strictDataset`), once per spec. */
type OpenData = (spec: DataSpec) => Promise<StrictDataset>;

async function pretrain({ cell, checkpointDir, pretrainHash }: PretrainContext, open: OpenData, engine: StartedEngine) {
  const pre = cell.pretrain!;
  const method = buildMethod(cell);
  const [h, w] = method.encoderInfo.imageSize;
  const ds = (await open(pre.data)).dataset;
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
  const result = await train(method, (start) => imagesFrom(loader, perEpoch, start), {
    steps: pre.steps,
    seed: cell.seed,
    outDir: checkpointDir,
    logEvery: cell.runtime.logEvery,
    checkpointEvery: cell.runtime.checkpointEvery,
    batchPerDevice: cell.runtime.batchPerDevice,
    resume: true,
    identity: { pretrainHash },
    engine: engine.factory,
  });
  // Schedule values the method logs beside its losses (lr, momentum) are not loss components.
  const scheduleKeys = Object.keys(method.logScalars(0));
  return { ...result, ...(await runCurves(checkpointDir, result, scheduleKeys)) };
}

/**
 * The encoder a cell evaluates, on the engine that pretrains (`runtime.engine`/`ep`, a runtime
 * knob outside the identity): the method's own `encode` (its one definition) with the
 * checkpoint's weights, released weights read from their file, or raw pixels.
 */
async function encoderFor(cell: Cell, checkpointDir: string | null, engine: StartedEngine) {
  if (cell.subject.kind === "raw_pixels") {
    // Raw pixels at the resolution and patch size the methods' encoders see for this preset.
    const c = CapiConfig.parse(merge(methodPreset("capi", cell.model.preset), cell.model.overrides));
    const size: [number, number] = typeof c.imageSize === "number" ? [c.imageSize, c.imageSize] : c.imageSize;
    return {
      encoder: new RawPixelEncoder(size, c.patchSize) as VisionEncoder,
      evalMethod: "external" as EvalMethod,
      config: { imageSize: size, patchSize: c.patchSize },
      dispose: () => {},
    };
  }
  if (cell.subject.kind === "released") {
    const s = cell.subject;
    const ckpt = await resolveCheckpoint(s.checkpoint, { hubCache: cell.runtime.hubCache });
    const opened = await openEncoder(ckpt.path, {
      engine,
      threads: cell.runtime.workers,
      method: s.method,
      preset: s.preset,
      overrides: s.overrides,
    });
    return {
      encoder: opened.encoder,
      evalMethod: s.method as EvalMethod,
      config: opened.config ?? {},
      checkpoint: { name: s.checkpoint, sha256: opened.sha256, format: opened.format },
      dispose: () => {}, // the caller disposes the encoder
    };
  }
  const method = buildMethod(cell);
  const spec = method.stepSpec();
  const params = cell.subject.kind === "pretrained"
    ? await loadWeights(method, [...spec.params.keys()], checkpointDir!)
    : initialValues(spec);
  const encoder = new EngineEncoder(await engine.factory(evalOnlySpec(params)), method, true);
  return {
    encoder: encoder as VisionEncoder,
    evalMethod: method.name as EvalMethod,
    config: methodConfig(method.name, cell),
    dispose: () => {}, // the caller disposes the encoder, which owns its engine
  };
}

/** Probe every spec of the cell's protocol with the cell's encoder (protocol_probes.ts). */
async function evaluate({ cell, checkpointDir, log }: EvaluateContext, open: OpenData, engine: StartedEngine) {
  const { encoder, evalMethod, config, dispose, ...rest } = await encoderFor(cell, checkpointDir, engine);
  const checkpoint = "checkpoint" in rest ? rest.checkpoint : undefined;
  try {
    const openRole = async (d: DataSpec, role: "train" | "eval") => {
      const ds = (await open(d)).dataset;
      const n = role === "train" ? cell.runtime.limitTrain : cell.runtime.limitVal;
      return limitedDataset(ds, n, cell.seed);
    };
    const { extractSec, probes } = await runProtocolProbes(cell, encoder, evalMethod, openRole, log);
    return {
      arch: encoder.info.arch,
      resolvedConfig: config,
      extractSec,
      probes,
      ...(checkpoint ? { checkpoint } : {}),
    };
  } finally {
    encoder.dispose();
    dispose();
  }
}

/** Resolve a data spec: generate the synthetic data if needed, check it strictly, hash its file list. */
async function resolveData(spec: DataSpec, open: OpenData, log: (line: string) => void): Promise<ResolvedData> {
  if (spec.source === "synthetic") {
    await ensureSynthetic({ root: rootOf(spec), config: SyntheticConfig.parse(spec.synthetic ?? {}), log });
  }
  const { hash, numFiles } = await hashFileList(dataFolder(spec)).catch((err: Error) => {
    const hint = spec.kind === "imagenet" ? "IMAGENET_ROOT" : "ADE20K_ROOT";
    throw new Error(`${err.message}; data '${spec.name}' (${spec.kind}, split ${spec.split}): point ${hint} at it`);
  });
  const { skipped } = await open(spec);
  return {
    kind: spec.kind,
    name: spec.name,
    root: rootOf(spec),
    split: spec.split,
    fileListHash: hash,
    numFiles,
    skipped: { count: skipped.length, examples: skipped.slice(0, 20).map((p) => `${p.path}: ${p.problem}`) },
  };
}

/**
 * The phases `deno task bench` runs. Data is read strictly: a split with problems (unlabelled
 * images, unknown class folders, missing annotations, unreadable files) fails the run naming
 * them, unless `allowMissing`, which leaves those samples out and records how many.
 */
export function benchPhases(
  data: { allowMissing: boolean; engine: StartedEngine; workers?: number; log?: (line: string) => void },
): BenchPhases {
  const log = data.log ?? ((line: string) => console.log(line));
  const opened = new Map<string, Promise<StrictDataset>>();
  const open: OpenData = (spec) => {
    const key = JSON.stringify([spec.kind, spec.source, spec.root, spec.split, spec.synthetic]);
    if (!opened.has(key)) {
      opened.set(
        key,
        openSpec(spec).then((ds) =>
          strictDataset(ds, { allowMissing: data.allowMissing, concurrency: 4 * (data.workers ?? 2), log })
        ),
      );
    }
    return opened.get(key)!;
  };
  return {
    resolveData: (spec) => resolveData(spec, open, log),
    pretrain: (ctx) => pretrain(ctx, open, data.engine),
    evaluate: (ctx) => evaluate(ctx, open, data.engine),
  };
}
