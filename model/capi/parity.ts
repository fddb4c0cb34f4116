/**
 * Parity runner for `mim-fixture-v1` CAPI fixtures (`model/testdata/capi_tiny.json`):
 * one full training iteration of the official code, every tensor compared.
 *
 * Everything is read from the manifest's `config` (sizes, temperatures, optimizer), so
 * fixtures with other widths, depths, register counts or non-square images run unchanged.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { AdamW } from "../adamw.ts";
import type { Fixture, HostTensor } from "../fixture.ts";
import { patchify } from "../nn/patch_embed.ts";
import { ParamStore } from "../params.ts";
import type { ParityReport } from "../parity.ts";
import { warmupThenCosine } from "../schedules.ts";
import { capiConfigFromFixture, capiDims } from "./config.ts";
import { l2NormLinear, meanEntropy, onlineClustering, sinkhornKnopp, softCrossEntropy } from "./heads.ts";
import { collateMasks } from "./masking.ts";
import { CapiGeometry, evalForward, fullEncode, studentForward, type Trace } from "./model.ts";
import { applyRope, edgeRegisterCoords, ropeAngles, ropeFreqs, rotateHalfMatrix } from "./rope.ts";
import { emaUpdate, paramGroupMults } from "./optim.ts";

/** `[A, B, C]` -> `[B, A, C]` on the host. */
function swap01(t: HostTensor<Float32Array>): Float32Array {
  const [a, b, c] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) out.set(t.data.subarray((i * b + j) * c, (i * b + j + 1) * c), (j * a + i) * c);
  }
  return out;
}

