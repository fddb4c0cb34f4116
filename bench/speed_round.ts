/**
 * One timed round of `deno task speed`: a fresh engine for the subject's step spec (bench/speed_subject.ts),
 * `warmup` untimed steps, then `steps` timed ones, each a draw and one engine step as model/trainer.ts runs
 * it (gradients over every optimizer's parameters, each optimizer's AdamW step with its clipping, the EMA).
 *
 * The losses of the first `checkSteps` warm-up steps are read and returned, and how far each parameter moved
 * over them: bench/speed.ts compares both with the PyTorch twin's on the same weights and draws.
 *
 * @module
 */
import process from "node:process";
import type { HostTensor } from "../model/fixture.ts";
import type { EngineFactory, StepResult, TrainEngine } from "../model/train_engine.ts";
import type { SpeedSubject } from "./speed_subject.ts";

export interface RoundResult {
  /** Wall ms per timed step. */
  msPerStep: number;
  /** CPU ms (this process, all threads) per timed step: steadier than wall time on a shared machine. */
  cpuMsPerStep: number;
  /** The loss of the last timed step. */
  loss: number;
  /** The losses of the first `checkSteps` steps. */
  checkLosses: number[];
  /** After those steps, how each parameter moved (`updateStats`; empty without a check). */
  checkUpdates: Map<string, [number, number]>;
  /** Wall ms of the first step: for `ort`, recording, differentiating, lowering and compiling the graph too. */
  firstStepMs: number;
}

export interface RoundOptions {
  steps: number;
  warmup: number;
  /** How many of the warm-up steps to read the loss of (default 0). */
  checkSteps?: number;
  /** Called after every step (the kernel profile starts its counters there). */
  each?: (step: number) => void;
  /** Called with the engine after the timed steps, before it is disposed (onnxruntime's profile ends there). */
  finish?: (engine: TrainEngine) => Promise<void>;
}

/**
 * How every parameter moved from the subject's initial value `p0`, by name: `[|p - p0|, <p - p0, p0> / |p0|]`
 * in float64 (the projection is 0 for a zero `p0`). The norm shows the optimizers' groups, clipping and the
 * EMA; the projection shows weight decay, about a thousandth of the norm.
 */
export function updateStats(
  initial: Map<string, { value: HostTensor<Float32Array> }>,
  now: Map<string, HostTensor<Float32Array>>,
): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const [name, p] of initial) {
    const a = now.get(name)!.data, b = p.value.data;
    let dd = 0, db = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      const d = a[i] - b[i];
      dd += d * d;
      db += d * b[i];
      bb += b[i] * b[i];
    }
    out.set(name, [Math.sqrt(dd), bb > 0 ? db / Math.sqrt(bb) : 0]);
  }
  return out;
}

/** Train `o.warmup + o.steps` steps of `subject` on a fresh engine from `engine`, timing the last `o.steps`. */
export async function timeRound(subject: SpeedSubject, engine: EngineFactory, o: RoundOptions): Promise<RoundResult> {
  const checkSteps = Math.min(o.checkSteps ?? 0, o.warmup);
  const eng = await engine(subject.spec);
  let loss = NaN;
  // The loss is read with `await` (no synchronous read on webgpu), and that read closes each timed region,
  // so a GPU backend is timed on its work, not on submitting it.
  let pending: StepResult | null = null;
  const readLoss = async () => {
    loss = (await pending!.read()).loss;
    pending!.dispose();
    pending = null;
    return loss;
  };
  const step = async (it: number, read: boolean) => {
    const result = await eng.step(subject.draw(it), subject.hyper);
    if (read) pending = result;
    else result.dispose();
    o.each?.(it);
  };
  try {
    const checkLosses: number[] = [];
    let checkUpdates = new Map<string, [number, number]>();
    const f0 = performance.now();
    let firstStepMs = NaN;
    for (let i = 0; i < o.warmup; i++) {
      const read = i < checkSteps || i === o.warmup - 1;
      await step(i, read);
      if (read) checkLosses.push(await readLoss());
      if (i === 0) firstStepMs = performance.now() - f0;
      if (i === checkSteps - 1) checkUpdates = updateStats(subject.spec.params, (await eng.snapshot()).params);
    }
    checkLosses.length = checkSteps;
    const t0 = performance.now(), cpu0 = process.cpuUsage();
    for (let i = 0; i < o.steps; i++) await step(o.warmup + i, i === o.steps - 1);
    await readLoss();
    const msPerStep = (performance.now() - t0) / o.steps;
    const cpu = process.cpuUsage(cpu0);
    await o.finish?.(eng);
    if (!Number.isFinite(loss)) {
      throw new Error(`${subject.method}: the loss is ${loss} after ${o.warmup + o.steps} steps`);
    }
    const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / o.steps;
    return { msPerStep, cpuMsPerStep, loss, checkLosses, checkUpdates, firstStepMs };
  } finally {
    eng.dispose();
  }
}
