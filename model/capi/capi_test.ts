/**
 * CAPI: parity with the official code on every tensor of `capi_tiny` (1e-4 relative),
 * config and presets, schedules, and the encoder contract.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { loadFixture } from "../fixture.ts";
import { ParityReport } from "../parity.ts";
import { CAPI_PRESETS, capiConfig, capiConfigFromFixture, capiDims, type CapiPreset } from "./config.ts";
import { CapiMethod } from "./method.ts";
import { capiSchedules } from "./optim.ts";
import { runCapiParity } from "./parity.ts";
import { residual, spreadRows, takeRows } from "./model.ts";
import { Rng } from "../rng.ts";
import { collateMasks } from "./masking.ts";
import { leanVariableGrads } from "../kernels/lean_grads.ts";

const FIXTURE = new URL("../testdata/capi_tiny.json", import.meta.url).pathname;
await initBackend("cpu");

Deno.test("capi_tiny parity: every reference tensor within 1e-4, nothing skipped", async () => {
  const fx = await loadFixture(FIXTURE);
  const report = new ParityReport(fx);
  const before = tf.memory().numTensors;
  await runCapiParity(fx, report);
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
  const enc = m.encoder();
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
  m.dispose();
});

Deno.test("efficient stochastic depth: kept samples get x + (B/n_keep) f(x), the others x; rows helpers exact", () => {
  const b = 10, rate = 0.3, nKeep = Math.max(Math.floor(b * (1 - rate)), 1);
  const x = tf.tensor3d(Float32Array.from({ length: b * 2 * 3 }, (_, i) => i * 0.5 - 7), [b, 2, 3]);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => residual(x, (xs) => tf.add(tf.mul(xs, 2), 1), { rate, rng: Rng.from(9, "dp") }));
  assert.equal(tf.memory().numTensors, before + 1);
  const keep = new Set(Rng.from(9, "dp").permutation(b).slice(0, nKeep));
  const xv = x.dataSync(), ov = out.dataSync();
  for (let s = 0; s < b; s++) {
    for (let j = 0; j < 6; j++) {
      const v = xv[s * 6 + j];
      const want = keep.has(s) ? v + (b / nKeep) * (2 * v + 1) : v;
      assert.ok(Math.abs(ov[s * 6 + j] - want) < 1e-5, `sample ${s}: ${ov[s * 6 + j]} vs ${want}`);
    }
  }
  const idx = Int32Array.from([0, 1, 4, 5, 6, 9]);
  const taken = tf.tidy(() => spreadRows(takeRows(x, idx), idx, b));
  const tv = taken.dataSync();
  for (let s = 0; s < b; s++) {
    for (let j = 0; j < 6; j++) assert.equal(tv[s * 6 + j], idx.includes(s) ? xv[s * 6 + j] : 0);
  }
  tf.dispose([x, out, taken]);
});

Deno.test("CapiMethod built from the fixture config has exactly the official parameter names and shapes", async () => {
  const fx = await loadFixture(FIXTURE);
  const m = new CapiMethod(capiConfigFromFixture(fx.config), 0);
  const ours = new Map(m.params.names().map((n) => [n, m.params.get(n).shape.join("x")]));
  const ref = new Map(fx.withPrefix("param.").map((n) => [n, fx.tensor(`param.${n}`).shape.join("x")]));
  assert.deepEqual([...ours].sort(), [...ref].sort());
  // Initialisation facts (SPEC 1.7): RoPE freqs deterministic, norms and g at 1, EMA = student.
  const freqs = await m.params.get("student.backbone.encoder.blocks.0.residual1.fn.rope.freqs").data();
  const refFreqs = fx.f32("unit.rope.freqs").data;
  freqs.forEach((v, i) => assert.ok(Math.abs(v - refFreqs[i]) <= 1e-6 * Math.abs(refFreqs[i]), `freqs[${i}]`));
  assert.deepEqual(
    await m.params.get("ema.backbone.decoder.blocks.0.residual2.fn.fc1.weight").data(),
    await m.params.get("student.backbone.decoder.blocks.0.residual2.fn.fc1.weight").data(),
  );
  assert.ok((await m.params.get("student.head.last_layer.weight_g").data()).every((v) => v === 1));
  m.dispose();
});

Deno.test("the training path (prepare + loss + gradients) reproduces the fixture's losses and gradients", async () => {
  const fx = await loadFixture(FIXTURE);
  const m = new CapiMethod(capiConfigFromFixture(fx.config), 0);
  m.params.assign(new Map(fx.withPrefix("param.").map((n) => [n, fx.f32(`param.${n}`)])));
  const d = m.dims, images = fx.f32("input.images"), b = images.shape[0];
  const masks = collateMasks(
    Uint8Array.from(fx.i32("input.masks").data),
    b,
    d.nTokens,
    d.nPredict,
    fx.f32("input.collate_rand").data,
  );
  const before = tf.memory().numTensors;
  const batch = m.prepareWithMasks(images, masks);
  const names = m.optimizers.flatMap((o) => o.params);
  const vars = names.map((n) => m.params.get(n));
  let metrics: Record<string, tf.Scalar> = {};
  const { value, grads } = leanVariableGrads(() => {
    const out = m.loss(batch, Rng.from(0));
    metrics = Object.fromEntries(Object.entries(out.metrics).map(([k, t]) => [k, tf.keep(t)]));
    return out.loss;
  }, vars);
  const close = (ours: ArrayLike<number>, ref: ArrayLike<number>, what: string) => {
    assert.equal(ours.length, ref.length, what);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(
        Math.abs(ours[i] - ref[i]) <= 1e-4 * Math.max(1, Math.abs(ref[i])),
        `${what}[${i}]: ${ours[i]} vs ${ref[i]}`,
      );
    }
  };
  close(metrics.loss_capi.dataSync(), fx.f32("loss.capi").data, "loss.capi");
  close(metrics.loss_clustering.dataSync(), fx.f32("loss.clustering").data, "loss.clustering");
  close(metrics.target_entropy.dataSync(), fx.f32("metric.target_entropy").data, "target_entropy");
  names.forEach((n, i) => close(grads[vars[i].name].dataSync(), fx.f32(`grad.${n}`).data, `grad.${n}`));
  tf.dispose([value, ...Object.values(grads), ...Object.values(metrics)]);
  batch.dispose();
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});

Deno.test("non-square images, 16 registers, 4 heads, global Sinkhorn, no clustering bias: one training step", () => {
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
  assert.ok(!m.params.has("teacher_head.layer.bias"));
  assert.deepEqual([m.dims.gridH, m.dims.gridW, m.dims.nMasked, m.dims.nPredict], [3, 5, 7, 3]);
  const images = { shape: [3, 3, 24, 40], data: Rng.from(5).fillNormal(new Float32Array(3 * 3 * 24 * 40)) };
  const before = tf.memory().numTensors;
  const batch = m.prepare(images, Rng.from(6));
  // Sinkhorn ends with the prototype-axis normalisation: every token's assignment sums to ~1.
  const rowSums = batch.assignments.sum(-1);
  const rows = rowSums.dataSync();
  rowSums.dispose();
  rows.forEach((v) => assert.ok(Math.abs(v - 1) < 1e-4, `row sum ${v}`));
  const vars = m.optimizers.flatMap((o) => o.params.map((n) => m.params.get(n)));
  const { value, grads } = leanVariableGrads(() => m.loss(batch, Rng.from(7)).loss, vars);
  assert.ok(Number.isFinite(value.dataSync()[0]));
  assert.equal(Object.keys(grads).length, vars.length);
  tf.dispose([value, ...Object.values(grads)]);
  batch.dispose();
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
