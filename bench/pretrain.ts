/**
 * `deno task pretrain --method capi --preset tiny --data synthetic --steps N --out DIR
 *   [--resume | --force] [--engine tfjs|ort] [--ep cpu|webgpu|cuda] [--backend NAME] [--batch 64] [--seed 0]
 *   [--log-every 10] [--ckpt-every 200]`
 *   (`--help` lists every flag)
 *
 * Pretrains one method with the method-agnostic trainer (`model/trainer.ts`): a progress
 * bar on stderr, `DIR/log.jsonl` every `--log-every` steps, `DIR/checkpoint.safetensors`
 * (official parameter names, atomic) every `--ckpt-every` steps and at the end, and
 * `DIR/run.json` (resolved config, identity, throughput, what `--allow-missing` skipped, and the
 * provenance: code version, engine as it ran, library versions, machine, start and finish). The
 * checkpoint's identity includes the code version and engine, so `--resume` under other code or
 * another engine is refused. The schedules are fitted to the run: total iterations = `--steps`.
 *
 * Data (`openPretrainData`, the one place it is hooked up): a `datasets` spec (`synthetic`,
 * generated on first use, `imagenet:ROOT`, `ade20k:ROOT`) or `procedural` (seeded images made
 * on the fly, no files: quick checks and throughput measurements).
 *
 * An `--out` that already holds a run is refused (exit 2, nothing touched) unless `--resume`
 * continues it or `--force` deletes its checkpoint, log, run.json and eval records first.
 *
 * Expected (2 shared cores, wasm): see the README's measured images/s.
 *
 * @module
 */
import { ENGINE_FLAG_HELP, parseEngineChoice, startEngine } from "../model/engine_choice.ts";
import type { HostTensor } from "../model/fixture.ts";
import { METHOD_NAMES, type MethodName } from "../model/method.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { Rng } from "../model/rng.ts";
import { type BatchSource, CHECKPOINT_FILE, LOG_FILE, train } from "../model/trainer.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { DataLoader, openDataset, parseDataSpec, type Problem, strictDataset } from "../datasets/mod.ts";
import { choiceFlag, type CliSpec, intFlag, type ParsedArgs, runCli, UsageError } from "./cli.ts";
import { codeVersion } from "./code_version.ts";
import { decoderVersions, deviceInfo, engineKey, engineLabel, isCi, runtimeVersions } from "./provenance.ts";

/**
 * Seeded procedural images `[B, 3, H, W]`, roughly ImageNet-normalised: a few oriented
 * colour gratings and soft discs per image, so that patches are predictable from context and
 * a pretraining loss can fall. Batch `i` depends only on (seed, i).
 */
export function syntheticBatch(
  seed: number,
  index: number,
  batch: number,
  h: number,
  w: number,
): HostTensor<Float32Array> {
  const out = new Float32Array(batch * 3 * h * w);
  for (let b = 0; b < batch; b++) {
    const rng = Rng.from(seed, "synthetic", index, b);
    const base = [rng.normal() * 0.5, rng.normal() * 0.5, rng.normal() * 0.5];
    const gratings = Array.from({ length: 2 }, () => ({
      fx: rng.uniform(-0.5, 0.5),
      fy: rng.uniform(-0.5, 0.5),
      ph: rng.uniform(0, 2 * Math.PI),
      col: [rng.normal(), rng.normal(), rng.normal()],
    }));
    const discs = Array.from({ length: 3 }, () => ({
      cy: rng.uniform(0, h),
      cx: rng.uniform(0, w),
      r: rng.uniform(0.1, 0.3) * Math.min(h, w),
      col: [rng.normal() * 1.5, rng.normal() * 1.5, rng.normal() * 1.5],
    }));
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++) {
          let v = base[c];
          for (const g of gratings) v += 0.5 * g.col[c] * Math.sin(g.fx * x + g.fy * y + g.ph);
          for (const d of discs) {
            const r2 = ((y - d.cy) ** 2 + (x - d.cx) ** 2) / (d.r * d.r);
            v += d.col[c] / (1 + Math.exp(8 * (r2 - 1)));
          }
          out[((b * 3 + c) * h + y) * w + x] = v + 0.1 * rng.normal();
        }
      }
    }
  }
  return { shape: [batch, 3, h, w], data: out };
}

/** RandomResizedCrop area range of each method's pretraining (SPEC 1.6, 2, 3). */
const CROP_SCALE: Record<MethodName, [number, number]> = { capi: [0.6, 1], mae: [0.2, 1], simmim: [0.67, 1] };

/**
 * The one data hook-up: `--data` spec -> a batch source that can start at any step.
 * `procedural` = the seeded generator above (no files); anything else is a `datasets` spec
 * (`synthetic`, `synthetic:ROOT`, `imagenet:ROOT`, `ade20k:ROOT`), train split, read strictly
 * (problems fail here naming their paths unless `allowMissing`, which skips and returns them),
 * with the method's RandomResizedCrop + horizontal flip; epochs follow each other, seeded by `seed`.
 */
