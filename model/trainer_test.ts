/**
 * Trainer: resume is bit-identical on the cpu backend, tensor count is constant across
 * steps, a NaN loss stops the run with its step number and keeps the last good checkpoint.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";
import type { LossOutput, MimMethod, PreparedBatch } from "./method.ts";
import { ParamStore } from "./params.ts";
import { Rng } from "./rng.ts";
import { readSafetensors } from "./safetensors.ts";
import { CHECKPOINT_FILE, train } from "./trainer.ts";
import { capiConfig } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";
import type { VisionEncoder } from "./encoder.ts";

await initBackend("cpu");

/** A small CAPI with stochastic depth on, so resume also covers the drop-path draws. */
function tinyCapi(): CapiMethod {
  return new CapiMethod(
    capiConfig("tiny", {
      imageSize: 16,
      embedDim: 32,
      numHeads: 2,
      encoderDepth: 2,
      decoderDepth: 1,
      numClusters: 16,
      dropPathRate: 0.25,
      optim: { totalIters: 6, warmupFraction: 0.34 },
    }),
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
  const a = tinyCapi();
  const ra = await train(a, batches(1, 6), { ...quiet, steps: 6, seed: 3, outDir: dirA, checkpointEvery: 3 });
  a.dispose();
  const b1 = tinyCapi();
  await train(b1, batches(1, 6), { ...quiet, steps: 3, seed: 3, outDir: dirB, checkpointEvery: 3 });
  b1.dispose();
  const b2 = tinyCapi();
  const rb = await train(b2, batches(1, 6), { ...quiet, steps: 6, seed: 3, outDir: dirB, resume: true });
  b2.dispose();
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
  const init = tinyCapi();
  const g0 = await init.params.get("ema.backbone.mask_token").data();
  assert.notDeepEqual(fa.tensors.get("ema.backbone.mask_token")!.data, g0);
  init.dispose();
  await Deno.remove(dirA, { recursive: true });
  await Deno.remove(dirB, { recursive: true });
});

Deno.test("no tensor leak: the tensor count is constant across steps", async () => {
  const dir = await Deno.makeTempDir();
  const m = tinyCapi();
  const counts: number[] = [];
  await train(m, batches(2, 6, 4, () => counts.push(tf.memory().numTensors)), {
    ...quiet,
    steps: 6,
    seed: 1,
    outDir: dir,
    checkpointEvery: 100,
  });
  m.dispose();
  // counts[i] is taken before iteration i; after warm-up (optimizer slots exist) it is flat.
  assert.deepEqual(counts.slice(2), Array(4).fill(counts[2]), `tensor counts ${counts}`);
  await Deno.remove(dir, { recursive: true });
});

/** A one-parameter method whose loss becomes NaN from iteration `badFrom` on. */
class NanMethod implements MimMethod {
  readonly name = "capi" as const;
  readonly params = new ParamStore();
  calls = 0;
  readonly optimizers;
  constructor(readonly badFrom: number) {
    this.params.add("w", { shape: [2], data: new Float32Array([1, 2]) });
    this.optimizers = [{
      id: "main",
      params: ["w"],
      betas: [0.9, 0.95] as [number, number],
      eps: 1e-8,
      hyper: () => ({ lr: 0.1, weightDecay: 0 }),
    }];
  }
  prepare(images: HostTensor<Float32Array>): PreparedBatch {
    return { images };
  }
  loss(): LossOutput {
    const bad = this.calls++ >= this.badFrom;
    return tf.tidy(() => {
      const l = tf.sum(tf.square(this.params.get("w")));
      return { loss: (bad ? tf.mul(l, NaN) : l) as tf.Scalar, metrics: {} };
    });
  }
  encoder(): VisionEncoder {
    throw new Error("unused");
  }
  dispose(): void {
    this.params.dispose();
  }
}

Deno.test("a NaN loss stops the run with its step number and keeps the last good checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  const m = new NanMethod(4); // iterations 0-3 fine, iteration 4 (step 5) NaN
  await assert.rejects(
    () =>
      train(m, batches(0, 10), { progress: null, logEvery: 3, steps: 10, seed: 0, outDir: dir, checkpointEvery: 2 }),
    /NaN or Inf at step 5 \(iteration 4\).*last good checkpoint/,
  );
  const f = await readSafetensors(`${dir}/${CHECKPOINT_FILE}`);
  assert.equal(f.metadata.step, "4");
  assert.ok([...f.tensors.get("w")!.data].every(Number.isFinite));
  m.dispose();
  await Deno.remove(dir, { recursive: true });
});
