/**
 * The one-graph training step on onnxruntime CPU, against a float64 host reference of torch's
 * AdamW (`_single_tensor_adamw`, `clip_grad_norm_`) and EMA, on a small spec with everything the
 * methods use: two optimizers, parameter groups with different lr and weight decay, clipping on
 * one optimizer, an EMA teacher, a frozen parameter, a trainable parameter the loss never reads,
 * gather with duplicate indices, layer norm, GELU, softmax attention and a log-softmax loss.
 * Also: gradients against the float64 interpreter, determinism and bit-identical resume, and
 * the errors (missing gradient rule, missing hyper-parameters, bad restore).
 */
import assert from "node:assert/strict";
import type { HostTensor } from "../fixture.ts";
import { Rng } from "../rng.ts";
import type { Tensor } from "./ops.ts";
import type { StepHyper, TrainStepSpec } from "../train_step.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { B, C, D, H, IN, normal, smallDraws, smallHyper, smallSpec, T } from "./small_step_spec.ts";
import { GraphOps } from "./graph_ops.ts";
import { gradients } from "./autodiff.ts";
import { refEval } from "./ref_eval.ts";
import { buildTrainStep } from "./step_graph.ts";

/** torch AdamW + clip_grad_norm_ + EMA in float64, from the engine's own gradients. */
class HostReference {
  readonly p = new Map<string, Float64Array>();
  readonly m = new Map<string, Float64Array>();
  readonly v = new Map<string, Float64Array>();
  readonly steps = new Map<string, number>();
  constructor(readonly spec: TrainStepSpec) {
    for (const [n, ps] of spec.params) this.p.set(n, Float64Array.from(ps.value.data));
  }
  step(grads: Map<string, HostTensor<Float32Array>>, h: StepHyper): void {
    for (const opt of this.spec.optimizers) {
      const names = opt.groups.flatMap((g) => g.params).filter((n) => grads.has(n));
      const g = new Map(names.map((n) => [n, Float64Array.from(grads.get(n)!.data)]));
      if (opt.clipGradNorm !== undefined) {
        const total = Math.sqrt(names.reduce((s, n) => s + g.get(n)!.reduce((a, x) => a + x * x, 0), 0));
        const coef = Math.min(opt.clipGradNorm / (total + 1e-6), 1);
        for (const n of names) g.get(n)!.forEach((x, i, a) => a[i] = x * coef);
      }
      const t = (this.steps.get(opt.id) ?? 0) + 1;
      this.steps.set(opt.id, t);
      const [b1, b2] = opt.betas;
      for (const group of opt.groups) {
        const { lr, weightDecay } = h.groups[opt.id][group.id];
        for (const n of group.params.filter((q) => g.has(q))) {
          const p = this.p.get(n)!, gr = g.get(n)!;
          const m = this.m.get(n) ?? new Float64Array(p.length), v = this.v.get(n) ?? new Float64Array(p.length);
          for (let i = 0; i < p.length; i++) {
            p[i] *= 1 - lr * weightDecay;
            m[i] = b1 * m[i] + (1 - b1) * gr[i];
            v[i] = b2 * v[i] + (1 - b2) * gr[i] * gr[i];
            p[i] -= lr / (1 - b1 ** t) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(1 - b2 ** t) + opt.eps);
          }
          this.m.set(n, m);
          this.v.set(n, v);
        }
      }
    }
    const mom = h.emaMomentum!;
    for (const [ema, src] of this.spec.ema!.pairs) {
      const e = this.p.get(ema)!, s = this.p.get(src)!;
      for (let i = 0; i < e.length; i++) e[i] = mom * e[i] + (1 - mom) * s[i];
    }
  }
}

function assertClose(what: string, got: Float32Array, want: Float64Array, tol: number): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    assert.ok(
      Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])),
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

