/**
 * `TfTrainEngine` on a hand-checkable step (cpu backend): AdamW per param group with torch's
 * arithmetic, gradients reported before clipping, clipping, the EMA from post-step parameters,
 * snapshot/restore continuing bit for bit, `evaluate` leaving parameters alone, errors that name the
 * group or parameter, no leaks, and the description of what actually runs (the blas -> wasm fallback).
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "./engine.ts";
import { EngineEncoder, evalOnlySpec } from "./engine_encoder.ts";
import { tfEngineDescription, TfTrainEngine } from "./tf_train_engine.ts";
import type { StepHyper, TrainStepSpec } from "./train_step.ts";

await initBackend("cpu");

const f32 = (...v: number[]) => ({ shape: [v.length], data: Float32Array.from(v) });

/** loss = sum(a * x) + sum(b^2) (x a per-step input); `ema.a` follows `a`; two groups, optional clipping. */
function spec(clip?: number): TrainStepSpec {
  return {
    params: new Map([
      ["a", { value: f32(1, -2), trainable: true }],
      ["b", { value: f32(3), trainable: true }],
      ["ema.a", { value: f32(1, -2), trainable: false }],
    ]),
    optimizers: [{
      id: "main",
      groups: [{ id: "decay", params: ["a"] }, { id: "plain", params: ["b"] }],
      betas: [0.9, 0.999],
      eps: 1e-8,
      clipGradNorm: clip,
    }],
    ema: { pairs: [["ema.a", "a"]] },
    loss: (o, get, inputs, trace) => {
      const prod = o.sum(o.mul(get("a"), inputs.x), 0);
      trace?.("prod", prod);
      return { loss: o.add(prod, o.sum(o.square(get("b")), 0)), metrics: { prod } };
    },
  };
}
const hyper: StepHyper = {
  groups: { main: { decay: { lr: 0.1, weightDecay: 0.5 }, plain: { lr: 0.01, weightDecay: 0 } } },
  emaMomentum: 0.75,
};
const x = { x: f32(0.5, 4) };

Deno.test("one step: torch AdamW per group, EMA of the post-step parameters, traced values and metrics", async () => {
  const e = new TfTrainEngine(spec());
  const r = await e.step(x, hyper, { trace: true, grads: true });
  assert.deepEqual(await r.read(), { loss: 0.5 - 8 + 9, prod: -7.5 });
  assert.deepEqual([...r.traced!.get("prod")!.data], [-7.5]);
  assert.deepEqual([...r.grads!.get("a")!.data], [0.5, 4]);
  assert.deepEqual([...r.grads!.get("b")!.data], [6]);
  r.dispose();
  const s = await e.snapshot();
  // First AdamW step: p (1 - lr wd) - lr * g / (|g| + eps) = p (1 - lr wd) - lr sign(g), up to eps.
  const a = s.params.get("a")!.data, b = s.params.get("b")!.data, ema = s.params.get("ema.a")!.data;
  [1 * 0.95 - 0.1, -2 * 0.95 - 0.1].forEach((v, i) => assert.ok(Math.abs(a[i] - v) < 1e-6, `a[${i}] ${a[i]} vs ${v}`));
  assert.ok(Math.abs(b[0] - (3 - 0.01)) < 1e-6);
  [1, -2].forEach((v, i) => assert.ok(Math.abs(ema[i] - (0.75 * v + 0.25 * a[i])) < 1e-6, `ema[${i}]`));
  assert.deepEqual(s.optimizers.main.step, 1);
  assert.deepEqual([...s.optimizers.main.tensors.keys()].sort(), [
    "exp_avg.a",
    "exp_avg.b",
    "exp_avg_sq.a",
    "exp_avg_sq.b",
  ]);
  e.dispose();
});

Deno.test("clipping: gradients are reported before clipping, the moments see the clipped ones", async () => {
  const e = new TfTrainEngine(spec(1e-3));
  const r = await e.step(x, hyper, { grads: true });
  assert.deepEqual([...r.grads!.get("a")!.data], [0.5, 4]);
  assert.deepEqual([...r.grads!.get("b")!.data], [6]);
  r.dispose();
  // torch clip_grad_norm_: g * max_norm / (||g|| + 1e-6) over every parameter of the optimizer; exp_avg = 0.1 g.
  const coef = 1e-3 / (Math.hypot(0.5, 4, 6) + 1e-6);
  const m = (await e.snapshot()).optimizers.main.tensors;
  assert.ok(Math.abs(m.get("exp_avg.b")!.data[0] - 0.1 * 6 * coef) < 1e-10, `exp_avg.b ${m.get("exp_avg.b")!.data[0]}`);
  assert.ok(Math.abs(m.get("exp_avg.a")!.data[1] - 0.1 * 4 * coef) < 1e-10);
  e.dispose();
});