export async function openPretrainData(
  spec: string,
  o: {
    method: MethodName;
    seed: number;
    batch: number;
    imageSize: [number, number];
    steps: number;
    allowMissing?: boolean;
  },
): Promise<{ source: BatchSource; skipped: Problem[] }> {
  if (spec === "procedural") {
    const source = (start: number) => ({
      async *[Symbol.asyncIterator]() {
        for (let i = start; i < o.steps; i++) yield syntheticBatch(o.seed, i, o.batch, ...o.imageSize);
      },
    });
    return { source, skipped: [] };
  }
  const log = (l: string) => console.error(l);
  const { dataset: ds, skipped } = await strictDataset(
    await openDataset(parseDataSpec(spec), "train", { log }),
    { allowMissing: o.allowMissing ?? false, log },
  );
  const loader = new DataLoader(ds, {
    batchSize: o.batch,
    transform: { kind: "train", size: o.imageSize, scale: CROP_SCALE[o.method], ratio: [3 / 4, 4 / 3], hflip: 0.5 },
    seed: o.seed,
    dropLast: true,
  });
  const perEpoch = loader.batchesPerEpoch;
  if (perEpoch < 1) throw new Error(`--data ${spec}: fewer than ${o.batch} training images (one batch)`);
  const source = (start: number) => ({
    async *[Symbol.asyncIterator]() {
      let step = Math.floor(start / perEpoch) * perEpoch;
      for (let epoch = Math.floor(start / perEpoch); step < o.steps; epoch++) {
        for await (const b of loader.epoch(epoch)) {
          if (step >= start) yield b.images; // batches before `start` are replayed, not trained on
          if (++step >= o.steps) return;
        }
      }
    },
  });
  return { source, skipped };
}

function imageSizeOf(config: Record<string, unknown>): [number, number] {
  const s = config.imageSize;
  if (typeof s === "number") return [s, s];
  if (Array.isArray(s) && s.length === 2) return [Number(s[0]), Number(s[1])];
  throw new Error(`pretrain: config.imageSize must be a number or [H, W], got ${JSON.stringify(s)}`);
}

export const PRETRAIN_CLI = {
  name: "pretrain",
  synopsis: "deno task pretrain [--method M] [--preset P] [--data SPEC] [--steps N] [--out DIR] [--resume | --force]",
  summary: "Pretrain one method with the method-agnostic trainer; checkpoint, log and run.json go to --out.",
  flags: {
    method: { type: "string", arg: METHOD_NAMES.join("|"), default: "capi", help: "method (default capi)" },
    preset: { type: "string", arg: "NAME", default: "tiny", help: "the method's model preset (default tiny)" },
    data: {
      type: "string",
      arg: "SPEC",
      default: "synthetic",
      help: "procedural, synthetic[:DIR], imagenet:DIR or ade20k:DIR (default synthetic)",
    },
    steps: { type: "string", arg: "N", default: "200", help: "optimizer steps; the schedules span them (default 200)" },
    batch: { type: "string", arg: "N", default: "64", help: "global batch (default 64)" },
    "batch-per-device": {
      type: "string",
      arg: "N",
      help: "micro-batch: the batch runs as batch/N micro-batches, gradients accumulated (default: one-shot)",
    },
    seed: { type: "string", arg: "N", default: "0", help: "seed of every random draw (default 0)" },
    out: { type: "string", arg: "DIR", help: "run folder (default runs/<method>_<preset>_<data>_s<seed>)" },
    resume: { type: "boolean", help: "continue the run in --out from its last checkpoint" },
    force: { type: "boolean", help: "start over in an --out that holds a run (deletes its checkpoint and logs)" },
    engine: { type: "string", arg: "tfjs|ort", help: `${ENGINE_FLAG_HELP.engine} (default tfjs)` },
    ep: { type: "string", arg: "cpu|webgpu|cuda", help: ENGINE_FLAG_HELP.ep },
    backend: { type: "string", arg: "NAME", help: `${ENGINE_FLAG_HELP.backend} (default wasm)` },
    "log-every": { type: "string", arg: "N", default: "10", help: "steps between log lines (default 10)" },
    "ckpt-every": { type: "string", arg: "N", default: "200", help: "steps between checkpoints (default 200)" },
    "allow-missing": {
      type: "boolean",
      help: "skip (and record) unlabelled images, unknown classes, missing annotations, unreadable files",
    },
  },
} as const satisfies CliSpec;

/** What a run folder holds that a new run would overwrite or mix with. */
async function runFilesIn(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new UsageError(`--out ${dir} is a file; expected a run folder`);
    entries = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return entries.filter((n) => n === CHECKPOINT_FILE || n === LOG_FILE || n === "run.json" || /^eval_.*\.json$/.test(n))
    .sort();
}

