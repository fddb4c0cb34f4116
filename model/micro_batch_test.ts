/**
 * Micro-batching (`batchPerDevice`): the split, every method's micro-batch draws, and the tfjs
 * engine's accumulated step against the one-shot batch (the ORT engine's: ops/ort_micro_step_test.ts).
 *
 * - `microBatchRanges` / `sliceSamples` / `sliceCapiMasks`: known answers and errors.
 * - Draws: `draw` is unchanged by this work (SHA-256 of each method's draws, recorded at commit
 *   e51c199 before micro-batching existed); one micro-batch is `draw`; micro-batches' per-sample
 *   draws are the batch's, sliced and re-based; CAPI's drop-path subsets are drawn per micro-batch.
 * - Accumulation (tfjs, cpu backend): 2 and 4 micro-batches against one batch of 8, two
 *   iterations: loss and metrics, gradients, CAPI's Sinkhorn targets and assignments, post-step
 *   parameters and AdamW moments agree to float32 rounding (measured: scalars <= 8e-8 relative,
 *   tensors <= 1e-6 of their scale; tolerances below). CAPI with stochastic depth off, whose
 *   subsets differ by construction; SimMIM with its per-sample drop path on.
 * - The tfjs engine's peak live tensor bytes fall with the micro-batch.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "./engine.ts";
import type { HostTensor } from "./fixture.ts";
import { METHOD_NAMES, type MethodName } from "./method.ts";
import { assertAgree, compareMicroToOneShot, MICRO_CONFIGS, microMethod } from "./micro_batch_check.ts";
import { microBatchRanges, sliceSamples } from "./micro_batch.ts";
import { Rng } from "./rng.ts";
import { readSafetensors } from "./safetensors.ts";
import { sha256Hex } from "./sha256.ts";
import { CHECKPOINT_FILE, train } from "./trainer.ts";
import { createTfTrainEngine, TfTrainEngine } from "./tf_train_engine.ts";
import { type BatchStatsPass, checkStatsPass, type StepDraws } from "./train_step.ts";
import { capiConfig } from "./capi/config.ts";
import { sliceCapiMasks } from "./capi/masking.ts";
import { CapiMethod } from "./capi/method.ts";
import { drawDropPath } from "./capi/model.ts";

await initBackend("cpu");

function images(b: number, seed = 1): HostTensor<Float32Array> {
  return { shape: [b, 3, 16, 16], data: Rng.from(seed, "images").fillNormal(new Float32Array(b * 3 * 256)) };
}

/** SHA-256 over named tensors in name order: name, dtype, shape, then the bytes of each. */
async function hashTensors(d: Record<string, HostTensor>): Promise<string> {
  const parts: Uint8Array[] = [];
  for (const [k, t] of Object.entries(d).sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    parts.push(new TextEncoder().encode(`${k}:${t.data instanceof Int32Array ? "i" : "f"}[${t.shape}]`));
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((off, p) => (all.set(p, off), off + p.length), 0);
  return await sha256Hex(all);
}

Deno.test("microBatchRanges: equal contiguous shares; at or above the batch one; a non-divisor is refused", () => {
  assert.deepEqual(microBatchRanges(8, 2), [0, 2, 4, 6].map((start) => ({ start, size: 2 })));
  assert.deepEqual(microBatchRanges(8, 8), [{ start: 0, size: 8 }]);
  assert.deepEqual(microBatchRanges(8, 64), [{ start: 0, size: 8 }]);
  assert.throws(
    () => microBatchRanges(12, 5),
    /^Error: batchPerDevice 5 does not divide the batch of 12 images: .*use a divisor of 12 \(e\.g\. 4\)$/,
  );
  assert.throws(() => microBatchRanges(8, 0), /batchPerDevice: expected a positive integer, got 0/);
});

Deno.test("sliceSamples and sliceCapiMasks: rows of a micro-batch, absolute indices re-based", () => {
  const t = { shape: [3, 2], data: Int32Array.from([0, 1, 2, 3, 4, 5]) };
  assert.deepEqual(sliceSamples(t, { start: 1, size: 2 }), { shape: [2, 2], data: Int32Array.from([2, 3, 4, 5]) });
  assert.equal(sliceSamples(t, { start: 0, size: 3 }), t, "the whole batch is the tensor itself");
  assert.throws(() => sliceSamples(t, { start: 2, size: 2 }), /samples \[2, 4\) are outside a batch of 3/);
  // 2 images of 4 tokens: image 1 masks tokens 0 and 3, predicts token 3.
  const m = {
    masks: Uint8Array.from([0, 1, 1, 0, 1, 0, 0, 1]),
    visibleIndices: Int32Array.from([0, 3, 5, 6]),
    predictIndices: Int32Array.from([2, 7]),
  };
  assert.deepEqual(sliceCapiMasks(m, { start: 1, size: 1 }, 4), {
    masks: Uint8Array.from([1, 0, 0, 1]),
    visibleIndices: Int32Array.from([1, 2]),
    predictIndices: Int32Array.from([3]),
  });
});

/** SHA-256 of `draw(images(4), Rng.from(2, name))` at `MICRO_CONFIGS`, by commit e51c199's code. */
const DRAWS_BEFORE: Record<MethodName, string> = {
  capi: "621dc7a7ccc2ed9261218b5221dad4de6f9a1a69ca93a54d3ab809e492897824",
  mae: "7ad5dbf688c888e5941c7912c1eeb1139d5b9cecc61f77827323a9f2b7307be3",
  simmim: "f85d6306ea18da2b65ebfd29c08ecc5daf3285c691acb9e940e424e151f2291b",
};

for (const name of METHOD_NAMES) {
  Deno.test(`${name}: draw is unchanged by micro-batching, and one micro-batch is draw`, async () => {
    const m = microMethod(name, 4);
    const x = { shape: [4, 3, 16, 16], data: Rng.from(1, name).fillNormal(new Float32Array(4 * 768)) };
    const d = m.draw(x, Rng.from(2, name));
    assert.equal(await hashTensors(d), DRAWS_BEFORE[name]);
    assert.deepEqual(m.drawMicroBatches(x, Rng.from(2, name), 4), [{ draws: d, samples: 4 }]);
    assert.deepEqual(m.drawMicroBatches(x, Rng.from(2, name), 16), [{ draws: d, samples: 4 }]);
  });
}

/**
 * SHA-256 of the checkpoint after 3 one-shot steps (batch 4, `Rng.from(9, "batch", i)` images,
 * seed 5) on the cpu backend, by commit e51c199's trainer and engine.
 */
const CHECKPOINT_BEFORE: Record<MethodName, string> = {
  capi: "61d7572d4c6bb2075af84c71b8d08052a54bcabb6fc3fce771b1b1078b57a5fd",
  mae: "38f69579119f2fe4def187fc05efa0fdeb166a8822854f79b85b919f52e9266f",
  simmim: "775c99a5edffd23d696fcca95fef9eb242b9c250a556d686da20cc83d5ca0be8",
};

Deno.test("batchPerDevice = batch trains bit for bit as before micro-batching (checkpoint hashes at e51c199)", async () => {
  for (const name of METHOD_NAMES) {
    const dir = await Deno.makeTempDir();
    try {
      const batches = (start: number) => ({
        async *[Symbol.asyncIterator]() {
          for (let i = start; i < 3; i++) {
            yield { shape: [4, 3, 16, 16], data: Rng.from(9, "batch", i).fillNormal(new Float32Array(4 * 768)) };
          }
        },
      });
      await train(microMethod(name, 4), batches, { steps: 3, seed: 5, outDir: dir, progress: null, batchPerDevice: 4 });
      const f = await readSafetensors(`${dir}/${CHECKPOINT_FILE}`);
      assert.equal(
        await hashTensors(Object.fromEntries(f.tensors) as Record<string, HostTensor>),
        CHECKPOINT_BEFORE[name],
        name,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

/** Per-sample draws (no drop path for CAPI) of micro-batches, concatenated, with indices shifted back. */
function joined(parts: StepDraws[], key: string, shift: (i: number) => number): Float32Array | Int32Array {
  const datas = parts.map((p, i) => p[key].data.map((v) => v + shift(i)));
  const out = datas[0] instanceof Int32Array
    ? new Int32Array(datas.reduce((n, d) => n + d.length, 0))
    : new Float32Array(
      datas.reduce((n, d) => n + d.length, 0),
    );
  datas.reduce((off, d) => (out.set(d, off), off + d.length), 0);
  return out;
}

Deno.test("micro-batches' per-sample draws are the batch's, sliced; absolute indices re-based", () => {
  const b = 8, x = images(b);
  const absolute: Record<MethodName, Record<string, number>> = {
    capi: { visible_indices: 16, predict_indices: 16 }, // per-image token count N = 16 (4 x 4 grid)
    mae: { keep_indices: 16, restore_indices: 16 },
    simmim: {},
  };
  for (const name of METHOD_NAMES) {
    const m = microMethod(name, b, false);
    const whole = m.draw(x, Rng.from(7));
    const parts = m.drawMicroBatches(x, Rng.from(7), 2).map((p) => p.draws);
    assert.equal(parts.length, 4);
    for (const key of Object.keys(whole)) {
      const n = absolute[name][key];
      const got = joined(parts, key, (i) => (n ? i * 2 * n : 0));
      assert.deepEqual(got, whole[key].data, `${name}: '${key}' of the micro-batches`);
    }
  }
});

Deno.test("CAPI drop path: per micro-batch, randperm(B_m)[:n_keep(B_m)] in turn from the batch's stream", () => {
  const c = capiConfig("tiny", { ...MICRO_CONFIGS.capi } as never);
  const m = new CapiMethod(c, 3);
  const rng = Rng.from(9);
  const parts = m.drawMicroBatches(images(8), rng, 4);
  const stream = Rng.from(9).fork("loss", "capi.drop_path");
  for (const p of parts) {
    const expected = drawDropPath(stream, c, 4); // n_keep = floor(4 * 0.75) = 3, not the batch's 6
    const got = Object.fromEntries(Object.entries(p.draws).filter(([k]) => k.startsWith("drop_path.")));
    assert.deepEqual(got, expected);
    assert.equal(got["drop_path.encoder.0.residual1.keep"].shape[0], 3);
  }
  assert.notDeepEqual(
    parts[0].draws["drop_path.encoder.0.residual1.keep"],
    parts[1].draws["drop_path.encoder.0.residual1.keep"],
  );
});

for (const name of METHOD_NAMES) {
  for (const k of [2, 4]) {
    Deno.test(`${name}: ${k} accumulated micro-batches reproduce the one-shot batch on tfjs`, async () => {
      const r = await compareMicroToOneShot(microMethod(name, 8, false), createTfTrainEngine, {
        batch: 8,
        batchPerDevice: 8 / k,
        imageSize: [16, 16],
        traces: name === "capi" ? ["teacher.targets", "teacher.head.assignments"] : [],
      });
      assertAgree(r.worst, r.skipped / r.total);
    });
  }
}

Deno.test("tfjs: a micro-batched step holds fewer live tensor bytes at its peak than the one-shot step", async () => {
  const m = microMethod("mae", 16);
  const x = images(16);
  const peaks: number[] = [];
  for (const per of [16, 4]) {
    const e = new TfTrainEngine(m.stepSpec());
    try {
      const before = tf.memory().numTensors;
      const r = await e.stepMicro(m.drawMicroBatches(x, Rng.from(3), per), m.hyper(5));
      peaks.push(r.peakTensorBytes!);
      r.dispose();
      const r2 = await e.stepMicro(m.drawMicroBatches(x, Rng.from(4), per), m.hyper(6));
      r2.dispose();
      assert.equal(
        tf.memory().numTensors,
        before + 2 * [...m.stepSpec().params.values()].filter((p) => p.trainable).length,
      );
    } finally {
      e.dispose();
    }
  }
  assert.ok(peaks[1] < 0.8 * peaks[0], `peak bytes: one-shot ${peaks[0]}, 4 micro-batches ${peaks[1]}`);
});

Deno.test("checkStatsPass: each partial needs a combine entry and vice versa; nothing made or saved twice", () => {
  const t = {} as never;
  const pass: BatchStatsPass = { combine: { a: "sum" }, compute: () => ({ partial: {} }) };
  const none = { stats: new Set<string>(), saved: new Set<string>() };
  assert.throws(
    () => checkStatsPass(1, pass, { partial: {} }, none),
    /batchStats\[1\]: combine names 'a', but compute returned no partial 'a'/,
  );
  assert.throws(
    () => checkStatsPass(0, pass, { partial: { a: t, b: t } }, none),
    /partial 'b' has no entry in combine/,
  );
  assert.throws(
    () => checkStatsPass(2, pass, { partial: { a: t } }, { stats: new Set(["a"]), saved: new Set() }),
    /statistic 'a' is already made by an earlier pass/,
  );
  assert.throws(
    () => checkStatsPass(0, pass, { partial: { a: t }, save: { f: t } }, { stats: new Set(), saved: new Set(["f"]) }),
    /'f' is already saved by an earlier pass/,
  );
  checkStatsPass(0, pass, { partial: { a: t }, save: { f: t } }, none);
});