Deno.test("snapshot and restore continue bit for bit; evaluate reads parameters without disposing them; no leaks", async () => {
  const a = new TfTrainEngine(spec());
  for (let i = 0; i < 2; i++) (await a.step(x, hyper)).dispose();
  const b = new TfTrainEngine(spec());
  await b.restore(await a.snapshot());
  const before = tf.memory().numTensors;
  for (const e of [a, b]) (await e.step(x, hyper)).dispose();
  assert.equal(tf.memory().numTensors, before, "a step leaked tensors");
  const [sa, sb] = [await a.snapshot(), await b.snapshot()];
  assert.deepEqual(sa, sb);
  const ev = await a.evaluate("read", (o, get) => ({ a: get("a"), twice: o.mul(get("a"), 2) }));
  assert.deepEqual(ev.a.data, sa.params.get("a")!.data);
  assert.deepEqual([...ev.twice.data], [...sa.params.get("a")!.data].map((v) => 2 * v));
  assert.deepEqual(
    (await a.snapshot()).params.get("a")!.data,
    sa.params.get("a")!.data,
    "evaluate disposed a parameter",
  );
  assert.equal(tf.memory().numTensors, before, "evaluate leaked tensors");
  await assert.rejects(() => a.restore({ params: new Map([["a", f32(1)]]) }), /'a' has shape \[2\], got \[1\]/);
  await assert.rejects(
    () => a.restore({ optimizers: { nope: { step: 1, tensors: new Map() } } }),
    /restore: unknown optimizer 'nope' \(this step has main\)/,
  );
  a.dispose();
  b.dispose();
});

Deno.test("errors name the group, the parameter or the missing momentum", async () => {
  const e = new TfTrainEngine(spec());
  await assert.rejects(
    () => e.step(x, { groups: { main: { decay: { lr: 0.1, weightDecay: 0 } } }, emaMomentum: 0.5 }),
    /hyper.groups\['main'\]\['plain'\]: expected finite lr and weightDecay, got undefined/,
  );
  await assert.rejects(() => e.step(x, { groups: hyper.groups }), /hyper.emaMomentum: the step has an EMA/);
  e.dispose();
  const bad = spec();
  bad.optimizers[0].groups.push({ id: "again", params: ["a"] });
  assert.throws(() => new TfTrainEngine(bad), /'a' is in optimizer 'main\/decay' and in 'main\/again'/);
  const orphan = spec();
  orphan.optimizers[0].groups.pop();
  assert.throws(() => new TfTrainEngine(orphan), /trainable parameter 'b' is in no optimizer group/);
  const frozen = spec();
  frozen.params.set("b", { value: f32(3), trainable: false });
  assert.throws(() => new TfTrainEngine(frozen), /group 'plain': 'b' is not a trainable parameter/);
});

Deno.test("EngineEncoder evaluates an EncoderForward through the engine; an eval-only spec has no training step", async () => {
  const params = new Map([["w", { shape: [1, 2, 2, 1], data: Float32Array.from([1, 2, 3, 4]) }]]);
  const engine = new TfTrainEngine(evalOnlySpec(params));
  const enc = new EngineEncoder(engine, {
    encoderInfo: { arch: "toy", embedDim: 1, patchSize: 1, imageSize: [2, 2] },
    encoderPrefix: "",
    encode: (o, get, images) => ({
      global: null,
      patches: o.mul(get("w"), o.sum(o.input("images", images), [1, 2, 3], true)),
      registers: null,
    }),
  }, true);
  const f = await enc.encode({ shape: [1, 3, 2, 2], data: new Float32Array(12).fill(0.5) });
  assert.deepEqual(f, {
    global: null,
    patches: { shape: [1, 2, 2, 1], data: Float32Array.from([6, 12, 18, 24]) },
    registers: null,
  });
  await assert.rejects(
    () => enc.encode({ shape: [1, 3, 4, 4], data: new Float32Array(48) }),
    /toy: images \[1,3,4,4\]/,
  );
  await assert.rejects(
    () => engine.step({}, { groups: {} }),
    /no parameter is trainable \(an engine over evaluation weights only\)/,
  );
  enc.dispose();
});

Deno.test("description: the backend that runs, with the versions of what computes", () => {
  // The fallback case (blas asked, no BLAS library, wasm runs) is bench/provenance_test.ts's subprocess test.
  assert.deepEqual(tfEngineDescription().device, "cpu");
  assert.equal(tfEngineDescription().fallbackFrom, undefined);
  assert.match(tfEngineDescription().versions["@tensorflow/tfjs-core"], /^4\./);
});
