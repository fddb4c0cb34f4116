/**
 * Trajectory replay (model/trajectory.ts) on the committed fixtures' manifests and, end to end, on a toy
 * method: a fake `TrainEngine` (float32 AdamW on a least-squares loss, plain JS) replays an in-memory
 * trajectory made by the same algorithm in float64. It passes; a wrong weight decay, a missing metric
 * or a wrong optimizer step count fail, with the step or tensor named.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Fixture, fixtureFromTensors, type HostTensor, loadFixture } from "./fixture.ts";
import { capiConfigFromFixture, capiDims } from "./capi/config.ts";
import { collateMasks, inverseBlockMask } from "./capi/masking.ts";
import type { EngineState, StepResult, TrainEngine } from "./train_engine.ts";
import type { StepDraws, StepHyper, TrainStepSpec } from "./train_step.ts";
import {
  replayTrajectory,
  scalarTolerance,
  stateError,
  stepHyper,
  stepInput,
  type TrajectoryAdapter,
  trajectoryOf,
} from "./trajectory.ts";

const DIR = new URL("./testdata/trajectories/", import.meta.url).pathname;
const FIXTURES = ["capi_traj", "capi_traj_droppath", "mae_traj", "simmim_traj"];

Deno.test("the committed trajectories: 50 steps of every method, consistent manifests", async () => {
  for (const name of FIXTURES) {
    const fx = await loadFixture(`${DIR}${name}.json`);
    const tr = trajectoryOf(fx);
    assert.equal(tr.num_steps, 50, name);
    assert.equal(fx.f32("input.images").shape[0], 50, name);
    assert.ok(tr.metrics.includes("loss"), name);
    // The losses fall: real images (Fashion-MNIST), real training.
    const loss = fx.f32("traj.loss").data;
    assert.ok(loss[49] < 0.9 * loss[0], `${name}: loss ${loss[0]} -> ${loss[49]}`);
    // The tolerance grows with the step and never drops below the floor.
    assert.ok(scalarTolerance(tr, 49) >= scalarTolerance(tr, 0), name);
    assert.ok(scalarTolerance(tr, 0) >= tr.tolerance.floor, name);
    for (const t of [0, 25, 49]) assert.ok(Object.keys(stepHyperOf(fx, t).groups).length >= 1, name);
  }
  const capi = trajectoryOf(await loadFixture(`${DIR}capi_traj.json`));
  assert.deepEqual(capi.metrics, ["loss", "loss_capi", "loss_clustering", "target_entropy"]);
  assert.equal(capi.hyper[0].ema_momentum, 1, "EMA momentum starts at exactly 1.0 (SPEC 1.8)");
  assert.deepEqual(capi.final_optimizer_steps, { student: 50, clustering: 50 });
  const dp = await loadFixture(`${DIR}capi_traj_droppath.json`);
  assert.deepEqual(stepInput(dp, "drop_path_perms", 3).shape, [6, 6], "6 residual branches x batch 6");
});

Deno.test("CAPI trajectories: the recorded python-random draws and collate rand reproduce every step's masks and indices", async () => {
  for (const name of ["capi_traj", "capi_traj_droppath"]) {
    const fx = await loadFixture(`${DIR}${name}.json`);
    const c = capiDims(capiConfigFromFixture(fx.config));
    const uniform = (fx.manifest.mask_draws as { uniform: number[][] }).uniform;
    for (let t = 0; t < trajectoryOf(fx).num_steps; t++) {
      const ints = stepInput(fx, "mask_draws", t).data, masks = stepInput(fx, "masks", t).data;
      const batch = masks.length / c.nTokens;
      const ours = new Uint8Array(masks.length);
      for (let b = 0; b < batch; b++) {
        const queue = [...ints.subarray(4 * b, 4 * b + 4)];
        const draws = { uniform: () => uniform[t][b], randint: () => queue.shift()! };
        ours.set(inverseBlockMask(c.gridH, c.gridW, c.nMasked, draws), b * c.nTokens);
      }
      assert.deepEqual([...ours], [...masks], `${name} step ${t}: masks`);
      const m = collateMasks(ours, batch, c.nTokens, c.nPredict, stepInput(fx, "collate_rand", t).data);
      assert.deepEqual([...m.visibleIndices], [...stepInput(fx, "visible_indices", t).data], `${name} step ${t}`);
      assert.deepEqual([...m.predictIndices], [...stepInput(fx, "predict_indices", t).data], `${name} step ${t}`);
    }
  }
});

/** StepHyper for a spec that mirrors the fixture's own groups (what a faithful method declares). */
function stepHyperOf(fx: Fixture, t: number): StepHyper {
  const tr = trajectoryOf(fx);
  const spec = {
    params: new Map(),
    optimizers: tr.optimizers.map((o) => ({
      id: o.id,
      betas: o.betas,
      eps: o.eps,
      groups: o.groups.map((g) => ({ id: `m_${g.id}`, params: g.params.filter((p) => !p.includes("rope.freqs")) }))
        .filter((g) => g.params.length > 0),
    })),
    ema: null,
    loss: () => {
      throw new Error("not used");
    },
  } as unknown as TrainStepSpec;
  return stepHyper(fx, spec, t);
}

