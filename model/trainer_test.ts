/**
 * Trainer: resume is bit-identical on the cpu backend, tensor count is constant across
 * steps, a NaN loss stops the run with its step number and keeps the last good checkpoint,
 * and checkpoints keep the format of the previous trainer (official names, `optim.<id>.exp_avg[_sq].<name>`).
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";
import type { MimMethod } from "./method.ts";
import { Rng } from "./rng.ts";
import { readSafetensors } from "./safetensors.ts";
import { CHECKPOINT_FILE, train } from "./trainer.ts";
import type { TrainStepSpec } from "./train_step.ts";
import { capiConfig } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";
import { MICRO_CONFIGS } from "./micro_batch_check.ts";

await initBackend("cpu");

/** A small CAPI with stochastic depth on, so resume also covers the drop-path draws. */
function tinyCapi(): CapiMethod {
  return new CapiMethod(
    capiConfig("tiny", { ...MICRO_CONFIGS.capi, optim: { totalIters: 6, warmupFraction: 0.34 } }),
    7,
  );
}

function batches(seed: number, n: number, b = 4, onNext?: () => void) {
  return (start: number) => ({
    async *[Symbol.asyncIterator]() {
      for (let i = start; i < n; i++) {
        onNext?.();
        const rng = Rng.from(seed, "batch", i);
        yield { shape: [b, 3, 16, 16], data: rng.fillNormal(new Float32Array(b * 3 * 16 * 16)) };
      }
    },
  });
}

const quiet = { progress: null, logEvery: 2 } as const;

Deno.test("resume after a stop is bit-identical to an uninterrupted run (cpu)", async () => {
  const dirA = await Deno.makeTempDir(), dirB = await Deno.makeTempDir();
  const ra = await train(tinyCapi(), batches(1, 6), { ...quiet, steps: 6, seed: 3, outDir: dirA, checkpointEvery: 3 });
  await train(tinyCapi(), batches(1, 6), { ...quiet, steps: 3, seed: 3, outDir: dirB, checkpointEvery: 3 });
  const rb = await train(tinyCapi(), batches(1, 6), { ...quiet, steps: 6, seed: 3, outDir: dirB, resume: true });
  assert.equal(rb.resumedFromStep, 3);
  assert.equal(ra.steps, 6);
  const fa = await readSafetensors(`${dirA}/${CHECKPOINT_FILE}`);
  const fb = await readSafetensors(`${dirB}/${CHECKPOINT_FILE}`);
  assert.equal(fa.tensors.size, fb.tensors.size);
  let changed = 0;
  for (const [name, t] of fa.tensors) {
    const u = fb.tensors.get(name);
    assert.ok(u, `resumed checkpoint lacks ${name}`);
    assert.deepEqual(u.data, t.data, `${name} differs after resume`);
    if (name.startsWith("ema.")) changed++;
  }
  assert.ok(changed > 0);
  // The loss moved and the EMA moved away from its initial copy of the student.
  const g0 = tinyCapi().stepSpec().params.get("ema.backbone.mask_token")!.value.data;
  assert.notDeepEqual(fa.tensors.get("ema.backbone.mask_token")!.data, g0);
  // The format the previous trainer wrote: every parameter under its official name, AdamW moments per optimizer.
  const spec = tinyCapi().stepSpec();
  for (const [n, p] of spec.params) {
    assert.ok(fa.tensors.has(n), `checkpoint lacks ${n}`);
    for (const m of ["exp_avg", "exp_avg_sq"]) {
      const id = n.startsWith("teacher_head.") ? "clustering" : "student";
      assert.equal(fa.tensors.has(`optim.${id}.${m}.${n}`), p.trainable, `optim.${id}.${m}.${n}`);
    }
  }
  assert.equal(fa.tensors.size, spec.params.size + 2 * [...spec.params.values()].filter((p) => p.trainable).length);
  assert.deepEqual(JSON.parse(fa.metadata.optimizer_steps), { student: 6, clustering: 6 });
  assert.equal(fa.metadata.format, "mim-checkpoint-v1");
  await Deno.remove(dirA, { recursive: true });
  await Deno.remove(dirB, { recursive: true });
});

