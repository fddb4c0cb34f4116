/**
 * Parity runner for `mim-fixture-v1` CAPI fixtures (`model/testdata/capi_tiny.json`): the
 * method's own training step, run once by a `TrainEngine` on the fixture's weights, masks and
 * hyper-parameters (constant lrs, the fixture's `ema_momentum`), every tensor compared:
 * intermediates and losses (`step` with trace), gradients (`step` with grads), post-step
 * parameters (`snapshot`), the eval forward and the unit cases (`evaluate`). An engine passes
 * exactly when its training step is right.
 *
 * Everything is read from the manifest's `config` (sizes, temperatures, optimizer), so
 * fixtures with other widths, depths, register counts or non-square images run unchanged.
 *
 * @module
 */
import type { Fixture, HostTensor } from "../fixture.ts";
import { specFromFixture } from "../fixture_spec.ts";
import type { ParityReport } from "../parity.ts";
import { warmupThenCosine } from "../schedules.ts";
import type { EngineFactory, TrainEngine } from "../train_engine.ts";
import { capiConfigFromFixture, capiDims } from "./config.ts";
import { sinkhornKnopp } from "./heads.ts";
import { collateMasks } from "./masking.ts";
import { CapiMethod } from "./method.ts";
import { evalForward } from "./model.ts";
import { applyRope, edgeRegisterCoords, ropeAngles, ropeFreqs, rotateHalfMatrix } from "./rope.ts";
import { paramGroupMults } from "./optim.ts";

/** `[A, B, C]` -> `[B, A, C]` on the host. */
function swap01(t: HostTensor<Float32Array>): Float32Array {
  const [a, b, c] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) out.set(t.data.subarray((i * b + j) * c, (i * b + j + 1) * c), (j * a + i) * c);
  }
  return out;
}

/** Check that the name rules give the manifest's `param_groups` (lr and wd multipliers). */
function checkParamGroups(fx: Fixture, o: ReturnType<typeof capiConfigFromFixture>["optim"]): void {
  const groups = (fx.config.param_groups ?? []) as {
    lr: number;
    weight_decay: number;
    lr_multiplier: number;
    wd_multiplier: number;
    params: string[];
  }[];
  for (const g of groups) {
    const lr = o.lr * g.lr_multiplier, wd = o.weightDecay * g.wd_multiplier;
    if (Math.abs(lr - g.lr) > 1e-12 || Math.abs(wd - g.weight_decay) > 1e-12) {
      throw new Error(
        `${fx.path}: config.param_groups has lr ${g.lr}, wd ${g.weight_decay} for multipliers ` +
          `x${g.lr_multiplier}, x${g.wd_multiplier}; optimizer.lr/weight_decay give ${lr}, ${wd}`,
      );
    }
    for (const name of g.params) {
      const m = paramGroupMults(name, o);
      if (Math.abs(m.lrMult - g.lr_multiplier) > 1e-12 || Math.abs(m.wdMult - g.wd_multiplier) > 1e-12) {
        throw new Error(
          `${fx.path}: config.param_groups puts '${name}' at lr x${g.lr_multiplier}, wd x${g.wd_multiplier}; ` +
            `the name rules give lr x${m.lrMult}, wd x${m.wdMult}`,
        );
      }
    }
  }
}

/** Traced names whose fixture layout is `[N, B, K]` (the official code transposes; we keep `[B, N, K]`). */
const TRANSPOSED_TO_NB = new Set(["teacher.head.logits", "teacher.head.assignments"]);

/** Compare one traced intermediate with its fixture tensor (layouts adapted), if the fixture has it. */
function compareTraced(report: ParityReport, fx: Fixture, name: string, t: HostTensor<Float32Array>): void {
  const ref = name.replace(/\.patch_embed$/, ".patch_embed_conv");
  if (!fx.has(ref)) return;
  if (ref.endsWith("patch_embed_conv")) {
    // [B, N, D] -> [B, D, N]: the Conv2d output layout.
    const [bb, n, d] = t.shape;
    const out = new Float32Array(t.data.length);
    for (let s = 0; s < bb; s++) {
      out.set(swap01({ shape: [n, d, 1], data: t.data.subarray(s * n * d, (s + 1) * n * d) }), s * n * d);
    }
    report.compare(ref, out);
  } else if (TRANSPOSED_TO_NB.has(ref)) report.compare(ref, swap01(t));
  else report.compare(ref, t.data);
}

