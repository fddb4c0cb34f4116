/**
 * The engine-neutral trainer: any `MimMethod` on any `TrainEngine` (tfjs by default), on any stream
 * of image batches.
 *
 * Per iteration `it` (0-based): `draw` (masks and every other host array from
 * `Rng.from(seed, "train", it)`), `hyper(it)` (schedules), then one `engine.step`: loss,
 * gradients, each optimizer in order, the EMA. With `batchPerDevice` below the batch, the batch
 * runs as micro-batches of that size (`drawMicroBatches`, `engine.stepMicro`) with the result of
 * the one large batch, as the official code's per-GPU shares; at or above the batch, the step is
 * exactly the one-shot step. Host readbacks happen only at the log cadence: the
 * step results in between stay on the engine and are read together, so a NaN/Inf loss stops the
 * run with the number of the first bad step while the last good checkpoint stays untouched.
 *
 * Each log line (`<out>/log.jsonl`) holds the loss, the method's metrics and schedule values,
 * `img_per_s`, and `memory`: the micro-batch size, the most tensor bytes any step of the window
 * held by the engine's own accounting (`peak_tensor_mib`), and the process's peak RSS so far
 * (`peak_rss_mib`, Linux). Nested, so that readers taking the line's numbers as loss components
 * do not chart them.
 *
 * Checkpoints (`<out>/checkpoint.safetensors`, written atomically) hold every parameter under
 * the method's names, the AdamW moments as `optim.<id>.exp_avg[_sq].<name>`, and metadata
 * (step, optimizer step counts, the run's identity). `resume` restores them; since every draw
 * depends only on (seed, iteration), a resumed run is bit-identical to an uninterrupted one
 * on a deterministic engine (tfjs cpu).
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";
import type { MimMethod } from "./method.ts";
import { Rng } from "./rng.ts";
import { readSafetensors, type SafeTensor, writeSafetensors } from "./safetensors.ts";
import { createTfTrainEngine } from "./tf_train_engine.ts";
import type { EngineFactory, EngineState, OptimizerState, StepResult, TrainEngine } from "./train_engine.ts";

export const CHECKPOINT_FILE = "checkpoint.safetensors";
export const LOG_FILE = "log.jsonl";

export type ImageBatches = AsyncIterable<HostTensor<Float32Array>>;

export interface TrainOptions {
  /** Stop after this many completed iterations (the schedule length lives in the method's config). */
  steps: number;
  seed: number;
  outDir: string;
  /** JSONL log and progress cadence, in iterations. Default 10: one host readback per 10 steps. */
  logEvery?: number;
  /** Checkpoint cadence in iterations (a final checkpoint is always written). Default 200. */
  checkpointEvery?: number;
  /** Continue from `<outDir>/checkpoint.safetensors` when it exists. */
  resume?: boolean;
  /** Stored in the checkpoint; a resume with a different identity is refused. */
  identity?: Record<string, unknown>;
  /** Progress line sink; default: a bar on stderr (overwritten in place on a terminal). */
  progress?: ((line: string, final: boolean) => void) | null;
  /** The engine that runs the steps (default: tfjs on the current backend). */
  engine?: EngineFactory;
  /**
   * Images per device step (suites' `runtime.batchPerDevice`): the batch runs as micro-batches of
   * this size, gradients accumulated; it must divide the batch. Default (or >= the batch): one-shot.
   */
  batchPerDevice?: number;
}

export interface TrainResult {
  steps: number;
  imagesSeen: number;
  lossCurve: { step: number; loss: number }[];
  imagesPerSec: number | null;
  resumedFromStep: number | null;
  /** Images per micro-batch of the last step (the batch itself when one-shot). */
  microBatch: number | null;
  /** The most tensor bytes live at once in any step, by the engine's accounting (null: not reported). */
  peakTensorBytes: number | null;
  /** Peak resident memory of the process at the end (Linux VmHWM; null elsewhere). */
  peakRssBytes: number | null;
}

/** A batch source that can start at an iteration (skips nothing) or a plain stream (skipped on resume). */
export type BatchSource = ImageBatches | ((startStep: number) => ImageBatches);

function stderrBar(line: string, final: boolean): void {
  const enc = new TextEncoder();
  if (Deno.stderr.isTerminal()) Deno.stderr.writeSync(enc.encode(`\r\x1b[2K${line}${final ? "\n" : ""}`));
  else Deno.stderr.writeSync(enc.encode(`${line}\n`));
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m >= 60
    ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`
    : `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
}