Deno.test("stepHyper maps the fixture's groups onto the method's by membership, frozen extras at lr 0 only", async () => {
  const fx = await loadFixture(`${DIR}capi_traj.json`);
  const tr = trajectoryOf(fx);
  const h = stepHyperOf(fx, 10);
  assert.equal(h.groups.student.m_lr1_wd1.lr, tr.hyper[10].groups.student.lr1_wd1.lr);
  assert.equal(h.groups.student["m_lr0.2_wd0"].weightDecay, 0, "patch_embed.bias: no decay");
  assert.equal(h.groups.clustering.m_all.weightDecay, 0.01, "torch AdamW default");
  assert.equal(h.emaMomentum, tr.hyper[10].ema_momentum);
  const base = (groups: { id: string; params: string[] }[]) =>
    ({
      params: new Map(),
      ema: null,
      loss: () => null,
      optimizers: [{ id: "student", betas: [0.9, 0.95], eps: 1e-8, groups }],
    }) as unknown as TrainStepSpec;
  const norm = "student.backbone.encoder.blocks.0.residual1.norm.weight";
  const q = "student.backbone.encoder.blocks.0.residual1.fn.q_proj.weight";
  assert.throws(() => stepHyper(fx, base([{ id: "g", params: [norm, q] }]), 10), /mixes trajectory groups/);
  assert.throws(() => stepHyper(fx, base([{ id: "g", params: ["student.nope"] }]), 0), /trains 'student.nope'/);
  assert.throws(
    () => stepHyper(fx, base([{ id: "g", params: [q] }]), 0),
    /the trajectory trains '.*' \(lr > 0 at step/,
  );
});

// ---- a toy method: w in R^4, loss = mean_i (x_i . w - y_i)^2, AdamW, one group (wd) + bias (no wd)

const T = 20, B = 8, D = 4;

function drawsOf(t: number): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(B * D), y = new Float32Array(B);
  for (let i = 0; i < B * D; i++) x[i] = Math.fround(Math.sin(1.3 * (t * B * D + i)) + 0.3 * Math.cos(0.7 * i));
  for (let b = 0; b < B; b++) y[b] = Math.fround(Math.cos(0.9 * (t * B + b)));
  return { x, y };
}

/** One AdamW trajectory of the toy in the given rounding (Math.fround = float32, identity = float64). */
function toyRun(round: (v: number) => number, wdScale = 1) {
  const w = [0.5, -0.25, 0.125, 1].map(round), bias = [round(0.1)];
  const m = [new Array(D).fill(0), [0]], v = [new Array(D).fill(0), [0]];
  const losses: number[] = [];
  for (let t = 0; t < T; t++) {
    const { x, y } = drawsOf(t);
    const gw = new Array(D).fill(0);
    let gb = 0, loss = 0;
    for (let b = 0; b < B; b++) {
      let p = bias[0];
      for (let d = 0; d < D; d++) p = round(p + round(x[b * D + d] * w[d]));
      const r = round(p - y[b]);
      loss = round(loss + round(r * r / B));
      for (let d = 0; d < D; d++) gw[d] = round(gw[d] + round(2 * r * x[b * D + d] / B));
      gb = round(gb + round(2 * r / B));
    }
    losses.push(loss);
    const lr = 0.05 * Math.min(1, (t + 1) / 5);
    for (const [k, params, grads, wd] of [[0, w, gw, 0.1 * wdScale], [1, bias, [gb], 0]] as const) {
      for (let i = 0; i < params.length; i++) {
        const step = t + 1;
        m[k][i] = round(0.9 * m[k][i] + 0.1 * grads[i]);
        v[k][i] = round(0.99 * v[k][i] + 0.01 * grads[i] * grads[i]);
        const p = round(params[i] * (1 - lr * wd));
        params[i] = round(
          p - (lr / (1 - 0.9 ** step)) * m[k][i] / (Math.sqrt(v[k][i]) / Math.sqrt(1 - 0.99 ** step) + 1e-8),
        );
      }
    }
  }
  return { w, bias, m, v, losses };
}