export async function runCapiParity(fx: Fixture, report: ParityReport, createEngine: EngineFactory): Promise<void> {
  const cfg = capiConfigFromFixture(fx.config);
  const dims = capiDims(cfg);
  checkParamGroups(fx, cfg.optim);
  // The official step differentiates rope.freqs (lr x0) too: the fixture holds their gradients.
  const method = new CapiMethod(cfg, 0, { zeroLrGrads: true });
  const images = fx.f32("input.images");
  const b = images.shape[0];
  const m = collateMasks(
    Uint8Array.from(fx.i32("input.masks").data),
    b,
    dims.nTokens,
    dims.nPredict,
    fx.f32("input.collate_rand").data,
  );
  for (const [key, ours] of [["visible_indices", m.visibleIndices], ["predict_indices", m.predictIndices]] as const) {
    const ref = fx.i32(`input.${key}`).data;
    if (ref.length !== ours.length || ref.some((v, i) => v !== ours[i])) {
      throw new Error(`${fx.path}: collateMasks(input.masks, input.collate_rand) does not reproduce input.${key}`);
    }
  }
  const draws = method.drawsWithMasks(images, m);
  const engine = await createEngine(specFromFixture(method.stepSpec(), fx));
  try {
    // The eval forward on the student backbone before the step (the fixture's eval.* use the initial weights).
    const ev = await engine.evaluate("eval", (o, get) => {
      const r = evalForward(o, get, "student.backbone.", o.input("patches", draws.patches), method.geometry);
      return { feature_map: r.featureMap, global_repr: r.global, ...(r.registers ? { registers: r.registers } : {}) };
    });
    for (const k of ["feature_map", "global_repr", "registers"]) {
      if (fx.has(`eval.${k}`)) report.compare(`eval.${k}`, ev[k]?.data ?? new Float32Array(0));
    }

    const o = cfg.optim;
    const hyper = method.hyperAt(o.lr, o.clusteringLr, Number(fx.config.ema_momentum));
    const res = await engine.step(draws, hyper, { trace: true, grads: true });
    for (const [name, t] of res.traced ?? []) compareTraced(report, fx, name, t);
    for (const [name, g] of res.grads ?? []) if (fx.has(`grad.${name}`)) report.compare(`grad.${name}`, g.data);
    res.dispose();
    const coordsAll = new Float32Array(b * dims.nTokens * 2);
    for (let s = 0; s < b; s++) coordsAll.set(method.geometry.all, s * dims.nTokens * 2);
    for (const k of ["teacher.coords_all", "student.coords_all"]) if (fx.has(k)) report.compare(k, coordsAll);

    // One student AdamW step, the teacher head's AdamW step, then the EMA: post-step parameters.
    const after = await engine.snapshot();
    for (const [n, t] of after.params) if (fx.has(`step.${n}`)) report.compare(`step.${n}`, t.data);

    await unitCases(fx, report, cfg.nSkIter, engine);
  } finally {
    engine.dispose();
  }
  scheduleCases(fx, report);
}

async function unitCases(fx: Fixture, report: ParityReport, nSkIter: number, engine: TrainEngine): Promise<void> {
  if (fx.has("unit.rope.freqs")) {
    const hd = fx.f32("unit.rope.freqs").shape[1];
    report.compare("unit.rope.freqs", ropeFreqs(hd).data);
    const x = fx.f32("unit.rope.x"), coords = fx.f32("unit.rope.coords");
    const [bb, l] = x.shape;
    const { out } = await engine.evaluate("unit.rope", (o) => ({
      out: applyRope(
        o,
        o.input("x", { shape: [bb, 1, l, hd], data: x.data }),
        ropeAngles(o, o.input("coords", coords), o.constant(ropeFreqs(hd))),
        o.constant(rotateHalfMatrix(hd)),
      ),
    }));
    report.compare("unit.rope.out", out.data);
    report.compare("unit.rope.x", x.data, { note: "unit-case input, used as given" });
    report.compare("unit.rope.coords", coords.data, { note: "unit-case input, used as given" });
  }
  if (fx.has("unit.sk.input")) {
    const inp = fx.f32("unit.sk.input");
    const desc = fx.manifest.tensors.find((t) => t.name === "unit.sk.input")?.description ?? "";
    const iters = Number(/n_iterations=(\d+)/.exec(desc)?.[1] ?? nSkIter);
    const r = inp.shape.length;
    const { out } = await engine.evaluate("unit.sk", (o) => ({
      out: sinkhornKnopp(o, o.input("x", inp), iters, r - 2, r - 1),
    }));
    report.compare("unit.sk.output", out.data);
    report.compare("unit.sk.input", inp.data, { note: "unit-case input, used as given" });
  }
  for (const name of fx.names().filter((n) => n.startsWith("unit.edge_coords"))) {
    report.compare(name, edgeRegisterCoords(fx.f32(name).shape[0]));
  }
}

interface SchedKwargs {
  base_value: number;
  final_value: number;
  warmup_iters: number;
  start_warmup_value?: number;
  truncate_cos?: number;
}

function scheduleCases(fx: Fixture, report: ParityReport): void {
  const s = (fx.manifest as Record<string, unknown>).schedules as Record<string, unknown> | undefined;
  if (!s) return;
  const run = (kw: SchedKwargs, total: number, its: number[]) =>
    its.map((it) =>
      warmupThenCosine({
        baseValue: kw.base_value,
        finalValue: kw.final_value,
        totalIters: total,
        warmupIters: kw.warmup_iters,
        startWarmupValue: kw.start_warmup_value ?? 0,
        truncateCos: kw.truncate_cos ?? 1,
      }, it)
    );
  const def = s.default_kwargs as Record<string, SchedKwargs>;
  for (const [k, kw] of Object.entries(def)) {
    if (fx.has(`sched.default.${k}`)) {
      report.compare(`sched.default.${k}`, run(kw, s.total_iters as number, s.iterations as number[]));
    }
  }
  if (fx.has("sched.small")) {
    report.compare(
      "sched.small",
      run(s.small_kwargs as SchedKwargs, s.small_total_iters as number, s.small_iterations as number[]),
    );
  }
}