Deno.test("no tensor leak: the tensor count is constant across steps", async () => {
  const dir = await Deno.makeTempDir();
  const counts: number[] = [];
  const before = tf.memory().numTensors;
  await train(tinyCapi(), batches(2, 8, 4, () => counts.push(tf.memory().numTensors)), {
    ...quiet,
    steps: 8,
    seed: 1,
    outDir: dir,
    checkpointEvery: 100,
  });
  // counts[i] is taken before iteration i. Results stay on the engine until the log every 2 steps
  // reads them, so the count alternates; after warm-up (optimizer slots exist) each phase is flat.
  assert.deepEqual([counts[2], counts[4], counts[6]], Array(3).fill(counts[2]), `tensor counts ${counts}`);
  assert.deepEqual([counts[3], counts[5], counts[7]], Array(3).fill(counts[3]), `tensor counts ${counts}`);
  assert.equal(tf.memory().numTensors, before, "the engine was not released");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("batchPerDevice: micro-batches of the batch, resumed bit-identically; a non-divisor fails at the first step", async () => {
  const [full, cut, oneShot] = [await Deno.makeTempDir(), await Deno.makeTempDir(), await Deno.makeTempDir()];
  const run = { ...quiet, seed: 3, batchPerDevice: 2 };
  const r = await train(tinyCapi(), batches(1, 4), { ...run, steps: 4, outDir: full, checkpointEvery: 2 });
  await train(tinyCapi(), batches(1, 4), { ...run, steps: 2, outDir: cut, checkpointEvery: 2 });
  await train(tinyCapi(), batches(1, 4), { ...run, steps: 4, outDir: cut, resume: true });
  await train(tinyCapi(), batches(1, 4), { ...quiet, seed: 3, steps: 4, outDir: oneShot });
  assert.equal(r.microBatch, 2);
  assert.ok(r.peakTensorBytes! > 0);
  const [a, b, c] = await Promise.all([full, cut, oneShot].map((d) => readSafetensors(`${d}/${CHECKPOINT_FILE}`)));
  for (const [name, t] of a.tensors) {
    assert.deepEqual(b.tensors.get(name)!.data, t.data, `${name} differs after resume`);
  }
  // Drop path draws subsets per micro-batch (n_keep of 2, not of 4): another run than one-shot's.
  assert.notDeepEqual(
    c.tensors.get("student.backbone.mask_token")!.data,
    a.tensors.get("student.backbone.mask_token")!.data,
  );
  const log = (await Deno.readTextFile(`${full}/log.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(log[0].memory.micro_batch, 2);
  assert.ok(log[0].memory.peak_tensor_mib > 0);
  await assert.rejects(
    () => train(tinyCapi(), batches(1, 4), { ...quiet, seed: 3, steps: 1, outDir: oneShot, batchPerDevice: 3 }),
    /batchPerDevice 3 does not divide the batch of 4 images: .*use a divisor of 4 \(e\.g\. 2\)/,
  );
  for (const d of [full, cut, oneShot]) await Deno.remove(d, { recursive: true });
});

/** A one-parameter method whose loss becomes NaN from iteration `badFrom` on (a draw says so). */
function nanMethod(badFrom: number): MimMethod {
  let calls = 0;
  const spec: TrainStepSpec = {
    params: new Map([["w", { value: { shape: [2], data: new Float32Array([1, 2]) }, trainable: true }]]),
    optimizers: [{ id: "main", groups: [{ id: "all", params: ["w"] }], betas: [0.9, 0.95], eps: 1e-8 }],
    ema: null,
    loss: (o, get, inputs) => ({ loss: o.mul(o.sum(o.square(get("w")), 0), inputs.scale), metrics: {} }),
  };
  return {
    name: "capi",
    encoderInfo: { arch: "nan", embedDim: 2, patchSize: 1, imageSize: [1, 1] },
    encoderPrefix: "",
    stepSpec: () => spec,
    draw: (_images: HostTensor<Float32Array>, _rng: Rng) => {
      // The iteration is not passed to `draw`: count the calls, as the trainer draws once per iteration.
      calls++;
      return { scale: { shape: [], data: new Float32Array([calls > badFrom ? NaN : 1]) } };
    },
    drawMicroBatches: () => {
      throw new Error("unused: the NaN test runs one-shot steps");
    },
    hyper: () => ({ groups: { main: { all: { lr: 0.1, weightDecay: 0 } } } }),
    logScalars: () => ({}),
    encode: () => {
      throw new Error("unused");
    },
  };
}

Deno.test("a NaN loss stops the run with its step number and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const m = nanMethod(4); // iterations 0-3 fine, iteration 4 (step 5) NaN
  await assert.rejects(
    () =>
      train(m, batches(0, 10), { progress: null, logEvery: 3, steps: 10, seed: 0, outDir: dir, checkpointEvery: 2 }),
    /NaN or Inf at step 5 \(iteration 4\).*last good checkpoint/,
  );
  const f = await readSafetensors(`${dir}/${CHECKPOINT_FILE}`);
  assert.equal(f.metadata.step, "4");
  assert.ok([...f.tensors.get("w")!.data].every(Number.isFinite));
  await Deno.remove(dir, { recursive: true });
});