function toyFixture(): Fixture {
  const ref = toyRun((v) => v);
  const xs = new Float32Array(T * B * D), ys = new Float32Array(T * B);
  for (let t = 0; t < T; t++) {
    const { x, y } = drawsOf(t);
    xs.set(x, t * B * D);
    ys.set(y, t * B);
  }
  const f = (a: number[], shape = [a.length]): HostTensor => ({ shape, data: Float32Array.from(a) });
  const hyper = Array.from({ length: T }, (_, t) => {
    const lr = 0.05 * Math.min(1, (t + 1) / 5);
    return { groups: { main: { decay: { lr, weight_decay: 0.1 }, no_decay: { lr, weight_decay: 0 } } } };
  });
  return fixtureFromTensors("toy.json", {}, [
    ["input.x", { shape: [T, B, D], data: xs }],
    ["input.y", { shape: [T, B], data: ys }],
    ["param.w", f([0.5, -0.25, 0.125, 1])],
    ["param.bias", f([0.1])],
    ["traj.loss", f(ref.losses)],
    ["final.param.w", f(ref.w)],
    ["final.param.bias", f(ref.bias)],
    ["final.optim.main.exp_avg.w", f(ref.m[0])],
    ["final.optim.main.exp_avg_sq.w", f(ref.v[0])],
    ["final.optim.main.exp_avg.bias", f(ref.m[1])],
    ["final.optim.main.exp_avg_sq.bias", f(ref.v[1])],
  ], {
    format: "mim-trajectory-v1",
    extends: "mim-fixture-v1",
    method: "toy",
    trajectory: {
      num_steps: T,
      metrics: ["loss"],
      optimizers: [{
        id: "main",
        betas: [0.9, 0.99],
        eps: 1e-8,
        groups: [{ id: "decay", params: ["w"] }, { id: "no_decay", params: ["bias"] }],
      }],
      hyper,
      final_optimizer_steps: { main: T },
      inert_state: [],
      noise_elements: [],
      tolerance: { rule: "toy", margin: 10, floor: 1e-5, a: 1e-7, rate: 0.05, final: 1e-5 },
    },
  });
}

