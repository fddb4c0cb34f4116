/**
 * MAE tests: known answers for sin-cos and masking, fixture parity (also at a stricter
 * per-tensor scale), the timm weight-decay grouping, the lr schedule, tensor leaks,
 * encoder shapes and non-square images. ~5 s on 2 cores (wasm).
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { fixtureFromTensors, type HostTensor, loadFixture } from "../fixture.ts";
import { ParityReport } from "../parity.ts";
import { Rng } from "../rng.ts";
import { maeConfig, maeConfigFromFixture, maeWarmupIters } from "./config.ts";
import { sincos2d } from "./sincos.ts";
import { maskingFromNoise } from "./masking.ts";
import { initialParams } from "./mae.ts";
import { MaeMethod, maeParamGroups } from "./method.ts";
import { runMaeParity } from "./parity.ts";
import { initialValues } from "../method.ts";
import { createTfTrainEngine, tfEncoder, TfTrainEngine } from "../tf_train_engine.ts";

await initBackend("wasm");
const FIXTURE = new URL("../testdata/mae_tiny.json", import.meta.url).pathname;

/** A report that also records `max|ours - ref| / max|ref|` per tensor (small gradients hide under max(1, |ref|)). */
class StrictReport extends ParityReport {
  readonly scaled = new Map<string, number>();
  override compare(name: string, ours: ArrayLike<number>, opts: Parameters<ParityReport["compare"]>[2] = {}) {
    const ref = this.fixture.tensor(name).data;
    let err = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) {
      if (opts.keep && !opts.keep(i)) continue;
      err = Math.max(err, Math.abs(ours[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    if (scale > 0) this.scaled.set(name, err / scale);
    return super.compare(name, ours, opts);
  }
}

Deno.test("sincos2d: first half encodes the column, second the row; cls row is zero", () => {
  const e = sincos2d(8, [2, 3], true); // D/4 = 2 frequencies: 1 and 10000^-0.5
  assert.deepEqual(e.shape, [7, 8]);
  assert.deepEqual([...e.data.subarray(0, 8)], new Array(8).fill(0));
  const row = (i: number, j: number) => [...e.data.subarray((1 + i * 3 + j) * 8, (2 + i * 3 + j) * 8)];
  const w1 = 0.01;
  const expect = (
    i: number,
    j: number,
  ) => [
    Math.sin(j),
    Math.sin(j * w1),
    Math.cos(j),
    Math.cos(j * w1),
    Math.sin(i),
    Math.sin(i * w1),
    Math.cos(i),
    Math.cos(i * w1),
  ];
  for (const [i, j] of [[0, 0], [1, 2], [0, 1]]) {
    row(i, j).forEach((v, k) => assert.ok(Math.abs(v - expect(i, j)[k]) < 1e-7, `(${i},${j})[${k}]`));
  }
});

Deno.test("maskingFromNoise: argsort bookkeeping by hand", () => {
  const m = maskingFromNoise({ shape: [1, 4], data: new Float32Array([0.5, 0.1, 0.9, 0.3]) }, 2);
  assert.deepEqual([...m.idsShuffle], [1, 3, 0, 2]);
  assert.deepEqual([...m.idsRestore], [2, 0, 3, 1]);
  assert.deepEqual([...m.idsKeep], [1, 3]);
  assert.deepEqual([...m.mask], [1, 0, 1, 0]);
});

Deno.test("initialParams: fixed sin-cos embeddings equal the fixture's, names match the official state dict", async () => {
  const fx = await loadFixture(FIXTURE);
  const params = initialParams(maeConfigFromFixture(fx.config), Rng.from(1));
  for (const name of ["pos_embed", "decoder_pos_embed"]) {
    const ours = params.find(([n]) => n === name)!;
    assert.equal(ours[2], false, `${name} must be frozen`);
    const ref = fx.f32(`param.${name}`);
    assert.deepEqual(ours[1].shape, ref.shape);
    ours[1].data.forEach((v, i) => assert.ok(Math.abs(v - ref.data[i]) < 1e-6, `${name}[${i}]`));
  }
  assert.deepEqual(params.map(([n]) => n).sort(), fx.withPrefix("param.").sort());
});

Deno.test("mae_tiny fixture: parity passes, also at 1e-4 of each tensor's largest value", async () => {
  const report = new StrictReport(await loadFixture(FIXTURE));
  await runMaeParity(report.fixture, report, createTfTrainEngine);
  const s = report.summary();
  assert.ok(s.passed, JSON.stringify(report.rows().filter((r) => r.status !== "pass")));
  for (const [name, e] of report.scaled) assert.ok(e < 1e-4, `${name}: scaled error ${e}`);
});

Deno.test("MaeMethod: timm grouping, lr schedule, no leak, encoder shapes", async () => {
  const config = maeConfig("tiny", {
    depth: 1,
    decoderDepth: 1,
    embedDim: 32,
    numHeads: 2,
    decoderEmbedDim: 16,
    decoderNumHeads: 2,
  });
  const m = new MaeMethod(config, { seed: 3, batchSize: 512 });
  const spec = m.stepSpec();
  const g = maeParamGroups(spec.params);
  assert.ok(g.decay.includes("cls_token") && g.decay.includes("mask_token"));
  assert.ok(g.no_decay.includes("patch_embed.proj.bias") && g.no_decay.includes("norm.weight"));
  assert.ok(![...g.decay, ...g.no_decay].some((n) => n.includes("pos_embed")), "frozen pos embeds are not optimised");
  assert.deepEqual(spec.optimizers[0].groups.map((x) => [x.id, x.params]), [["decay", g.decay], [
    "no_decay",
    g.no_decay,
  ]]);
  const peak = config.optim.blr * 512 / 256; // lr = blr * batch / 256
  const lr = (it: number) => m.hyper(it).groups.main.decay.lr;
  assert.equal(lr(0), 0);
  assert.ok(Math.abs(lr(maeWarmupIters(config.optim)) - peak) < 1e-12);
  assert.ok(Math.abs(lr(config.optim.totalIters)) < 1e-12);
  assert.equal(m.hyper(5).groups.main.decay.weightDecay, 0.05);
  assert.equal(m.hyper(5).groups.main.no_decay.weightDecay, 0);
  assert.equal(m.hyper(5).groups.main.no_decay.lr, lr(5));

  const b = 2;
  const images = { shape: [b, 3, 32, 32], data: Rng.from(4).fillNormal(new Float32Array(b * 3 * 32 * 32)) };
  const engine = new TfTrainEngine(spec);
  (await engine.step(m.draw(images, Rng.from(5)), m.hyper(1))).dispose(); // creates the AdamW moments
  const before = tf.memory().numTensors;
  const res = await engine.step(m.draw(images, Rng.from(6)), m.hyper(2), { grads: true });
  assert.ok(Number.isFinite((await res.read()).loss));
  for (const n of [...g.decay, ...g.no_decay]) assert.ok(res.grads!.get(n), `no gradient for ${n}`);
  res.dispose();
  assert.equal(tf.memory().numTensors, before);
  engine.dispose();
});

Deno.test("MAE encoder: non-square images give [B, Gh, Gw, D] patches and a [B, D] cls token", async () => {
  const config = maeConfig("tiny", { imageSize: [16, 24], depth: 1, decoderDepth: 1, embedDim: 32, numHeads: 2 });
  const m = new MaeMethod(config, { seed: 1, batchSize: 8 });
  const enc = tfEncoder(m, initialValues(m.stepSpec()));
  try {
    const before = tf.memory().numTensors;
    const f = await enc.encode({ shape: [2, 3, 16, 24], data: new Float32Array(2 * 3 * 16 * 24).fill(0.5) });
    assert.deepEqual(f.patches.shape, [2, 4, 6, 32]);
    assert.deepEqual(f.global?.shape, [2, 32]);
    assert.equal(f.registers, null);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(enc.info.arch, "vit_d32_patch4_16x24.mae");
    await assert.rejects(
      () => enc.encode({ shape: [1, 3, 16, 16], data: new Float32Array(3 * 256) }),
      { message: "vit_d32_patch4_16x24.mae: images [1,3,16,16], expected [B, 3, 16, 24]" },
    );
  } finally {
    enc.dispose();
  }
});

const syntheticFixture = (config: Record<string, unknown>, tensors: [string, HostTensor][]) =>
  fixtureFromTensors("synthetic_mae.json", config, tensors);

Deno.test("runMaeParity: a non-square [H, W] fixture is read from its config and every tensor is compared at its shape", async () => {
  const config = {
    img_size: [16, 24],
    patch_size: 4,
    in_chans: 3,
    embed_dim: 16,
    depth: 1,
    num_heads: 2,
    decoder_embed_dim: 8,
    decoder_depth: 1,
    decoder_num_heads: 2,
    mlp_ratio: 4,
    norm_layer: "LayerNorm(eps=1e-6)",
    norm_pix_loss: true,
    mask_ratio: 0.5,
    len_keep: 12,
    num_patches: 24,
    optimizer: { lr: 1e-3, weight_decay: 0.05, betas: [0.9, 0.95], eps: 1e-8 },
  };
  const params = initialParams(maeConfigFromFixture(config), Rng.from(9));
  const f = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  const i = (shape: number[]) => ({ shape, data: new Int32Array(shape.reduce((a, b) => a * b, 1)) });
  const tensors: [string, HostTensor][] = [
    ["input.images", { shape: [2, 3, 16, 24], data: Rng.from(1).fillNormal(new Float32Array(2 * 3 * 16 * 24)) }],
    ["input.noise", { shape: [2, 24], data: Rng.from(2).fillUniform(new Float32Array(48)) }],
    ...params.map(([n, t]): [string, HostTensor] => [`param.${n}`, t]),
    ["unit.sincos_4x6_dim16_cls", f([25, 16])],
    ["ids_keep", i([2, 12])],
    ["ids_restore", i([2, 24])],
    ["mask", f([2, 24])],
    ["target.patchified", f([2, 24, 48])],
    ["target.norm_pix", f([2, 24, 48])],
    ["enc.latent", f([2, 13, 16])],
    ["dec.pred", f([2, 24, 48])],
    ["loss", f([])],
    ...params.filter(([, , tr]) => tr).flatMap((
      [n, t],
    ): [string, HostTensor][] => [[`grad.${n}`, f(t.shape)], [`step.${n}`, f(t.shape)]]),
  ];
  const report = new ParityReport(syntheticFixture(config, tensors));
  await runMaeParity(report.fixture, report, createTfTrainEngine);
  const bad = report.rows().filter((r) => r.status === "skip" || r.err === undefined);
  assert.deepEqual(bad, [], "every reference tensor is compared, at the reference's shape");
  assert.equal(report.rows().length, tensors.length - 2 - params.length);
});

Deno.test("initialParams: xavier-uniform Linears (patch embed on its [D, C*p*p] view), N(0, 0.02) tokens, zero biases", () => {
  const c = maeConfig("tiny");
  const p = new Map(initialParams(c, Rng.from(5)).map(([n, t]) => [n, t.data]));
  const maxAbs = (n: string) => p.get(n)!.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  const within = (n: string, bound: number) =>
    assert.ok(maxAbs(n) <= bound && maxAbs(n) > 0.95 * bound, `${n}: max |v| ${maxAbs(n)} vs bound ${bound}`);
  const d = c.embedDim, pp3 = 3 * c.patchSize ** 2;
  within("patch_embed.proj.weight", Math.sqrt(6 / (d + pp3)));
  within("patch_embed.proj.bias", 1 / Math.sqrt(pp3)); // Conv2d default bias is kept
  within("blocks.0.attn.qkv.weight", Math.sqrt(6 / (d + 3 * d)));
  within("decoder_pred.weight", Math.sqrt(6 / (c.decoderEmbedDim + pp3)));
  for (const n of ["blocks.0.attn.qkv.bias", "blocks.3.mlp.fc2.bias", "decoder_embed.bias", "norm.bias"]) {
    assert.equal(maxAbs(n), 0, n);
  }
  assert.ok(p.get("decoder_norm.weight")!.every((v) => v === 1));
  const cls = p.get("cls_token")!;
  const std = Math.sqrt(cls.reduce((a, v) => a + v * v, 0) / cls.length);
  assert.ok(std > 0.016 && std < 0.024, `cls_token std ${std}`);
});
