/**
 * The method-agnostic trainer: any `MimMethod` on any stream of image batches.
 *
 * Per iteration `it` (0-based): `prepare` (masks from `Rng.from(seed, "train", it)`), one
 * gradient pass over every optimizer's parameters (`leanVariableGrads`: `tf.variableGrads`'s
 * values at about half its peak memory), each optimizer's AdamW step in
 * order, then `afterStep(it)` (CAPI's EMA). Host readbacks happen only at the log cadence:
 * a device-side "first non-finite step" tracker lets a NaN/Inf loss stop the run with its
 * step number while the last good checkpoint stays untouched.
 *
 * Checkpoints (`<out>/checkpoint.safetensors`, written atomically) hold every parameter under
 * the method's names, the AdamW moments as `optim.<id>.exp_avg[_sq].<name>`, and metadata
 * (step, optimizer step counts, the run's identity). `resume` restores them; since every draw
 * depends only on (seed, iteration), a resumed run is bit-identical to an uninterrupted one
 * on a deterministic backend (cpu).
 *
 * @module
 */
import { tf } from "./engine.ts";
import { AdamW, clipGradNorm } from "./adamw.ts";
import type { HostTensor } from "./fixture.ts";
import type { MimMethod } from "./method.ts";
import { Rng } from "./rng.ts";
import { leanVariableGrads } from "./kernels/lean_grads.ts";
import { readSafetensors, type SafeTensor, writeSafetensors } from "./safetensors.ts";

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
}

