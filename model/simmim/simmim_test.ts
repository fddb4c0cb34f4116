/**
 * SimMIM tests: relative position index and coarse mask by hand and against the fixture,
 * fixture parity (also at a stricter per-tensor scale), the trunc-normal init with the
 * per-layer rescale, the optimizer's exclusions and lagged schedule, tensor leaks and
 * encoder shapes. ~5 s on 2 cores (wasm).
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { fixtureFromTensors, type HostTensor, loadFixture } from "../fixture.ts";
import { ParityReport } from "../parity.ts";
import { Rng } from "../rng.ts";
import { simmimConfig, simmimConfigFromFixture, simmimDims, simmimScheduleIters } from "./config.ts";
import { relativePositionIndex } from "./rel_pos_bias.ts";
import { maskFromPermutation, sampleSimmimMasks } from "./mask_generator.ts";
import { initialParams } from "./simmim.ts";
import { simmimIterLr, SimmimMethod } from "./method.ts";
import { runSimmimParity } from "./parity.ts";
import { simmimLr } from "../schedules.ts";
import { initialValues } from "../method.ts";
import { createTfTrainEngine, tfEncoder, TfTrainEngine } from "../tf_train_engine.ts";

await initBackend("wasm");
const FIXTURE = new URL("../testdata/simmim_tiny.json", import.meta.url).pathname;

/** Also records `max|ours - ref| / max|ref|` per tensor (small gradients hide under max(1, |ref|)). */
class StrictReport extends ParityReport {
  readonly scaled = new Map<string, number>();
  override compare(name: string, ours: ArrayLike<number>, opts: Parameters<ParityReport["compare"]>[2] = {}) {
    const ref = this.fixture.tensor(name).data;
    let err = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs(ours[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    if (scale > 0) this.scaled.set(name, err / scale);
    return super.compare(name, ours, opts);
  }
}

Deno.test("relativePositionIndex: 1x2 grid by hand, and the fixture's buffer", async () => {
  // Gh=1, Gw=2: T = 1*3 + 3 = 6; patch a=(0,j1) on b=(0,j2) reads j1 - j2 + 1.
  assert.deepEqual([...relativePositionIndex(1, 2)], [5, 3, 3, 4, 1, 0, 4, 2, 1]);
  const fx = await loadFixture(FIXTURE);
  const d = simmimDims(simmimConfigFromFixture(fx.config));
  assert.deepEqual([...relativePositionIndex(d.gridH, d.gridW)], [
    ...fx.i32("param.encoder.rel_pos_bias.relative_position_index").data,
  ]);
});

Deno.test("maskFromPermutation: first ceil(n*ratio) cells, each expanded scale x scale", async () => {
  const d = simmimDims(simmimConfig("tiny", { imageSize: 16, patchSize: 4, encoderStride: 4, maskPatchSize: 8 }));
  assert.equal(d.maskCount, 3); // ceil(4 * 0.6)
  assert.deepEqual([...maskFromPermutation([3, 0, 2, 1], d)], [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  const fx = await loadFixture(FIXTURE);
  const fd = simmimDims(simmimConfigFromFixture(fx.config));
  const perm = fx.i32("input.mask_permutation"), mask = fx.i32("input.mask").data;
  for (let s = 0; s < perm.shape[0]; s++) {
    const cells = perm.shape[1];
    const ours = maskFromPermutation(perm.data.subarray(s * cells, (s + 1) * cells), fd);
    assert.deepEqual([...ours], [...mask.subarray(s * fd.nTokens, (s + 1) * fd.nTokens)], `sample ${s}`);
  }
  const drawn = sampleSimmimMasks(Rng.from(1), 3, fd);
  for (let s = 0; s < 3; s++) {
    const n = drawn.subarray(s * fd.nTokens, (s + 1) * fd.nTokens).reduce((a, v) => a + v, 0);
    assert.equal(n, fd.maskCount * fd.scale ** 2);
  }
});

Deno.test("simmim_tiny fixture: parity passes, also at 1e-4 of each tensor's largest value", async () => {
  const report = new StrictReport(await loadFixture(FIXTURE));
  await runSimmimParity(report.fixture, report, createTfTrainEngine);
  assert.ok(report.summary().passed, JSON.stringify(report.rows().filter((r) => r.status !== "pass")));
  for (const [name, e] of report.scaled) assert.ok(e < 1e-4, `${name}: scaled error ${e}`);
});

Deno.test("initialParams: trunc-normal at +-std, proj/fc2 of block l divided by sqrt(2l), LayerScale init", () => {
  const c = simmimConfig("tiny", { depth: 3 });
  const p = new Map(initialParams(c, Rng.from(2)));
  const maxAbs = (n: string) => p.get(n)!.data.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  for (
    const n of [
      "encoder.cls_token",
      "encoder.mask_token",
      "encoder.patch_embed.proj.weight",
      "encoder.blocks.0.attn.qkv.weight",
    ]
  ) {
    assert.ok(maxAbs(n) <= 0.02 + 1e-9 && maxAbs(n) > 0.015, `${n}: max |v| ${maxAbs(n)}`);
  }
  for (const l of [1, 2, 3]) {
    for (const n of ["attn.proj.weight", "mlp.fc2.weight"]) {
      const m = maxAbs(`encoder.blocks.${l - 1}.${n}`);
      const bound = 0.02 / Math.sqrt(2 * l);
      assert.ok(m <= bound + 1e-9 && m > 0.75 * bound, `block ${l} ${n}: ${m} vs ${bound}`);
    }
  }
  assert.ok(p.get("encoder.blocks.2.gamma_1")!.data.every((v) => Math.abs(v - 0.1) < 1e-7));
  assert.equal(maxAbs("encoder.rel_pos_bias.relative_position_bias_table"), 0);
  assert.equal(maxAbs("encoder.blocks.0.attn.q_bias"), 0);
  assert.ok(maxAbs("decoder.0.weight") <= 1 / Math.sqrt(c.embedDim));
});

Deno.test("SimmimMethod: exclusions, lagged warmup + multistep lr, clip 5, no leak, gradients everywhere", async () => {
  const c = simmimConfig("tiny", { depth: 2, embedDim: 32, numHeads: 2 });
  const m = new SimmimMethod(c, { seed: 3, batchSize: 1024 });
  const spec = m.stepSpec();
  const opt = spec.optimizers[0];
  assert.equal(opt.clipGradNorm, 5);
  const groupOf = (n: string) => opt.groups.find((g) => g.params.includes(n))!.id;
  const wd = (n: string) => m.hyper(3).groups.main[groupOf(n)].weightDecay;
  assert.equal(wd("encoder.cls_token"), 0);
  assert.equal(wd("encoder.blocks.0.gamma_1"), 0);
  assert.equal(wd("encoder.blocks.0.attn.q_bias"), 0);
  assert.equal(wd("encoder.mask_token"), 0.05);
  assert.equal(wd("encoder.rel_pos_bias.relative_position_bias_table"), 0.05);
  assert.equal(wd("decoder.0.weight"), 0.05);
  const o = c.optim;
  const { warmupSteps, milestones } = simmimScheduleIters(o);
  assert.deepEqual([warmupSteps, milestones], [25, [1750]]); // tiny: 2000 iterations
  const sched = { baseLr: o.baseLr * 2, warmupLr: o.warmupLr * 2, warmupSteps, milestones, gamma: o.gamma }; // x 1024/512
  assert.equal(simmimIterLr(c, 1024, 0), o.warmupLr * 2);
  assert.equal(simmimIterLr(c, 1024, 1), o.warmupLr * 2); // lagged by one iteration
  assert.equal(simmimIterLr(c, 1024, 7), simmimLr(sched, 6));
  assert.ok(Math.abs(simmimIterLr(c, 1024, milestones[0] + 1) - o.baseLr * 2 * 0.1) < 1e-12);
  assert.equal(m.hyper(7).groups.main.decay.lr, simmimLr(sched, 6));

  const b = 2;
  const images = { shape: [b, 3, 32, 32], data: Rng.from(4).fillNormal(new Float32Array(b * 3 * 32 * 32)) };
  const draws = m.draw(images, Rng.from(5));
  assert.deepEqual(Object.keys(draws), [
    "patches",
    "mask",
    "drop_path.0.attn",
    "drop_path.0.mlp",
    "drop_path.1.attn",
    "drop_path.1.mlp",
  ]);
  const engine = new TfTrainEngine(spec);
  (await engine.step(draws, m.hyper(1))).dispose(); // creates the AdamW moments
  const before = tf.memory().numTensors;
  const res = await engine.step(m.draw(images, Rng.from(6)), m.hyper(2), { grads: true });
  const loss = (await res.read()).loss;
  assert.ok(Number.isFinite(loss) && loss > 0);
  for (const [n, p] of spec.params) if (p.trainable) assert.ok(res.grads!.get(n), `no gradient for ${n}`);
  res.dispose();
  assert.equal(tf.memory().numTensors, before);
  engine.dispose();
});

Deno.test("SimMIM encoder: non-square patches [B, Gh, Gw, D], no global token, no leak", async () => {
  const c = simmimConfig("tiny", { imageSize: [16, 32], depth: 1, embedDim: 32, numHeads: 2 });
  const m = new SimmimMethod(c, { seed: 1, batchSize: 8 });
  const enc = tfEncoder(m, initialValues(m.stepSpec()));
  try {
    const before = tf.memory().numTensors;
    const f = await enc.encode({ shape: [2, 3, 16, 32], data: new Float32Array(2 * 3 * 16 * 32).fill(0.25) });
    assert.deepEqual(f.patches.shape, [2, 4, 8, 32]);
    assert.equal(f.global, null);
    assert.equal(tf.memory().numTensors, before);
  } finally {
    enc.dispose();
  }
});

Deno.test("SimmimMethod.drawsWithMask: a mask with the wrong number of masked tokens is refused, naming the image", () => {
  const m = new SimmimMethod(simmimConfig("tiny", { depth: 1, embedDim: 32, numHeads: 2 }), { seed: 1, batchSize: 8 });
  const images = { shape: [2, 3, 32, 32], data: new Float32Array(2 * 3 * 32 * 32) };
  const mask = sampleSimmimMasks(Rng.from(2), 2, m.dims);
  mask[64 + mask.subarray(64).indexOf(1)] = 0;
  assert.throws(() => m.drawsWithMask(images, mask), {
    message: `SimMIM: mask of image 1 has ${m.dims.maskCount * m.dims.scale ** 2 - 1} masked tokens; the config masks ${
      m.dims.maskCount * m.dims.scale ** 2
    }`,
  });
});

Deno.test("simmimDims: a stride other than the patch size is refused with the reason", () => {
  assert.throws(() => simmimDims(simmimConfig("tiny", { encoderStride: 8 })), {
    message:
      "SimmimConfig.encoderStride 8 must equal patchSize 4: the PixelShuffle output must have the input's size for the L1 loss (simmim.py ViT variant)",
  });
});

const syntheticFixture = (config: Record<string, unknown>, tensors: [string, HostTensor][]) =>
  fixtureFromTensors("synthetic_simmim.json", config, tensors);

Deno.test("runSimmimParity: a non-square [H, W] fixture is read from its config and every tensor is compared at its shape", async () => {
  const config = {
    encoder: {
      img_size: [16, 32],
      patch_size: 4,
      in_chans: 3,
      embed_dim: 16,
      depth: 1,
      num_heads: 2,
      mlp_ratio: 4,
      qkv_bias: true,
      init_values: 0.1,
      use_abs_pos_emb: false,
      use_rel_pos_bias: false,
      use_shared_rel_pos_bias: true,
      use_mean_pooling: false,
      norm_layer: "LayerNorm(eps=1e-6)",
      drop_path_rate: 0,
    },
    encoder_stride: 4,
    mask_generator: { input_size: [16, 32], mask_patch_size: 8, model_patch_size: 4, mask_ratio: 0.6 },
    token_count: 8,
    mask_count: 5,
  };
  const dims = simmimDims(simmimConfigFromFixture(config));
  const params = initialParams(simmimConfigFromFixture(config), Rng.from(9));
  const f = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const perms = [Rng.from(3).permutation(8), Rng.from(4).permutation(8)];
  const mask = new Int32Array(2 * 32);
  perms.forEach((p, s) => mask.set(maskFromPermutation(p, dims), s * 32));
  const tensors: [string, HostTensor][] = [
    ["input.images", { shape: [2, 3, 16, 32], data: Rng.from(1).fillNormal(new Float32Array(2 * 3 * 16 * 32)) }],
    ["input.mask", { shape: [2, 4, 8], data: mask }],
    ["input.mask_permutation", { shape: [2, 8], data: Int32Array.from([...perms[0], ...perms[1]]) }],
    ...params.map(([n, t]): [string, HostTensor] => [`param.${n}`, t]),
    ["param.encoder.rel_pos_bias.relative_position_index", { shape: [33, 33], data: relativePositionIndex(4, 8) }],
    ["rel_pos_bias", f([2, 33, 33])],
    ["enc.z", f([2, 16, 4, 8])],
    ["dec.x_rec", f([2, 3, 16, 32])],
    ["loss", f([])],
    ...params.map(([n, t]): [string, HostTensor] => [`grad.${n}`, f(t.shape)]),
  ];
  const report = new ParityReport(syntheticFixture(config, tensors));
  await runSimmimParity(report.fixture, report, createTfTrainEngine);
  assert.deepEqual(report.rows().filter((r) => r.status === "skip" || r.err === undefined), []);
  assert.equal(report.rows().length, 4 + params.length);
});