/** Peak resident memory of this process so far (Linux `VmHWM`), or null where unknown. */
function peakRss(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Save an engine's parameters, optimizer moments and metadata after `step` iterations. */
export async function saveCheckpoint(
  path: string,
  method: MimMethod,
  engine: TrainEngine,
  step: number,
  identity: Record<string, unknown>,
): Promise<void> {
  const state = await engine.snapshot();
  const tensors = new Map<string, SafeTensor>(state.params);
  const optSteps: Record<string, number> = {};
  for (const [id, st] of Object.entries(state.optimizers)) {
    optSteps[id] = st.step;
    for (const [k, t] of st.tensors) tensors.set(`optim.${id}.${k}`, t);
  }
  await writeSafetensors(path, tensors, {
    format: "mim-checkpoint-v1",
    method: method.name,
    step: String(step),
    optimizer_steps: JSON.stringify(optSteps),
    identity: JSON.stringify(identity),
  });
}

/**
 * Read what `saveCheckpoint` wrote for `method` (names of `paramNames` must all be there) as an
 * engine state, and the completed step count.
 */
export async function readCheckpoint(
  path: string,
  method: MimMethod,
  paramNames: string[],
  optimizerIds: string[],
  identity: Record<string, unknown>,
): Promise<{ state: EngineState; step: number }> {
  const f = await readSafetensors(path);
  if (f.metadata.method !== method.name) {
    throw new Error(`${path}: checkpoint is for method '${f.metadata.method}', not '${method.name}'`);
  }
  if (f.metadata.identity !== JSON.stringify(identity)) {
    throw new Error(
      `${path}: checkpoint was written by a run with another configuration; use a new --out or drop --resume.\n` +
        `  checkpoint: ${f.metadata.identity}\n  this run:   ${JSON.stringify(identity)}`,
    );
  }
  const params = new Map<string, HostTensor<Float32Array>>();
  const optSteps = JSON.parse(f.metadata.optimizer_steps ?? "{}") as Record<string, number>;
  const optimizers: Record<string, OptimizerState> = {};
  for (const id of optimizerIds) optimizers[id] = { step: optSteps[id] ?? 0, tensors: new Map() };
  for (const [name, t] of f.tensors) {
    if (!(t.data instanceof Float32Array)) throw new Error(`${path}: '${name}' is not float32`);
    const ft = t as HostTensor<Float32Array>;
    if (name.startsWith("optim.")) {
      const rest = name.slice("optim.".length);
      const id = rest.slice(0, rest.indexOf("."));
      const st = optimizers[id];
      if (!st) throw new Error(`${path}: state '${name}' for unknown optimizer '${id}'`);
      st.tensors.set(rest.slice(id.length + 1), ft);
    } else params.set(name, ft);
  }
  const missing = paramNames.filter((n) => !params.has(n));
  if (missing.length) throw new Error(`${path}: checkpoint lacks ${missing.length} parameters, e.g. '${missing[0]}'`);
  return { state: { params, optimizers }, step: Number(f.metadata.step) };
}

/** Train `method` on `data` up to `opts.steps` iterations. */
export async function train(method: MimMethod, data: BatchSource, opts: TrainOptions): Promise<TrainResult> {
  const logEvery = opts.logEvery ?? 10, ckptEvery = opts.checkpointEvery ?? 200;
  const identity = opts.identity ?? {};
  const progress = opts.progress === undefined ? stderrBar : opts.progress;
  await Deno.mkdir(opts.outDir, { recursive: true });
  const ckptPath = `${opts.outDir}/${CHECKPOINT_FILE}`;
  const logPath = `${opts.outDir}/${LOG_FILE}`;
  const spec = method.stepSpec();
  const engine = await (opts.engine ?? createTfTrainEngine)(spec);

  /** Step results not read yet (one host readback per log, not per step). */
  let pending: { it: number; result: StepResult }[] = [];
  /** The most tensor bytes of any step since the last log line, and over the run. */
  let windowPeak: number | null = null, runPeak: number | null = null;
  const releasePending = () => {
    for (const p of pending) p.result.dispose();
    pending = [];
  };
  /** Read every pending result; throws at the first non-finite loss. Returns the last one's values. */
  const readPending = async (): Promise<Record<string, number>> => {
    let last: Record<string, number> = {};
    try {
      for (const { it, result } of pending) {
        last = await result.read();
        if (!Number.isFinite(last.loss)) {
          throw new Error(
            `training stopped: loss is NaN or Inf at step ${it + 1} (iteration ${it}); ` +
              `the last good checkpoint is kept at ${ckptPath}`,
          );
        }
      }
    } finally {
      releasePending();
    }
    return last;
  };

  const lossCurve: { step: number; loss: number }[] = [];
  let imagesSeen = 0, windowImages = 0, windowStart = performance.now(), lastRate: number | null = null;
  let totalImages = 0, totalTime = 0;
  let start = 0, step = 0, microBatch: number | null = null;
  let resumedFromStep: number | null = null;
  try {
    if (opts.resume && (await exists(ckptPath))) {
      const ids = spec.optimizers.map((o) => o.id);
      const ckpt = await readCheckpoint(ckptPath, method, [...spec.params.keys()], ids, identity);
      await engine.restore(ckpt.state);
      start = resumedFromStep = ckpt.step;
    } else if (!opts.resume) {
      await Deno.remove(logPath).catch(() => {});
    }
    step = start;
    const stream = typeof data === "function" ? data(start) : data;
    const iter = stream[Symbol.asyncIterator]();
    if (typeof data !== "function") {
      // A plain iterable cannot seek: replay it up to `start`.
      for (let i = 0; i < start; i++) await iter.next();
    }

    for (let it = start; it < opts.steps; it++) {
      const next = await iter.next();
      if (next.done) break;
      const images = next.value;
      const rng = Rng.from(opts.seed, "train", it), batch = images.shape[0];
      microBatch = Math.min(opts.batchPerDevice ?? batch, batch);
      const result = microBatch < batch
        ? await engine.stepMicro(method.drawMicroBatches(images, rng, microBatch), method.hyper(it))
        : await engine.step(method.draw(images, rng), method.hyper(it));
      pending.push({ it, result });
      if (result.peakTensorBytes !== undefined) {
        windowPeak = Math.max(windowPeak ?? 0, result.peakTensorBytes);
        runPeak = Math.max(runPeak ?? 0, result.peakTensorBytes);
      }
      step = it + 1;
      imagesSeen += images.shape[0];
      windowImages += images.shape[0];

      const isLast = step === opts.steps;
      if (step % logEvery === 0 || isLast || step % ckptEvery === 0) {
        const vals = await readPending();
        const loss = vals.loss;
        const now = performance.now();
        const dt = (now - windowStart) / 1000;
        lastRate = windowImages / dt;
        totalImages += windowImages;
        totalTime += dt;
        windowImages = 0;
        windowStart = now;
        const scalars = method.logScalars(it);
        lossCurve.push({ step, loss });
        const memory = {
          micro_batch: microBatch,
          ...(windowPeak !== null ? { peak_tensor_mib: windowPeak / 2 ** 20 } : {}),
          ...(peakRss() !== null ? { peak_rss_mib: peakRss()! / 2 ** 20 } : {}),
        };
        windowPeak = null;
        // Nested: readers of the log take its top-level numbers for loss components and schedules.
        const rec = { step, ...vals, ...scalars, img_per_s: lastRate, memory, time: new Date().toISOString() };
        await Deno.writeTextFile(logPath, JSON.stringify(rec) + "\n", { append: true });
        if (progress) {
          const frac = step / opts.steps;
          const bar = "=".repeat(Math.round(frac * 20)).padEnd(20, " ");
          const eta = (opts.steps - step) / (totalImages / totalTime / images.shape[0]);
          const lr = scalars.lr ?? Object.values(Object.values(method.hyper(it).groups)[0] ?? {})[0]?.lr;
          progress(
            `step ${step}/${opts.steps} [${bar}] loss ${loss.toFixed(4)} lr ${Number(lr).toExponential(2)} ` +
              `${lastRate.toFixed(1)} img/s ETA ${fmtTime(eta)}`,
            isLast,
          );
        }
      }
      if (step % ckptEvery === 0 || isLast) {
        await readPending();
        await saveCheckpoint(ckptPath, method, engine, step, identity);
      }
    }
    if (step > start && step % ckptEvery !== 0 && step !== opts.steps) {
      // The data ran out before `steps`: keep what was done.
      await readPending();
      await saveCheckpoint(ckptPath, method, engine, step, identity);
    }
  } finally {
    releasePending();
    engine.dispose();
  }
  return {
    steps: step,
    imagesSeen,
    lossCurve,
    imagesPerSec: totalTime > 0 ? totalImages / totalTime : lastRate,
    resumedFromStep,
    microBatch,
    peakTensorBytes: runPeak,
    peakRssBytes: peakRss(),
  };
}