/** Validate the command line; reads only (an existing --out is looked at, never touched). */
async function checkArgs({ values }: ParsedArgs<typeof PRETRAIN_CLI>) {
  const method = choiceFlag("method", values.method, METHOD_NAMES);
  methodPreset(method, values.preset); // throws "--preset: capi has no preset 'x'; expected one of ..."
  if (values.data !== "procedural") parseDataSpec(values.data);
  const steps = intFlag("steps", values.steps, { min: 1, fallback: 200 });
  const batch = intFlag("batch", values.batch, { min: 1, fallback: 64 });
  const batchPerDevice = intFlag("batch-per-device", values["batch-per-device"], { min: 1 });
  if (batchPerDevice !== undefined && batchPerDevice < batch && batch % batchPerDevice !== 0) {
    throw new UsageError(
      `--batch-per-device ${batchPerDevice} does not divide --batch ${batch} (micro-batches are equal shares)`,
    );
  }
  const seed = intFlag("seed", values.seed, { min: 0, fallback: 0 });
  const logEvery = intFlag("log-every", values["log-every"], { min: 1, fallback: 10 });
  const ckptEvery = intFlag("ckpt-every", values["ckpt-every"], { min: 1, fallback: 200 });
  const choice = parseEngineChoice(values);
  if (values.resume && values.force) {
    throw new UsageError("--resume and --force exclude each other: continue the run, or start it over");
  }
  const out = values.out ?? `runs/${method}_${values.preset}_${values.data.replace(/[^a-z0-9]+/gi, "_")}_s${seed}`;
  const existing = await runFilesIn(out);
  if (existing.length > 0 && !values.resume && !values.force) {
    throw new UsageError(
      `--out ${out} already holds a run (${existing.join(", ")}); pass --resume to continue it, ` +
        `--force to start over (deletes those files), or choose another --out`,
    );
  }
  const resume = values.resume ?? false, force = values.force ?? false;
  const allowMissing = values["allow-missing"] ?? false;
  return {
    method,
    preset: values.preset,
    data: values.data,
    steps,
    batch,
    batchPerDevice,
    seed,
    logEvery,
    ckptEvery,
    choice,
    out,
    resume,
    force,
    allowMissing,
  };
}

async function pretrainMain(o: Awaited<ReturnType<typeof checkArgs>>): Promise<void> {
  if (o.force) {
    for (const name of await runFilesIn(o.out)) await Deno.remove(`${o.out}/${name}`);
  }
  const started = await startEngine(o.choice);
  const config = methodPreset(o.method, o.preset);
  const optim = (config.optim ?? {}) as Record<string, unknown>;
  config.optim = { ...optim, totalIters: o.steps }; // schedules span exactly this run
  const m = createMethod(o.method, config, o.seed, { batchSize: o.batch });
  // The checkpoint's identity: settings, and the code, engine and decoder that compute it (a
  // --resume under another code version or engine is refused by the trainer).
  const [code, engine, decoder] = [
    await codeVersion("pretrainCli"),
    started.description,
    await decoderVersions(),
  ];
  const identity = {
    method: o.method,
    preset: o.preset,
    config,
    data: o.data,
    batch: o.batch,
    seed: o.seed,
    // A split batch changes results (CAPI's per-micro-batch stochastic depth, rounding): part of the identity.
    ...(o.batchPerDevice !== undefined && o.batchPerDevice < o.batch ? { batchPerDevice: o.batchPerDevice } : {}),
    computedBy: { code: code.sourceHash, engine: engineKey(engine), decoder },
  };
  const imageSize = imageSizeOf({ imageSize: 224, ...config });
  const { source: data, skipped } = await openPretrainData(o.data, { ...o, imageSize });
  console.error(
    `pretrain ${o.method}/${o.preset} on ${o.data}, ${o.steps} steps x ${o.batch} images, ${engineLabel(engine)} ` +
      `-> ${o.out}`,
  );
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  const result = await train(m, data, {
    steps: o.steps,
    seed: o.seed,
    outDir: o.out,
    resume: o.resume,
    identity,
    logEvery: o.logEvery,
    checkpointEvery: o.ckptEvery,
    batchPerDevice: o.batchPerDevice,
    engine: started.factory,
  });
  const run = {
    ...identity,
    skipped: { count: skipped.length, examples: skipped.slice(0, 20).map((p) => `${p.path}: ${p.problem}`) },
    result,
    wallSeconds: (performance.now() - t0) / 1000,
    provenance: {
      code,
      engine,
      decoder,
      runtime: runtimeVersions(),
      device: await deviceInfo(),
      ci: isCi(),
      startedAt,
      finishedAt: new Date().toISOString(),
    },
  };
  await atomicWriteJson(`${o.out}/run.json`, run);
  console.log(
    `done: ${result.steps} steps, ${result.imagesSeen} images, ${result.imagesPerSec?.toFixed(1)} img/s, ` +
      `loss ${result.lossCurve[0]?.loss.toFixed(4)} -> ${result.lossCurve.at(-1)?.loss.toFixed(4)}`,
  );
}

if (import.meta.main) Deno.exit(await runCli(PRETRAIN_CLI, Deno.args, { check: checkArgs, run: pretrainMain }));