/** A fake float32 engine for the toy, optionally with a bug. */
class ToyEngine implements TrainEngine {
  readonly description = { engine: "tfjs" as const, device: "toy", versions: {} };
  #w: number[];
  #b: number[];
  #m = [new Array(D).fill(0), [0]];
  #v = [new Array(D).fill(0), [0]];
  #t = 0;
  constructor(readonly spec: TrainStepSpec, readonly bug: { wdScale?: number; dropMetric?: boolean } = {}) {
    this.#w = [...spec.params.get("w")!.value.data];
    this.#b = [...spec.params.get("bias")!.value.data];
  }
  step(draws: StepDraws, hyper: StepHyper): Promise<StepResult> {
    const r = Math.fround, x = draws.x.data, y = draws.y.data;
    const gw = new Array(D).fill(0);
    let gb = 0, loss = 0;
    for (let b = 0; b < B; b++) {
      let p = this.#b[0];
      for (let d = 0; d < D; d++) p = r(p + r(x[b * D + d] * this.#w[d]));
      const e = r(p - y[b]);
      loss = r(loss + r(e * e / B));
      for (let d = 0; d < D; d++) gw[d] = r(gw[d] + r(2 * e * x[b * D + d] / B));
      gb = r(gb + r(2 * e / B));
    }
    this.#t++;
    const g = hyper.groups.main;
    for (const [k, params, grads, h] of [[0, this.#w, gw, g.dec], [1, this.#b, [gb], g.nodec]] as const) {
      const wd = h.weightDecay * (k === 0 ? this.bug.wdScale ?? 1 : 1);
      for (let i = 0; i < params.length; i++) {
        this.#m[k][i] = r(0.9 * this.#m[k][i] + 0.1 * grads[i]);
        this.#v[k][i] = r(0.99 * this.#v[k][i] + 0.01 * grads[i] * grads[i]);
        const p = r(params[i] * (1 - h.lr * wd));
        params[i] = r(
          p -
            (h.lr / (1 - 0.9 ** this.#t)) * this.#m[k][i] /
              (Math.sqrt(this.#v[k][i]) / Math.sqrt(1 - 0.99 ** this.#t) + 1e-8),
        );
      }
    }
    const values: Record<string, number> = this.bug.dropMetric ? {} : { loss };
    return Promise.resolve({ read: () => Promise.resolve(values), dispose: () => {} });
  }
  snapshot(): Promise<EngineState> {
    const h = (a: number[]) => ({ shape: [a.length], data: Float32Array.from(a) });
    return Promise.resolve({
      params: new Map([["w", h(this.#w)], ["bias", h(this.#b)]]),
      optimizers: {
        main: {
          step: this.#t,
          tensors: new Map([
            ["exp_avg.w", h(this.#m[0])],
            ["exp_avg_sq.w", h(this.#v[0])],
            ["exp_avg.bias", h(this.#m[1])],
            ["exp_avg_sq.bias", h(this.#v[1])],
          ]),
        },
      },
    });
  }
  stepMicro(): Promise<StepResult> {
    throw new Error("a replay steps one batch at a time");
  }
  restore(): Promise<void> {
    return Promise.resolve();
  }
  evaluate(): Promise<Record<string, HostTensor<Float32Array>>> {
    return Promise.resolve({});
  }
  dispose(): void {}
}

const TOY: TrajectoryAdapter = {
  spec: (fx) => ({
    params: new Map(["w", "bias"].map((n) => [n, { value: fx.f32(`param.${n}`), trainable: true }])),
    optimizers: [{
      id: "main",
      betas: [0.9, 0.99],
      eps: 1e-8,
      groups: [{ id: "dec", params: ["w"] }, { id: "nodec", params: ["bias"] }],
    }],
    ema: null,
    loss: () => {
      throw new Error("the toy engine computes its own loss");
    },
  }),
  draws: (fx, t) => ({ x: stepInput(fx, "x", t), y: stepInput(fx, "y", t) }),
};

Deno.test("a faithful float32 engine replays the toy trajectory: PASS, every scalar and final tensor compared", async () => {
  const report = await replayTrajectory(toyFixture(), TOY, (spec) => new ToyEngine(spec));
  const s = report.summary();
  assert.ok(s.passed, JSON.stringify(report.rows()));
  assert.equal(s.compared, 1 + 6, "traj.loss and six final tensors");
  assert.ok(s.worstRatio > 0 && s.worstRatio < 1);
});

Deno.test("a wrong weight decay fails at the step it first shows, and in the final state", async () => {
  const ref = toyRun((v) => v), bad = toyRun(Math.fround, 0.5);
  assert.ok(Math.abs(ref.losses[T - 1] - bad.losses[T - 1]) > 0, "the bug changes the trajectory");
  const report = await replayTrajectory(toyFixture(), TOY, (spec) => new ToyEngine(spec, { wdScale: 0.5 }));
  const rows = new Map(report.rows().map((r) => [r.name, r]));
  assert.equal(report.summary().passed, false);
  const loss = rows.get("traj.loss")!;
  assert.equal(loss.status, "fail");
  assert.ok(loss.firstFailStep! >= 2 && loss.firstFailStep! <= T, `first failing step ${loss.firstFailStep}`);
  assert.equal(rows.get("final.param.w")!.status, "fail");
  assert.equal(rows.get("final.param.bias")!.status, "fail", "the bias follows the wrong w");
});

Deno.test("a metric the engine never reports is skipped, and a skip fails the replay", async () => {
  const report = await replayTrajectory(toyFixture(), TOY, (spec) => new ToyEngine(spec, { dropMetric: true }));
  const row = report.rows().find((r) => r.name === "traj.loss")!;
  assert.equal(row.status, "skip");
  assert.match(row.note!, /not reported at step 1/);
  assert.equal(report.summary().passed, false);
});

Deno.test("a spec whose optimizer differs from the fixture's (betas, eps, clipping) is refused before any step", async () => {
  const wrong: TrajectoryAdapter = {
    ...TOY,
    spec: (fx) => {
      const s = TOY.spec(fx);
      return { ...s, optimizers: [{ ...s.optimizers[0], betas: [0.9, 0.95] }] };
    },
  };
  await assert.rejects(
    replayTrajectory(toyFixture(), wrong, (spec) => new ToyEngine(spec)),
    /toy.json: optimizer 'main' has betas \[0.9,0.95\], eps 1e-8, clip undefined; the trajectory \[0.9,0.99\]/,
  );
});

Deno.test("stateError is scale-free and skips noise ranges", () => {
  assert.ok(Math.abs(stateError([1e-8, 2e-8], [1e-8, 2.2e-8]) - 1 / 11) < 1e-12, "relative to the largest reference");
  assert.equal(stateError([1, 5, 3], [1, 2, 3], [1, 2]), 0);
  assert.ok(Number.isNaN(stateError([NaN], [1])));
});
