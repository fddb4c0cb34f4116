/**
 * CAPI: parity with the official code on every tensor of `capi_tiny` (1e-4 relative),
 * config and presets, schedules, and the encoder contract.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { loadFixture } from "../fixture.ts";
import { initialValues } from "../method.ts";
import { fromTf, TfOps, toTf } from "../ops/tf_ops.ts";
import { ParityReport } from "../parity.ts";
import { createTfTrainEngine, tfEncoder, TfTrainEngine } from "../tf_train_engine.ts";
import { CAPI_PRESETS, capiConfig, capiConfigFromFixture, capiDims, type CapiPreset } from "./config.ts";
import { CapiMethod } from "./method.ts";
import { capiParamGroups, capiSchedules } from "./optim.ts";
import { runCapiParity } from "./parity.ts";
import { drawDropPath, dropPathKeep, residual } from "./model.ts";
import { Rng } from "../rng.ts";

const FIXTURE = new URL("../testdata/capi_tiny.json", import.meta.url).pathname;
await initBackend("cpu");

Deno.test("capi_tiny parity: every reference tensor within 1e-4, nothing skipped", async () => {
  const fx = await loadFixture(FIXTURE);
  const report = new ParityReport(fx);
  const before = tf.memory().numTensors;
  await runCapiParity(fx, report, createTfTrainEngine);
  assert.equal(tf.memory().numTensors, before, "parity runner leaks tensors");
  const bad = report.rows().filter((r) => r.status !== "pass");
  assert.deepEqual(bad, []);
  assert.ok(report.summary().passed);
  assert.ok(report.summary().compared >= 170);
});

Deno.test("fixture config: derived sizes match the manifest", async () => {
  const fx = await loadFixture(FIXTURE);
  const d = capiDims(capiConfigFromFixture(fx.config));
  assert.equal(d.nTokens, fx.config.n_tokens);
  assert.equal(d.nMasked, fx.config.n_masked_per_image);
  assert.equal(d.nVisible, fx.config.n_visible_per_image);
  assert.equal(d.nPredict, fx.config.n_predict_per_image);
});

Deno.test("presets resolve; ViT-L/14 defaults give the official 166 / 90 / 8 split", () => {
  for (const p of Object.keys(CAPI_PRESETS) as CapiPreset[]) capiDims(capiConfig(p));
  const l = capiDims(capiConfig("vit_l"));
  assert.deepEqual([l.nTokens, l.nMasked, l.nVisible, l.nPredict], [256, 166, 90, 8]);
  assert.throws(() => capiDims(capiConfig("tiny", { nRegisters: 6 })), /multiple of 4/);
  assert.throws(() => capiConfig("tiny", { bogus: 1 } as never), /bogus/);
});

Deno.test("schedules: momentum starts at exactly 1, lr at 0, truncated cosine never reaches 0", () => {
  const o = capiConfig("vit_l").optim;
  assert.equal(capiSchedules(o, 0).momentum, 1);
  assert.equal(capiSchedules(o, 0).lr, 0);
  assert.ok(Math.abs(capiSchedules(o, 49_999).lr - 1e-3) < 1e-15);
  const end = capiSchedules(o, 499_999).lr;
  assert.ok(Math.abs(end - 1e-3 * 0.5 * (1 + Math.cos(0.8 * Math.PI * 449_999 / 450_000))) < 1e-12);
});

Deno.test("CapiMethod encoder: shapes, non-square images, no leaks", async () => {
  const cfg = capiConfig("tiny", {
    imageSize: [16, 24],
    embedDim: 32,
    numHeads: 2,
    encoderDepth: 1,
    decoderDepth: 1,
    numClusters: 8,
  });
  const m = new CapiMethod(cfg, 1);
  const enc = tfEncoder(m, initialValues(m.stepSpec()));
  const images = { shape: [2, 3, 16, 24], data: new Float32Array(2 * 3 * 16 * 24).map((_, i) => Math.sin(i)) };
  const before = tf.memory().numTensors;
  const f = await enc.encode(images);
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(f.patches.shape, [2, 4, 6, 32]);
  assert.deepEqual(f.global?.shape, [2, 32]);
  assert.deepEqual(f.registers?.shape, [2, 4, 32]);
  assert.equal(enc.info.arch, "vit_d32_patch4_16x24.capi");
  await assert.rejects(
    () => enc.encode({ shape: [1, 3, 16, 16], data: new Float32Array(768) }),
    /expected \[B, 3, 16, 24\]/,
  );
  enc.dispose();
});

Deno.test("efficient stochastic depth: kept samples get x + (B/n_keep) f(x), the others x, by fixed-shape gathers", () => {
  const b = 10, rate = 0.3, nKeep = dropPathKeep(b, rate);
  assert.equal(nKeep, 7);
  const keep = Int32Array.from(Rng.from(9, "dp").permutation(b).slice(0, nKeep)).sort();
  const inv = Int32Array.from([...keep, ...[...Array(b).keys()].filter((s) => !keep.includes(s))]); // order of rows
  const invPerm = new Int32Array(b);
  inv.forEach((s, k) => (invPerm[s] = k)); // sample -> row of concat([branch, zeros])
  const o = new TfOps();
  const x = tf.tensor3d(Float32Array.from({ length: b * 2 * 3 }, (_, i) => i * 0.5 - 7), [b, 2, 3]);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() =>
    toTf(residual(o, fromTf(x), (xs) => o.add(o.mul(xs, 2), 1), {
      keep: o.input("keep", { shape: [nKeep], data: keep }),
      inv: o.input("inv", { shape: [b], data: invPerm }),
    }))
  );
  assert.equal(tf.memory().numTensors, before + 1);
  // Gradient through both gathers: 1 + (B/n_keep) * 2 for kept samples, 1 for dropped ones.
  const gx = tf.grad((t: tf.Tensor) =>
    tf.sum(toTf(residual(o, fromTf(t), (xs) => o.mul(xs, 2), {
      keep: o.input("keep", { shape: [nKeep], data: keep }),
      inv: o.input("inv", { shape: [b], data: invPerm }),
    })))
  )(x);
  gx.dataSync().forEach((v, i) => {
    const want = keep.includes(Math.floor(i / 6)) ? 1 + (b / nKeep) * 2 : 1;
    assert.ok(Math.abs(v - want) < 1e-6, `grad[${i}] ${v} vs ${want}`);
  });
  gx.dispose();
  const xv = x.dataSync(), ov = out.dataSync();
  for (let s = 0; s < b; s++) {
    for (let j = 0; j < 6; j++) {
      const v = xv[s * 6 + j];
      const want: number = keep.includes(s) ? v + (b / nKeep) * (2 * v + 1) : v;
      assert.ok(Math.abs(ov[s * 6 + j] - want) < 1e-5, `sample ${s}: ${ov[s * 6 + j]} vs ${want}`);
    }
  }
  tf.dispose([x, out]);
});

Deno.test("drawDropPath: one sorted randperm(B)[:n_keep] per residual in execution order, and its inverse permutation", () => {
  const c = capiConfig("tiny", { encoderDepth: 2, decoderDepth: 1, dropPathRate: 0.25 });
  const b = 8, nKeep = dropPathKeep(b, 0.25);
  const d = drawDropPath(Rng.from(4, "dp"), c, b);
  const names = Object.keys(d);
  assert.equal(names.length, 2 * 2 * (2 + 1));
  assert.deepEqual(names.slice(0, 4), [
    "drop_path.encoder.0.residual1.keep",
    "drop_path.encoder.0.residual1.inv",
    "drop_path.encoder.0.residual2.keep",
    "drop_path.encoder.0.residual2.inv",
  ]);
  const rng = Rng.from(4, "dp"); // the same stream, permutation by permutation
  for (const stack of ["encoder.0", "encoder.1", "decoder.0"]) {
    for (const r of [1, 2]) {
      const keep = d[`drop_path.${stack}.residual${r}.keep`].data, inv = d[`drop_path.${stack}.residual${r}.inv`].data;
      assert.deepEqual([...keep], [...rng.permutation(b).slice(0, nKeep)].sort((p, q) => p - q));
      const dropped = [...Array(b).keys()].filter((s) => keep.indexOf(s) < 0);
      for (let s = 0; s < b; s++) {
        assert.equal(inv[s], keep.indexOf(s) >= 0 ? keep.indexOf(s) : nKeep + dropped.indexOf(s));
      }
    }
  }
  assert.deepEqual(drawDropPath(Rng.from(4), capiConfig("tiny", { dropPathRate: 0 }), b), {});
  assert.deepEqual(drawDropPath(Rng.from(4), capiConfig("tiny", { dropPathRate: 0.05 }), 1), {}, "every sample kept");
});

Deno.test("CapiMethod step spec has exactly the official parameter names and shapes, groups and EMA pairs", async () => {
  const fx = await loadFixture(FIXTURE);
  const cfg = capiConfigFromFixture(fx.config);
  const spec = new CapiMethod(cfg, 0).stepSpec();
  const ours = new Map([...spec.params].map(([n, p]) => [n, p.value.shape.join("x")]));
  const ref = new Map(fx.withPrefix("param.").map((n) => [n, fx.tensor(`param.${n}`).shape.join("x")]));
  assert.deepEqual([...ours].sort(), [...ref].sort());
  // Initialisation facts (SPEC 1.7): RoPE freqs deterministic, norms and g at 1, EMA = student.
  const freqs = spec.params.get("student.backbone.encoder.blocks.0.residual1.fn.rope.freqs")!.value.data;
  const refFreqs = fx.f32("unit.rope.freqs").data;
  freqs.forEach((v, i) => assert.ok(Math.abs(v - refFreqs[i]) <= 1e-6 * Math.abs(refFreqs[i]), `freqs[${i}]`));
  const v = (n: string) => spec.params.get(n)!.value.data;
  assert.deepEqual(
    v("ema.backbone.decoder.blocks.0.residual2.fn.fc1.weight"),
    v("student.backbone.decoder.blocks.0.residual2.fn.fc1.weight"),
  );
  assert.ok(v("student.head.last_layer.weight_g").every((x) => x === 1));
  // rope.freqs (lr x0) are not trained by default; with zeroLrGrads they are, at lr 0, as the official code does.
  const rope = "student.backbone.encoder.blocks.0.residual1.fn.rope.freqs";
  assert.equal(spec.params.get(rope)!.trainable, false);
  assert.equal(new CapiMethod(cfg, 0, { zeroLrGrads: true }).stepSpec().params.get(rope)!.trainable, true);
  const groups = capiParamGroups([
    "backbone.patch_embed.bias",
    "backbone.registers",
    "backbone.encoder.blocks.0.residual1.norm.weight",
  ], cfg.optim);
  assert.deepEqual(groups.map((g) => [g.id, g.params.length]), [["lr0.2_wd0", 1], ["lr1_wd1", 1], ["lr1_wd0.1", 1]]);
  assert.deepEqual(spec.optimizers.map((o) => o.id), ["student", "clustering"]);
  assert.ok(spec.ema!.pairs.every(([e, s]) => e === s.replace(/^student\./, "ema.")));
  const h = new CapiMethod(cfg, 0).hyperAt(1e-3, 5e-4, 0.9);
  assert.equal(h.groups.student["lr0.2_wd0"].lr, 2e-4);
  assert.equal(h.groups.student["lr0.2_wd0"].weightDecay, 0);
  assert.deepEqual(h.groups.clustering.head, { lr: 5e-4, weightDecay: cfg.optim.clusteringWeightDecay });
  assert.equal(h.emaMomentum, 0.9);
});

Deno.test("non-square images, 16 registers, 4 heads, global Sinkhorn, no clustering bias, drop path: one training step", async () => {
  const cfg = capiConfig("tiny", {
    imageSize: [24, 40],
    patchSize: 8,
    embedDim: 32,
    numHeads: 4,
    encoderDepth: 1,
    decoderDepth: 2,
    nRegisters: 16,
    numClusters: 12,
    maskRatio: 0.5,
    predictionSubsampling: 0.5,
    positionwiseSk: false,
    clusteringBias: false,
    dropPathRate: 0.3,
  });
  const m = new CapiMethod(cfg, 2);
  const spec = m.stepSpec();
  assert.ok(!spec.params.has("teacher_head.layer.bias"));
  assert.deepEqual([m.dims.gridH, m.dims.gridW, m.dims.nMasked, m.dims.nPredict], [3, 5, 7, 3]);
  const images = { shape: [3, 3, 24, 40], data: Rng.from(5).fillNormal(new Float32Array(3 * 3 * 24 * 40)) };
  const draws = m.draw(images, Rng.from(6));
  assert.ok("drop_path.decoder.1.residual2.inv" in draws, "drop-path draws for every residual");
  const engine = new TfTrainEngine(spec);
  (await engine.step(draws, m.hyper(2))).dispose(); // creates the AdamW moments
  const before = tf.memory().numTensors;
  const res = await engine.step(draws, m.hyper(3), { trace: true, grads: true });
  // Sinkhorn ends with the prototype-axis normalisation: every token's assignment sums to ~1.
  const a = res.traced!.get("teacher.head.assignments")!;
  for (let r = 0; r < a.data.length / 12; r++) {
    const sum = a.data.subarray(r * 12, (r + 1) * 12).reduce((p, q) => p + q, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `row sum ${sum}`);
  }
  const vals = await res.read();
  assert.ok(Number.isFinite(vals.loss) && Math.abs(vals.loss - vals.loss_capi - vals.loss_clustering) < 1e-5);
  const trainable = [...spec.params].filter(([, p]) => p.trainable).map(([n]) => n);
  assert.deepEqual([...res.grads!.keys()].sort(), trainable.sort());
  res.dispose();
  assert.equal(tf.memory().numTensors, before, "step leaked tensors");
  engine.dispose();
});