export interface TrainResult {
  steps: number;
  imagesSeen: number;
  lossCurve: { step: number; loss: number }[];
  imagesPerSec: number | null;
  resumedFromStep: number | null;
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Save parameters, optimizer moments and metadata of `method` after `step` iterations. */
export async function saveCheckpoint(
  path: string,
  method: MimMethod,
  optimizers: Map<string, AdamW>,
  step: number,
  identity: Record<string, unknown>,
): Promise<void> {
  const tensors = new Map<string, SafeTensor>(await method.params.toHost());
  const optSteps: Record<string, number> = {};
  for (const [id, opt] of optimizers) {
    const st = await opt.stateToHost();
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

/** Restore what `saveCheckpoint` wrote; returns the completed step count. */
export async function loadCheckpoint(
  path: string,
  method: MimMethod,
  optimizers: Map<string, AdamW>,
  identity: Record<string, unknown>,
): Promise<number> {
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
  const states = new Map<string, Map<string, HostTensor<Float32Array>>>();
  for (const id of optimizers.keys()) states.set(id, new Map());
  for (const [name, t] of f.tensors) {
    if (!(t.data instanceof Float32Array)) throw new Error(`${path}: '${name}' is not float32`);
    const ft = t as HostTensor<Float32Array>;
    if (name.startsWith("optim.")) {
      const rest = name.slice("optim.".length);
      const id = rest.slice(0, rest.indexOf("."));
      const st = states.get(id);
      if (!st) throw new Error(`${path}: state '${name}' for unknown optimizer '${id}'`);
      st.set(rest.slice(id.length + 1), ft);
    } else params.set(name, ft);
  }
  const missing = method.params.names().filter((n) => !params.has(n));
  if (missing.length) throw new Error(`${path}: checkpoint lacks ${missing.length} parameters, e.g. '${missing[0]}'`);
  method.params.assign(params);
  const optSteps = JSON.parse(f.metadata.optimizer_steps ?? "{}") as Record<string, number>;
  for (const [id, opt] of optimizers) opt.loadState(optSteps[id] ?? 0, states.get(id)!);
  return Number(f.metadata.step);
}

/** Train `method` on `data` up to `opts.steps` iterations. */
export async function train(method: MimMethod, data: BatchSource, opts: TrainOptions): Promise<TrainResult> {
  const logEvery = opts.logEvery ?? 10, ckptEvery = opts.checkpointEvery ?? 200;
  const identity = opts.identity ?? {};
  const progress = opts.progress === undefined ? stderrBar : opts.progress;
  await Deno.mkdir(opts.outDir, { recursive: true });
  const ckptPath = `${opts.outDir}/${CHECKPOINT_FILE}`;
  const logPath = `${opts.outDir}/${LOG_FILE}`;
  const optimizers = new Map(method.optimizers.map((s) => [s.id, new AdamW({ betas: s.betas, eps: s.eps })]));
  const specs = method.optimizers.map((s) => ({
    spec: s,
    vars: new Map(s.params.map((n) => [n, method.params.get(n)])),
  }));
  const allVars = specs.flatMap((s) => [...s.vars.values()]);
  const nameOf = new Map<string, string>();
  for (const s of specs) for (const [n, v] of s.vars) nameOf.set(v.name, n);

  let start = 0;
  let resumedFromStep: number | null = null;
  if (opts.resume && (await exists(ckptPath))) {
    start = await loadCheckpoint(ckptPath, method, optimizers, identity);
    resumedFromStep = start;
  } else if (!opts.resume) {
    await Deno.remove(logPath).catch(() => {});
  }
  const stream = typeof data === "function" ? data(start) : data;
  const iter = stream[Symbol.asyncIterator]();
  if (typeof data !== "function") {
    // A plain iterable cannot seek: replay it up to `start`.
    for (let i = 0; i < start; i++) await iter.next();
  }

  const firstBad = tf.variable(tf.scalar(Infinity), false);
  let last: { loss: tf.Scalar; metrics: Record<string, tf.Scalar> } | null = null;
  const lossCurve: { step: number; loss: number }[] = [];
  let imagesSeen = 0, windowImages = 0, windowStart = performance.now(), lastRate: number | null = null;
  let totalImages = 0, totalTime = 0;
  let lastLogged: Record<string, number> = {};
  let step = start;

  const checkFinite = async (): Promise<void> => {
    const bad = (await firstBad.data())[0];
    if (Number.isFinite(bad)) {
      throw new Error(
        `training stopped: loss is NaN or Inf at step ${bad + 1} (iteration ${bad}); ` +
          `the last good checkpoint is kept at ${ckptPath}`,
      );
    }
  };

  try {
    for (let it = start; it < opts.steps; it++) {
      const next = await iter.next();
      if (next.done) break;
      const images = next.value;
      const rng = Rng.from(opts.seed, "train", it);
      const batch = method.prepare(images, rng.fork("prepare"));
      let metrics: Record<string, tf.Scalar> = {};
      const { value, grads } = leanVariableGrads(() => {
        const out = method.loss(batch, rng.fork("loss"));
        metrics = Object.fromEntries(Object.entries(out.metrics).map(([k, t]) => [k, tf.keep(t)]));
        return out.loss;
      }, allVars);
      const byName = new Map(Object.entries(grads).map(([vn, g]) => [nameOf.get(vn)!, g]));
      for (const { spec, vars } of specs) {
        let g = new Map([...vars.keys()].filter((n) => byName.has(n)).map((n) => [n, byName.get(n)!]));
        const clipped = spec.clipGradNorm !== undefined;
        if (clipped) g = clipGradNorm(g, spec.clipGradNorm!);
        optimizers.get(spec.id)!.step(vars, g, (n) => spec.hyper(it, n));
        if (clipped) tf.dispose([...g.values()]);
      }
      tf.dispose(Object.values(grads));
      batch.dispose?.();
      method.afterStep?.(it);
      tf.tidy(() => {
        firstBad.assign(tf.minimum(firstBad, tf.where(tf.isFinite(value), tf.scalar(Infinity), tf.scalar(it))));
      });
      if (last) tf.dispose([last.loss, ...Object.values(last.metrics)]);
      last = { loss: value, metrics };
      step = it + 1;
      imagesSeen += images.shape[0];
      windowImages += images.shape[0];

      const isLast = step === opts.steps;
      if (step % logEvery === 0 || isLast || step % ckptEvery === 0) {
        const loss = (await value.data())[0];
        const vals: Record<string, number> = { loss };
        for (const [k, t] of Object.entries(metrics)) vals[k] = (await t.data())[0];
        const now = performance.now();
        const dt = (now - windowStart) / 1000;
        lastRate = windowImages / dt;
        totalImages += windowImages;
        totalTime += dt;
        windowImages = 0;
        windowStart = now;
        await checkFinite();
        const scalars = method.logScalars?.(it) ?? {};
        lastLogged = { ...vals, ...scalars };
        lossCurve.push({ step, loss });
        const rec = { step, ...vals, ...scalars, img_per_s: lastRate, time: new Date().toISOString() };
        await Deno.writeTextFile(logPath, JSON.stringify(rec) + "\n", { append: true });
        if (progress) {
          const frac = step / opts.steps;
          const bar = "=".repeat(Math.round(frac * 20)).padEnd(20, " ");
          const eta = (opts.steps - step) / (totalImages / totalTime / images.shape[0]);
          const lr = lastLogged.lr ?? method.optimizers[0]?.hyper(it, method.optimizers[0].params[0]).lr;
          progress(
            `step ${step}/${opts.steps} [${bar}] loss ${loss.toFixed(4)} lr ${Number(lr).toExponential(2)} ` +
              `${lastRate.toFixed(1)} img/s ETA ${fmtTime(eta)}`,
            isLast,
          );
        }
      }
      if (step % ckptEvery === 0 || isLast) {
        await checkFinite();
        await saveCheckpoint(ckptPath, method, optimizers, step, identity);
      }
    }
    if (step > start && step % ckptEvery !== 0 && step !== opts.steps) {
      // The data ran out before `steps`: keep what was done.
      await checkFinite();
      await saveCheckpoint(ckptPath, method, optimizers, step, identity);
    }
  } finally {
    if (last) tf.dispose([last.loss, ...Object.values(last.metrics)]);
    firstBad.dispose();
    for (const o of optimizers.values()) o.dispose();
  }
  return {
    steps: step,
    imagesSeen,
    lossCurve,
    imagesPerSec: totalTime > 0 ? totalImages / totalTime : lastRate,
    resumedFromStep,
  };
}
