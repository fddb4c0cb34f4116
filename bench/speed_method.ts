/**
 * `deno task speed --method capi|mae|simmim`: the training step of a registered method's `tiny`
 * preset, timed as model/trainer.ts runs it (draws, then one engine step: gradients over every
 * optimizer's parameters, each optimizer's AdamW step with its clipping, the EMA), on synthetic images.
 *
 * @module
 */
import process from "node:process";
import type { MethodName } from "../model/method.ts";
import { createMethod, methodPreset } from "../model/methods.ts";
import { Rng } from "../model/rng.ts";
import { tfEngineFactory } from "../model/tf_train_engine.ts";
import type { EngineFactory, StepResult } from "../model/train_engine.ts";
import { syntheticBatch } from "./pretrain.ts";

/** ms (wall) and CPU-ms (this process, all threads) per step of `steps` steps after `warmup`, and the last loss. */
export async function timeMethod(
  name: MethodName,
  batch: number,
  steps: number,
  warmup: number,
  engine: EngineFactory = tfEngineFactory(),
  each?: () => void,
): Promise<{ msPerStep: number; cpuMsPerStep: number; loss: number }> {
  const config = methodPreset(name, "tiny");
  const size = config.imageSize as number | [number, number];
  const [h, w] = typeof size === "number" ? [size, size] : size;
  const method = createMethod(name, config, 0, { batchSize: batch });
  const images = syntheticBatch(0, 0, batch, h, w);
  const eng = await engine(method.stepSpec());
  let loss = NaN;
  // As bench/speed.ts: the loss is read with `await` (no synchronous read on webgpu), and that read
  // closes each timed region so a GPU backend is timed on its work, not on submitting it.
  let pending: StepResult | null = null;
  const readLoss = async () => {
    loss = (await pending!.read()).loss;
    pending!.dispose();
    pending = null;
  };
  const step = async (it: number, read: boolean) => {
    const result = await eng.step(method.draw(images, Rng.from(0, "speed", it)), method.hyper(it));
    if (read) pending = result;
    else result.dispose();
    each?.();
  };
  try {
    for (let i = 0; i < warmup; i++) await step(i, i === warmup - 1);
    if (warmup > 0) await readLoss();
    const t0 = performance.now(), cpu0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) await step(warmup + i, i === steps - 1);
    await readLoss();
    const msPerStep = (performance.now() - t0) / steps;
    const cpu = process.cpuUsage(cpu0);
    const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
    if (!Number.isFinite(loss)) throw new Error(`speed: ${name} loss is ${loss} after ${warmup + steps} steps`);
    return { msPerStep, cpuMsPerStep, loss };
  } finally {
    eng.dispose();
  }
}