Deno.test("ort step: three AdamW steps (two optimizers, groups, clipping, EMA) equal torch's formulas in float64", async () => {
  const spec = smallSpec();
  const engine = new OrtTrainEngine(spec);
  const ref = new HostReference(spec);
  try {
    let clipped = false;
    for (let s = 0; s < 3; s++) {
      const res = await engine.step(smallDraws(s), smallHyper(s), { grads: true });
      const grads = res.grads!;
      assert.ok(!grads.has("unused.weight") && grads.has("head.weight") && grads.has("embed.bias"));
      const norm = Math.sqrt(["embed.weight", "fc.weight", "embed.bias", "norm.weight", "norm.bias", "fc.bias"]
        .reduce((a, n) => a + grads.get(n)!.data.reduce((x, y) => x + y * y, 0), 0));
      clipped ||= norm > 0.3;
      ref.step(grads, smallHyper(s));
      const state = await engine.snapshot();
      for (const [n, t] of state.params) assertClose(`step ${s} ${n}`, t.data, ref.p.get(n)!, 2e-6);
      for (const [id, os] of Object.entries(state.optimizers)) {
        assert.equal(os.step, s + 1, `${id} step count`);
        for (const [k, t] of os.tensors) {
          const [kind, n] = [k.slice(0, k.indexOf(".")), k.slice(k.indexOf(".") + 1)];
          assertClose(`step ${s} ${id} ${k}`, t.data, (kind === "exp_avg" ? ref.m : ref.v).get(n)!, 2e-6);
        }
      }
      const { loss, ce } = await res.read();
      assert.ok(Number.isFinite(loss) && ce > 0 && loss > ce);
    }
    assert.ok(clipped, "the clipping threshold must be active in this test");
    const state = await engine.snapshot();
    assert.deepEqual(state.params.get("unused.weight")!.data, spec.params.get("unused.weight")!.value.data);
    assert.deepEqual(state.params.get("frozen.scale")!.data, spec.params.get("frozen.scale")!.value.data);
    assert.ok(!state.optimizers.student.tensors.has("exp_avg.unused.weight"), "no state for a parameter without grad");
  } finally {
    engine.dispose();
  }
});

Deno.test("ort step: gradients and traces equal the float64 interpreter", async () => {
  const spec = smallSpec();
  const engine = new OrtTrainEngine(spec);
  try {
    const d = smallDraws(0);
    const res = await engine.step(d, smallHyper(0), { grads: true, trace: true });
    const o = new GraphOps();
    const feeds: Record<string, HostTensor> = { "draw.x": d.x, "draw.idx": d.idx };
    const get = (n: string) => {
      feeds[`param.${n}`] ??= spec.params.get(n)!.value;
      return o.graph.inputs.get(`param.${n}`)?.value ?? o.input(`param.${n}`, spec.params.get(n)!.value);
    };
    let h: Tensor | null = null;
    const { loss } = spec.loss(o, get, { x: o.input("draw.x", d.x), idx: o.input("draw.idx", d.idx) }, (_, t) => h = t);
    const names = [...res.grads!.keys()];
    const want = refEval(o.graph, [...gradients(o, loss, names.map(get)) as Tensor[], h!], feeds);
    names.forEach((n, i) => {
      const scale = Math.max(...Array.from(want[i].data, Math.abs));
      const err = Math.max(...Array.from(want[i].data, (v, j) => Math.abs(v - res.grads!.get(n)!.data[j])));
      assert.ok(err <= 1e-5 * scale, `grad ${n}: ${err} (scale ${scale})`);
    });
    assertClose("trace h", res.traced!.get("h")!.data, want[names.length].data as Float64Array, 1e-5);
  } finally {
    engine.dispose();
  }
});