async function host(t: tf.Tensor): Promise<HostTensor<Float32Array>> {
  return { shape: [...t.shape], data: (await t.data()) as Float32Array };
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

export async function runCapiParity(fx: Fixture, report: ParityReport): Promise<void> {
  const cfg = capiConfigFromFixture(fx.config);
  const dims = capiDims(cfg);
  checkParamGroups(fx, cfg.optim);
  const g = new CapiGeometry(cfg, dims);
  const store = new ParamStore();
  for (const n of fx.withPrefix("param.")) store.add(n, fx.f32(`param.${n}`), !n.startsWith("ema."));
  const get = (n: string) => store.get(n);
  const headBias = () => (store.has("teacher_head.layer.bias") ? store.get("teacher_head.layer.bias") : null);
  const images = fx.f32("input.images");
  const b = images.shape[0];
  const patches = tf.tensor(patchify(images, cfg.patchSize, "chw").data, [b, dims.nTokens, 3 * cfg.patchSize ** 2]);
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
  const traced = new Map<string, tf.Tensor>();
  const trace: Trace = (name, t) => traced.set(name, tf.keep(t));
  const cmp = async (name: string, t: tf.Tensor | HostTensor<Float32Array>, note?: string) => {
    const data = t instanceof tf.Tensor ? await t.data() : t.data;
    report.compare(name, data as Float32Array, { note });
  };

  // Forward pass with intermediates (no gradient tape).
  tf.tidy(() => {
    const t = fullEncode(get, "ema.backbone.", patches, g, { trace, tracePrefix: "teacher." });
    trace("teacher.enc_norm_out", t.out);
    trace("teacher.coords_enc", t.coords);
    const feats = tf.slice(t.out, [0, cfg.nRegisters, 0], [b, dims.nTokens, cfg.embedDim]);
    const cl = onlineClustering(feats, get("teacher_head.layer.weight"), headBias(), cfg);
    trace("teacher.head.logits", cl.logits);
    trace("teacher.head.assignments", cl.assignments);
    trace("loss.clustering", cl.loss);
    const targets = tf.gather(
      tf.reshape(cl.assignments, [-1, cfg.numClusters]),
      tf.tensor1d(m.predictIndices, "int32"),
    );
    trace("teacher.targets", targets);
    const pred = studentForward(get, "student.backbone.", patches, m, g, { trace });
    const logits = l2NormLinear(pred, get("student.head.last_layer.weight_v"), get("student.head.last_layer.weight_g"));
    trace("student.head.logits", logits);
    trace("loss.capi", softCrossEntropy(targets, logits, cfg.studentTemp));
    trace("metric.target_entropy", meanEntropy(targets));
    const ev = evalForward(get, "student.backbone.", patches, g);
    trace("eval.feature_map", ev.featureMap);
    trace("eval.registers", ev.registers);
    trace("eval.global_repr", ev.global);
  });
  const transposedToNB = new Set(["teacher.head.logits", "teacher.head.assignments"]);
  for (const [name, t] of traced) {
    const ref = name.replace(/\.patch_embed$/, ".patch_embed_conv");
    if (!fx.has(ref)) continue;
    if (ref.endsWith("patch_embed_conv")) {
      // [B, N, D] -> [B, D, N]: the Conv2d output layout.
      const h = await host(t);
      const [bb, n, d] = h.shape;
      const out = new Float32Array(h.data.length);
      for (let s = 0; s < bb; s++) {
        out.set(swap01({ shape: [n, d, 1], data: h.data.subarray(s * n * d, (s + 1) * n * d) }), s * n * d);
      }
      report.compare(ref, out);
    } else if (transposedToNB.has(ref)) report.compare(ref, swap01(await host(t)));
    else await cmp(ref, t);
  }
  const coordsAll = new Float32Array(b * dims.nTokens * 2);
  for (let s = 0; s < b; s++) coordsAll.set(g.all, s * dims.nTokens * 2);
  for (const k of ["teacher.coords_all", "student.coords_all"]) if (fx.has(k)) report.compare(k, coordsAll);

  // Gradients of loss.capi (student) and loss.clustering (teacher head), summed: disjoint parameters.
  const varList = [...store.trainable().values()];
  const names = new Map(varList.map((v, i) => [v.name, [...store.trainable().keys()][i]]));
  const { value: lossSum, grads } = tf.variableGrads(() => {
    const t = fullEncode(get, "ema.backbone.", patches, g);
    const feats = tf.slice(t.out, [0, cfg.nRegisters, 0], [b, dims.nTokens, cfg.embedDim]);
    const cl = onlineClustering(feats, get("teacher_head.layer.weight"), headBias(), cfg);
    const targets = tf.gather(
      tf.reshape(cl.assignments, [-1, cfg.numClusters]),
      tf.tensor1d(m.predictIndices, "int32"),
    );
    const pred = studentForward(get, "student.backbone.", patches, m, g);
    const logits = l2NormLinear(pred, get("student.head.last_layer.weight_v"), get("student.head.last_layer.weight_g"));
    return tf.add(softCrossEntropy(targets, logits, cfg.studentTemp), cl.loss) as tf.Scalar;
  }, varList);
  const byName = new Map<string, tf.Tensor>();
  for (const [vn, gt] of Object.entries(grads)) byName.set(names.get(vn)!, gt);
  for (const [n, gt] of byName) if (fx.has(`grad.${n}`)) await cmp(`grad.${n}`, gt);

  // One student AdamW step, the EMA, then the teacher head's AdamW step.
  const o = cfg.optim;
  const student = new Map([...store.trainable()].filter(([n]) => n.startsWith("student.")));
  const opt = new AdamW({ betas: o.betas, eps: o.eps });
  opt.step(student, byName, (n) => {
    const mult = paramGroupMults(n.slice("student.".length), o);
    return { lr: o.lr * mult.lrMult, weightDecay: o.weightDecay * mult.wdMult };
  });
  const momentum = Number(fx.config.ema_momentum);
  emaUpdate([...student].map(([n, v]) => [store.get(`ema.${n.slice("student.".length)}`), v]), momentum);
  const head = new Map([...store.trainable()].filter(([n]) => n.startsWith("teacher_head.")));
  const hopt = new AdamW({ betas: o.clusteringBetas, eps: o.clusteringEps });
  hopt.step(head, byName, () => ({ lr: o.clusteringLr, weightDecay: o.clusteringWeightDecay }));
  for (const n of store.names()) if (fx.has(`step.${n}`)) await cmp(`step.${n}`, store.get(n));

  await unitCases(fx, report, cfg.nSkIter);
  scheduleCases(fx, report);
  for (const t of [...traced.values(), ...byName.values(), patches, lossSum]) t.dispose();
  opt.dispose();
  hopt.dispose();
  store.dispose();
  g.dispose();
}

async function unitCases(fx: Fixture, report: ParityReport, nSkIter: number): Promise<void> {
  if (fx.has("unit.rope.freqs")) {
    const hd = fx.f32("unit.rope.freqs").shape[1];
    report.compare("unit.rope.freqs", ropeFreqs(hd).data);
    const x = fx.f32("unit.rope.x"), coords = fx.f32("unit.rope.coords");
    const out = tf.tidy(() => {
      const [bb, l] = x.shape;
      const freqs = tf.tensor(ropeFreqs(hd).data, [2, hd]);
      const rot = rotateHalfMatrix(hd);
      return applyRope(tf.tensor(x.data, [bb, 1, l, hd]), ropeAngles(tf.tensor(coords.data, coords.shape), freqs), rot);
    });
    report.compare("unit.rope.out", (await out.data()) as Float32Array);
    report.compare("unit.rope.x", x.data, { note: "unit-case input, used as given" });
    report.compare("unit.rope.coords", coords.data, { note: "unit-case input, used as given" });
    out.dispose();
  }
  if (fx.has("unit.sk.input")) {
    const inp = fx.f32("unit.sk.input");
    const desc = fx.manifest.tensors.find((t) => t.name === "unit.sk.input")?.description ?? "";
    const iters = Number(/n_iterations=(\d+)/.exec(desc)?.[1] ?? nSkIter);
    const r = inp.shape.length;
    const out = tf.tidy(() => sinkhornKnopp(tf.tensor(inp.data, inp.shape), iters, r - 2, r - 1));
    report.compare("unit.sk.output", (await out.data()) as Float32Array);
    report.compare("unit.sk.input", inp.data, { note: "unit-case input, used as given" });
    out.dispose();
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
