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
import type { Ops, ParamGetter, Tensor } from "./ops.ts";
import type { StepHyper, TrainStepSpec } from "../train_step.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { GraphOps } from "./graph_ops.ts";
import { gradients } from "./autodiff.ts";
import { refEval } from "./ref_eval.ts";
import { buildTrainStep } from "./step_graph.ts";

const B = 3, T = 5, IN = 6, D = 8, H = 4, C = 3;

function normal(rng: Rng, shape: number[], std: number): HostTensor<Float32Array> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return { shape, data };
}

/** A small model: embed -> gather tokens -> LN -> attention-like mixing -> MLP -> head -> CE vs the teacher. */
function smallSpec(opts: { withMax?: boolean } = {}): TrainStepSpec {
  const rng = Rng.from(11, "small-spec");
  const p = (shape: number[], std: number, trainable = true) => ({
    value: normal(rng.fork(shape.join("x"), std), shape, std),
    trainable,
  });
  const params = new Map([
    ["embed.weight", p([D, IN], 0.4)],
    ["embed.bias", p([D], 0.1)],
    ["norm.weight", { value: { shape: [D], data: new Float32Array(D).fill(1.1) }, trainable: true }],
    ["norm.bias", p([D], 0.05)],
    ["fc.weight", p([H, D], 0.5)],
    ["fc.bias", p([H], 0.1)],
    ["head.weight", p([C, H], 0.6)],
    ["frozen.scale", p([D], 1, false)],
    ["unused.weight", p([2, 2], 1)],
    ["teacher.embed.weight", p([D, IN], 0.4, false)],
    ["teacher.embed.bias", p([D], 0.1, false)],
  ]);
  return {
    params,
    optimizers: [
      {
        id: "student",
        groups: [
          { id: "decay", params: ["embed.weight", "fc.weight", "unused.weight"] },
          { id: "no_decay", params: ["embed.bias", "norm.weight", "norm.bias", "fc.bias"] },
        ],
        betas: [0.9, 0.95],
        eps: 1e-8,
        clipGradNorm: 0.3,
      },
      { id: "clustering", groups: [{ id: "head", params: ["head.weight"] }], betas: [0.8, 0.99], eps: 1e-6 },
    ],
    ema: { pairs: [["teacher.embed.weight", "embed.weight"], ["teacher.embed.bias", "embed.bias"]] },
    loss(o: Ops, get: ParamGetter, inputs: Record<string, Tensor>, trace) {
      const lin = (x: Tensor, w: string, b?: string) => {
        const y = o.matMul(x, get(w), false, true);
        return b ? o.add(y, get(b)) : y;
      };
      const tokens = o.gather(lin(inputs.x, "embed.weight", "embed.bias"), inputs.idx, 1); // [B, 4, D]
      const h = o.mul(o.layerNorm(tokens, get("norm.weight"), get("norm.bias"), 1e-6), get("frozen.scale"));
      trace?.("h", h);
      const att = o.softmax(o.mul(o.matMul(h, h, false, true), 1 / Math.sqrt(D)), -1); // [B, 4, 4]
      let mixed = o.add(h, o.matMul(att, h));
      if (opts.withMax) mixed = o.sub(mixed, o.max(mixed, -1, true));
      const logits = o.matMul(o.gelu(lin(mixed, "fc.weight", "fc.bias")), get("head.weight"), false, true); // [B, 4, C]
      const teacher = o.stopGradient(
        o.softmax(o.slice(lin(inputs.x, "teacher.embed.weight", "teacher.embed.bias"), [0, 0, 0], [-1, 4, C]), -1),
      );
      const ce = o.neg(o.mean(o.sum(o.mul(teacher, o.logSoftmax(logits, -1)), -1), [0, 1]));
      return { loss: o.add(ce, o.mul(o.mean(o.square(o.reshape(get("fc.weight"), [-1])), 0), 0.1)), metrics: { ce } };
    },
  };
}

function draws(step: number) {
  const rng = Rng.from(5, "draws", step);
  return {
    x: normal(rng, [B, T, IN], 1),
    idx: { shape: [4], data: Int32Array.from([rng.int(0, T - 1), 2, 2, rng.int(0, T - 1)]) },
  };
}

function hyper(step: number): StepHyper {
  return {
    groups: {
      student: {
        decay: { lr: 0.01 / (1 + step), weightDecay: 0.05 },
        no_decay: { lr: 0.01 / (1 + step), weightDecay: 0 },
      },
      clustering: { head: { lr: 0.02, weightDecay: 0.2 } },
    },
    emaMomentum: 0.9 + 0.01 * step,
  };
}

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
      const res = await engine.step(draws(s), hyper(s), { grads: true });
      const grads = res.grads!;
      assert.ok(!grads.has("unused.weight") && grads.has("head.weight") && grads.has("embed.bias"));
      const norm = Math.sqrt(["embed.weight", "fc.weight", "embed.bias", "norm.weight", "norm.bias", "fc.bias"]
        .reduce((a, n) => a + grads.get(n)!.data.reduce((x, y) => x + y * y, 0), 0));
      clipped ||= norm > 0.3;
      ref.step(grads, hyper(s));
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
    const d = draws(0);
    const res = await engine.step(d, hyper(0), { grads: true, trace: true });
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
      await a.step(draws(s), hyper(s));
      await b.step(draws(s), hyper(s));
    }
    await c.restore(await a.snapshot());
    await a.step(draws(2), hyper(2));
    await b.step(draws(2), hyper(2));
    await c.step(draws(2), hyper(2));
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
  await assert.rejects(engine.step(draws(0), hyper(0)), /op 'max' has no gradient rule/);
  engine.dispose();
});

Deno.test("ort engine: missing hyper-parameters and bad restores name what is wrong; nothing half-applied", async () => {
  const engine = new OrtTrainEngine(smallSpec());
  try {
    const h = hyper(0);
    await assert.rejects(
      engine.step(draws(0), { ...h, groups: { ...h.groups, clustering: {} } }),
      /StepHyper.groups\['clustering'\]\['head'\]: no lr\/weightDecay/,
    );
    await assert.rejects(engine.step(draws(0), { groups: h.groups }), /emaMomentum/);
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

Deno.test("ort engine: evaluate compiles once per key and shapes, runs on the current parameters", async () => {
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
    await engine.step(draws(0), hyper(0));
    const y1 = (await run(x)).y;
    assert.notDeepEqual(y1.data, y0.data, "evaluate reads the parameters after the step");
  } finally {
    engine.dispose();
  }
});
