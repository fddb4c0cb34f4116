/**
 * The ORT engine's accumulated step (ort_micro_step.ts, micro_step_graph.ts) on the CPU provider:
 * for every method at 16 px, 2 and 4 micro-batches reproduce the one-shot batch of 8 over two
 * iterations to float32 rounding (the checks and tolerances of model/micro_batch_test.ts:
 * gradients, CAPI's Sinkhorn targets and assignments, both losses, post-step parameters, AdamW
 * moments); one micro-batch is the one-shot step bit for bit; a statistics pass that breaks the
 * contract fails in one line naming the pass; the graphs read and write what the header says.
 */
import assert from "node:assert/strict";
import { METHOD_NAMES } from "../method.ts";
import { assertAgree, compareMicroToOneShot, microMethod } from "../micro_batch_check.ts";
import { Rng } from "../rng.ts";
import type { TrainStepSpec } from "../train_step.ts";
import type { Ops, ParamGetter, Tensor } from "./ops.ts";
import type { DrawShape } from "./step_graph.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { buildMicroStep } from "./micro_step_graph.ts";
import { smallDraws, smallHyper, smallSpec } from "./small_step_spec.ts";

const ort = (spec: TrainStepSpec) => Promise.resolve(new OrtTrainEngine(spec, { threads: 1 }));

for (const name of METHOD_NAMES) {
  for (const k of [2, 4]) {
    Deno.test(`${name}: ${k} accumulated micro-batches reproduce the one-shot batch on onnxruntime (cpu)`, async () => {
      const r = await compareMicroToOneShot(microMethod(name, 8, false), ort, {
        batch: 8,
        batchPerDevice: 8 / k,
        imageSize: [16, 16],
        traces: name === "capi" ? ["teacher.targets", "teacher.head.assignments"] : [],
      });
      assertAgree(r.worst, r.skipped / r.total);
    });
  }
}

Deno.test("ort stepMicro: one micro-batch is the one-shot step, bit for bit", async () => {
  const m = microMethod("capi", 4);
  const x = { shape: [4, 3, 16, 16], data: Rng.from(5).fillNormal(new Float32Array(4 * 768)) };
  const a = await ort(m.stepSpec()), b = await ort(m.stepSpec());
  try {
    await a.step(m.draw(x, Rng.from(6)), m.hyper(3));
    await b.stepMicro(m.drawMicroBatches(x, Rng.from(6), 4), m.hyper(3));
    const [sa, sb] = [await a.snapshot(), await b.snapshot()];
    for (const [n, t] of sa.params) assert.deepEqual(sb.params.get(n)!.data, t.data, n);
  } finally {
    a.dispose();
    b.dispose();
  }
});

/** The small spec with a batch statistic: targets normalised over the global batch, as Sinkhorn's columns. */
function withBatchStats(bad?: "no-partial" | "twice"): TrainStepSpec {
  const spec = smallSpec();
  const teacher = (o: Ops, get: ParamGetter, x: Tensor) => o.matMul(x, get("teacher.embed.weight"), false, true); // [B, T, D]
  return {
    ...spec,
    batchStats: [
      {
        combine: { shift: "max" },
        compute: (o, get, inputs) => {
          const t = teacher(o, get, inputs.x);
          const partial: Record<string, Tensor> = bad === "no-partial" ? {} : { shift: o.max(t, 0, true) };
          return { partial, save: { t } };
        },
      },
      {
        combine: bad === "twice" ? { shift: "sum" } : { total: "sum" },
        compute: (o, _get, _inputs, batch) => {
          const e = o.exp(o.sub(batch.saved.t, batch.stats.shift));
          return { partial: { [bad === "twice" ? "shift" : "total"]: o.sum(e, 0, true) } };
        },
      },
    ],
  };
}

Deno.test("buildMicroStep: passes read stat./saved. inputs and write partial./save. outputs; errors name the pass", () => {
  const shapes: Record<string, DrawShape> = {
    x: { shape: [1, 5, 6], dtype: "float32" },
    idx: { shape: [4], dtype: "int32" },
  };
  const g = buildMicroStep(withBatchStats(), shapes);
  assert.equal(g.passes.length, 2);
  assert.deepEqual(g.passes[0].lowered.outputs.map((o) => o.name).sort(), ["partial.shift", "save.t"]);
  assert.deepEqual(g.passes[0].stats.get("shift"), { combine: "max", shape: [1, 5, 8] });
  assert.deepEqual(g.passes[1].lowered.inputs.map((i) => i.name).sort(), ["saved.t", "stat.shift"]);
  assert.ok(g.grad.lowered.inputs.some((i) => i.name === "hyper.micro_weight"));
  assert.ok(g.grad.withGradient.every((p) => g.grad.lowered.outputs.some((o) => o.name === `new.acc.${p}`)));
  assert.ok(g.apply.lowered.inputs.some((i) => i.name === `grad.${g.grad.withGradient[0]}`));
  assert.throws(
    () => buildMicroStep(withBatchStats("no-partial"), shapes),
    /batchStats\[0\]: combine names 'shift', but compute returned no partial/,
  );
  assert.throws(
    () => buildMicroStep(withBatchStats("twice"), shapes),
    /batchStats\[1\]: statistic 'shift' is already made by an earlier pass/,
  );
});

Deno.test("ort stepMicro: micro-batches with the same draws as one step give its loss and update", async () => {
  const spec = smallSpec();
  const d = smallDraws(0);
  const half = (i: number) => ({
    draws: { x: { shape: [1, ...d.x.shape.slice(1)], data: d.x.data.slice(i * 30, (i + 1) * 30) }, idx: d.idx },
    samples: 1,
  });
  const a = await ort(spec), b = await ort(spec);
  try {
    const ra = await a.step(d, smallHyper(0), { grads: true });
    const rb = await b.stepMicro([half(0), half(1), half(2)], smallHyper(0), { grads: true });
    assert.ok(Math.abs((await ra.read()).loss - (await rb.read()).loss) < 1e-6);
    for (const [n, g] of ra.grads!) {
      const h = rb.grads!.get(n)!.data;
      g.data.forEach((v, i) => assert.ok(Math.abs(v - h[i]) <= 1e-6 * Math.max(1, Math.abs(v)), `${n}[${i}]`));
    }
  } finally {
    a.dispose();
    b.dispose();
  }
});
