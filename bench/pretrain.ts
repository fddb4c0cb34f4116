/**
 * `deno task pretrain --method capi --preset tiny --data synthetic --steps N --out DIR
 *   [--resume] [--backend wasm|cpu|tensorflow] [--batch 64] [--seed 0] [--log-every 10] [--ckpt-every 200]`
 *
 * Pretrains one method with the method-agnostic trainer (`model/trainer.ts`): a progress
 * bar on stderr, `DIR/log.jsonl` every `--log-every` steps, `DIR/checkpoint.safetensors`
 * (official parameter names, atomic) every `--ckpt-every` steps and at the end, and
 * `DIR/run.json` (resolved config, identity, throughput). The schedules are fitted to the
 * run: the method config's total iterations are set to `--steps`.
 *
 * Data (`openPretrainData`, the one place it is hooked up): a `datasets` spec (`synthetic`,
 * generated on first use, `imagenet:ROOT`, `ade20k:ROOT`) or `procedural` (seeded images made
 * on the fly, no files: quick checks and throughput measurements).
 *
 * Expected (2 shared cores, wasm): see the README's measured images/s.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend, parseBackend } from "../model/engine.ts";
import type { HostTensor } from "../model/fixture.ts";
import { METHOD_NAMES, type MethodName } from "../model/method.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { Rng } from "../model/rng.ts";
import { type BatchSource, train } from "../model/trainer.ts";
import { atomicWriteJson } from "../model/atomic_write.ts";
import { DataLoader, openDataset, parseDataSpec } from "../datasets/mod.ts";

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
 * (`synthetic`, `synthetic:ROOT`, `imagenet:ROOT`, `ade20k:ROOT`), train split, with the
 * method's RandomResizedCrop + horizontal flip; epochs follow each other, seeded by `seed`.
 */
export function openPretrainData(
  spec: string,
  o: { method: MethodName; seed: number; batch: number; imageSize: [number, number]; steps: number },
): BatchSource {
  if (spec === "procedural") {
    return (start: number) => ({
      async *[Symbol.asyncIterator]() {
        for (let i = start; i < o.steps; i++) yield syntheticBatch(o.seed, i, o.batch, ...o.imageSize);
      },
    });
  }
  const parsed = parseDataSpec(spec); // fails early with the list of kinds
  return (start: number) => ({
    async *[Symbol.asyncIterator]() {
      const ds = await openDataset(parsed, "train", { log: (l) => console.error(l) });
      const loader = new DataLoader(ds, {
        batchSize: o.batch,
        transform: { kind: "train", size: o.imageSize, scale: CROP_SCALE[o.method], ratio: [3 / 4, 4 / 3], hflip: 0.5 },
        seed: o.seed,
        dropLast: true,
      });
      const perEpoch = loader.batchesPerEpoch;
      if (perEpoch < 1) throw new Error(`--data ${spec}: fewer than ${o.batch} training images (one batch)`);
      let step = Math.floor(start / perEpoch) * perEpoch;
      for (let epoch = Math.floor(start / perEpoch); step < o.steps; epoch++) {
        for await (const b of loader.epoch(epoch)) {
          if (step >= start) yield b.images; // batches before `start` are replayed, not trained on
          if (++step >= o.steps) return;
        }
      }
    },
  });
}

function imageSizeOf(config: Record<string, unknown>): [number, number] {
  const s = config.imageSize;
  if (typeof s === "number") return [s, s];
  if (Array.isArray(s) && s.length === 2) return [Number(s[0]), Number(s[1])];
  throw new Error(`pretrain: config.imageSize must be a number or [H, W], got ${JSON.stringify(s)}`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      method: { type: "string", default: "capi" },
      preset: { type: "string", default: "tiny" },
      data: { type: "string", default: "synthetic" },
      steps: { type: "string", default: "200" },
      out: { type: "string" },
      resume: { type: "boolean", default: false },
      backend: { type: "string" },
      batch: { type: "string", default: "64" },
      seed: { type: "string", default: "0" },
      "log-every": { type: "string", default: "10" },
      "ckpt-every": { type: "string", default: "200" },
    },
  });
  const method = values.method as MethodName;
  if (!METHOD_NAMES.includes(method)) {
    throw new Error(`--method: unknown '${values.method}'; expected one of ${METHOD_NAMES.join(", ")}`);
  }
  const steps = Number(values.steps), batch = Number(values.batch), seed = Number(values.seed);
  for (const [k, v] of [["steps", steps], ["batch", batch], ["seed", seed]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`--${k}: expected a non-negative integer, got '${values[k]}'`);
  }
  const out = values.out ?? `runs/${method}_${values.preset}_${values.data.replace(/[^a-z0-9]+/gi, "_")}_s${seed}`;
  const backend = parseBackend(values.backend);
  await initBackend(backend);
  const config = methodPreset(method, values.preset);
  const optim = (config.optim ?? {}) as Record<string, unknown>;
  config.optim = { ...optim, totalIters: steps }; // schedules span exactly this run
  const m = createMethod(method, config, seed, { batchSize: batch });
  const identity = { method, preset: values.preset, config, data: values.data, batch, seed };
  const imageSize = imageSizeOf({ imageSize: 224, ...config });
  const data = openPretrainData(values.data, { method, seed, batch, imageSize, steps });
  console.error(
    `pretrain ${method}/${values.preset} on ${values.data}, ${steps} steps x ${batch} images, ${backend} -> ${out}`,
  );
  const t0 = performance.now();
  const result = await train(m, data, {
    steps,
    seed,
    outDir: out,
    resume: values.resume,
    identity,
    logEvery: Number(values["log-every"]),
    checkpointEvery: Number(values["ckpt-every"]),
  });
  const run = { ...identity, backend, result, wallSeconds: (performance.now() - t0) / 1000 };
  await atomicWriteJson(`${out}/run.json`, run);
  console.log(
    `done: ${result.steps} steps, ${result.imagesSeen} images, ${result.imagesPerSec?.toFixed(1)} img/s, ` +
      `loss ${result.lossCurve[0]?.loss.toFixed(4)} -> ${result.lossCurve.at(-1)?.loss.toFixed(4)}`,
  );
  m.dispose();
}
