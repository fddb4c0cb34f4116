/**
 * Checkpoints are engine-neutral (issue 12): a run started on the tfjs engine resumes on the
 * ONNX engine and the other way round, ending where an uninterrupted run ends within float32
 * noise (measured 1.2e-6 to 2.1e-6 of a tensor's scale; bound 2e-5); on the ONNX engine a
 * resume is bit-identical to an uninterrupted run.
 */
import assert from "node:assert/strict";
import { initBackend } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";
import { Rng } from "./rng.ts";
import { readSafetensors } from "./safetensors.ts";
import { CHECKPOINT_FILE, train } from "./trainer.ts";
import type { EngineFactory } from "./train_engine.ts";
import { createTfTrainEngine } from "./tf_train_engine.ts";
import { OrtTrainEngine } from "./ops/ort_train_engine.ts";
import { capiConfig } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";
import { MICRO_CONFIGS } from "./micro_batch_check.ts";

await initBackend("cpu");

const ort: EngineFactory = (spec) => Promise.resolve(new OrtTrainEngine(spec, { threads: 1 }));

/** A small CAPI with stochastic depth on: both losses, two optimizers, EMA and drop-path draws cross the boundary. */
const tinyCapi = () =>
  new CapiMethod(
    capiConfig("tiny", { ...MICRO_CONFIGS.capi, optim: { totalIters: 6, warmupFraction: 0.34 } }),
    7,
  );

const images = (start: number) => ({
  async *[Symbol.asyncIterator]() {
    for (let i = start; i < 6; i++) {
      yield { shape: [4, 3, 16, 16], data: Rng.from(1, "batch", i).fillNormal(new Float32Array(4 * 3 * 16 * 16)) };
    }
  },
});

/** Train 6 steps on `second`, the first 3 of them on `first` when given (stop, then resume). */
async function run(second: EngineFactory, first?: EngineFactory): Promise<Map<string, HostTensor>> {
  const outDir = await Deno.makeTempDir();
  const o = { progress: null, logEvery: 3, seed: 3, outDir, checkpointEvery: 3 } as const;
  if (first) await train(tinyCapi(), images, { ...o, steps: 3, engine: first });
  const r = await train(tinyCapi(), images, { ...o, steps: 6, engine: second, resume: first !== undefined });
  assert.equal(r.resumedFromStep, first ? 3 : null);
  const f = await readSafetensors(`${outDir}/${CHECKPOINT_FILE}`);
  await Deno.remove(outDir, { recursive: true });
  return f.tensors;
}

/** Largest difference over all tensors, relative to each tensor's own scale (`max|a-b| / max|ref|`). */
function worstScaleRelative(a: Map<string, HostTensor>, ref: Map<string, HostTensor>): { name: string; err: number } {
  assert.deepEqual([...a.keys()].sort(), [...ref.keys()].sort());
  let worst = { name: "", err: 0 };
  for (const [name, r] of ref) {
    const x = a.get(name)!.data, y = r.data;
    let d = 0, s = 0;
    for (let i = 0; i < y.length; i++) {
      d = Math.max(d, Math.abs(Number(x[i]) - Number(y[i])));
      s = Math.max(s, Math.abs(Number(y[i])));
    }
    const err = s === 0 ? d : d / s;
    if (err > worst.err) worst = { name, err };
  }
  return worst;
}

const tfjs = await run(createTfTrainEngine);
const onnx = await run(ort);

Deno.test("engines agree on an uninterrupted run (the reference for the cross-engine resumes)", () => {
  const w = worstScaleRelative(onnx, tfjs);
  assert.ok(w.err < 2e-5, `ort vs tfjs after 6 steps: ${w.name} ${w.err}`);
});

Deno.test("a tfjs checkpoint resumes on the ort engine, and an ort checkpoint on tfjs", async () => {
  for (
    const [label, got] of [["tfjs->ort", await run(ort, createTfTrainEngine)], [
      "ort->tfjs",
      await run(createTfTrainEngine, ort),
    ]] as const
  ) {
    const w = worstScaleRelative(got, tfjs);
    assert.ok(w.err < 2e-5, `${label} vs tfjs after 6 steps: ${w.name} ${w.err}`);
  }
});

Deno.test("resume on the ort engine is bit-identical to an uninterrupted ort run", async () => {
  const resumed = await run(ort, ort);
  for (const [name, t] of onnx) assert.deepEqual(resumed.get(name)!.data, t.data, `${name} differs after resume`);
});