Deno.test("ort step: bit-identical run to run, and a restored snapshot resumes bit-identically", async () => {
  const spec = smallSpec();
  const a = new OrtTrainEngine(spec), b = new OrtTrainEngine(spec), c = new OrtTrainEngine(spec);
  try {
    for (let s = 0; s < 2; s++) {
      await a.step(smallDraws(s), smallHyper(s));
      await b.step(smallDraws(s), smallHyper(s));
    }
    await c.restore(await a.snapshot());
    await a.step(smallDraws(2), smallHyper(2));
    await b.step(smallDraws(2), smallHyper(2));
    await c.step(smallDraws(2), smallHyper(2));
    const [sa, sb, sc] = await Promise.all([a.snapshot(), b.snapshot(), c.snapshot()]);
    for (const [n, t] of sa.params) {
      assert.deepEqual(sb.params.get(n)!.data, t.data, `run to run: ${n}`);
      assert.deepEqual(sc.params.get(n)!.data, t.data, `resumed: ${n}`);
    }
    assert.deepEqual(sc.optimizers, sa.optimizers);
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

Deno.test("ort step: an op without a gradient rule on the path fails in one line, before compiling", async () => {
  const spec = smallSpec({ withMax: true });
  assert.throws(
    () => buildTrainStep(spec, { x: { shape: [B, T, IN], dtype: "float32" }, idx: { shape: [4], dtype: "int32" } }),
    (e: Error) => {
      assert.match(
        e.message,
        /^autodiff: op 'max' has no gradient rule, but node 'max_\d+' \(inputs \[3,4,8\]\) lies on a path/,
      );
      assert.ok(!e.message.includes("\n"));
      return true;
    },
  );
  const engine = new OrtTrainEngine(spec);
  await assert.rejects(engine.step(smallDraws(0), smallHyper(0)), /op 'max' has no gradient rule/);
  engine.dispose();
});

Deno.test("ort engine: missing hyper-parameters and bad restores name what is wrong; nothing half-applied", async () => {
  const engine = new OrtTrainEngine(smallSpec());
  try {
    const h = smallHyper(0);
    await assert.rejects(
      engine.step(smallDraws(0), { ...h, groups: { ...h.groups, clustering: {} } }),
      /StepHyper.groups\['clustering'\]\['head'\]: no lr\/weightDecay/,
    );
    await assert.rejects(engine.step(smallDraws(0), { groups: h.groups }), /emaMomentum/);
    const before = await engine.snapshot();
    await assert.rejects(
      engine.restore({
        params: new Map([["norm.bias", { shape: [D], data: new Float32Array(D) }], ["fc.bias", {
          shape: [2],
          data: new Float32Array(2),
        }]]),
      }),
      /parameter 'fc.bias' is \[2\], the method has \[4\]/,
    );
    await assert.rejects(
      engine.restore({
        optimizers: {
          student: {
            step: 1,
            tensors: new Map([["exp_avg.head.weight", { shape: [C, H], data: new Float32Array(C * H) }]]),
          },
        },
      }),
      /optimizer 'student' has no state 'exp_avg.head.weight'/,
    );
    assert.deepEqual((await engine.snapshot()).params, before.params);
  } finally {
    engine.dispose();
  }
});

Deno.test("ort engine: evaluate runs on the current parameters, its per-call data through o.input", async () => {
  const spec = smallSpec();
  const engine = new OrtTrainEngine(spec);
  try {
    const run = (x: HostTensor<Float32Array>) =>
      engine.evaluate(
        "embed",
        (o, get) => ({ y: o.add(o.matMul(o.input("x", x), get("embed.weight"), false, true), get("embed.bias")) }),
      );
    const x = normal(Rng.from(1, "eval"), [2, IN], 1);
    const y0 = (await run(x)).y;
    const w = spec.params.get("embed.weight")!.value.data, b = spec.params.get("embed.bias")!.value.data;
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < D; j++) {
        let s = b[j];
        for (let k = 0; k < IN; k++) s += x.data[i * IN + k] * w[j * IN + k];
        assert.ok(Math.abs(y0.data[i * D + j] - s) < 1e-5);
      }
    }
    await engine.step(smallDraws(0), smallHyper(0));
    const y1 = (await run(x)).y;
    assert.notDeepEqual(y1.data, y0.data, "evaluate reads the parameters after the step");
  } finally {
    engine.dispose();
  }
});

Deno.test("ort engine: calls issued without awaiting run one after another, in order", async () => {
  const spec = smallSpec();
  const a = new OrtTrainEngine(spec), b = new OrtTrainEngine(spec);
  try {
    const x = normal(Rng.from(2, "eval"), [2, IN], 1);
    const probe = (o: Parameters<Parameters<OrtTrainEngine["evaluate"]>[1]>[0], get: (n: string) => Tensor) => ({
      y: o.matMul(o.input("x", x), get("embed.weight"), false, true),
    });
    // a: everything in flight at once; b: awaited one by one.
    const pending = [
      a.step(smallDraws(0), smallHyper(0)),
      a.evaluate("p", probe),
      a.step(smallDraws(1), smallHyper(1)),
    ];
    const snap = a.snapshot();
    await Promise.all(pending);
    await b.step(smallDraws(0), smallHyper(0));
    const mid = await b.evaluate("p", probe);
    await b.step(smallDraws(1), smallHyper(1));
    assert.deepEqual(((await pending[1]) as Record<string, HostTensor>).y.data, mid.y.data);
    assert.deepEqual((await snap).params, (await b.snapshot()).params);
  } finally {
    a.dispose();
    b.dispose();
  }
});
