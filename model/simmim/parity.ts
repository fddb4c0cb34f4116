/**
 * Parity runner for SimMIM fixtures (`simmim_tiny` and any other `mim-fixture-v1` SimMIM
 * fixture): builds the method from the manifest's `config`, checks our relative position
 * index against the fixture's buffer and our coarse mask (from the stored permutation)
 * against the stored mask, then runs the method's own training step once on a `TrainEngine`
 * and compares the gathered relative position bias, encoder output `enc.z`, reconstruction
 * `dec.x_rec` and loss (`step` with trace) and every gradient (`step` with grads). Run it with
 * `deno task parity model/testdata/simmim_tiny.json`.
 *
 * @module
 */
import type { Fixture } from "../fixture.ts";
import { specFromFixture } from "../fixture_spec.ts";
import type { ParityReport } from "../parity.ts";
import { unpatchify } from "../nn/patch_embed.ts";
import type { EngineFactory } from "../train_engine.ts";
import { simmimConfigFromFixture } from "./config.ts";
import { maskFromPermutation } from "./mask_generator.ts";
import { simmimIterLr, SimmimMethod } from "./method.ts";
import { relativePositionIndex } from "./rel_pos_bias.ts";

const INDEX_BUFFER = "encoder.rel_pos_bias.relative_position_index";

export async function runSimmimParity(fx: Fixture, report: ParityReport, createEngine: EngineFactory): Promise<void> {
  const config = simmimConfigFromFixture(fx.config, fx.path);
  const method = new SimmimMethod(config, { seed: 0, batchSize: 1 });
  const { gridH, gridW, nTokens, randH, randW, maskCount } = method.dims;
  const cfg = fx.config;
  for (const [key, ours] of [["token_count", randH * randW], ["mask_count", maskCount]] as const) {
    if (key in cfg && cfg[key] !== ours) throw new Error(`${fx.path}: config.${key} = ${cfg[key]}, ours ${ours}`);
  }
  if (fx.has(`param.${INDEX_BUFFER}`)) {
    const ref = fx.i32(`param.${INDEX_BUFFER}`).data;
    const idx = relativePositionIndex(gridH, gridW);
    const bad = ref.findIndex((v, i) => v !== idx[i]);
    if (ref.length !== idx.length || bad >= 0) {
      throw new Error(
        `${fx.path}: our relative_position_index differs from param.${INDEX_BUFFER} at flat index ${bad}`,
      );
    }
  }
  const images = fx.f32("input.images");
  const b = images.shape[0];
  const given = fx.i32("input.mask").data; // [B, Gh, Gw]
  if (fx.has("input.mask_permutation")) {
    const perm = fx.i32("input.mask_permutation");
    const cells = perm.shape[1];
    for (let s = 0; s < b; s++) {
      const m = maskFromPermutation(perm.data.subarray(s * cells, (s + 1) * cells), method.dims);
      const bad = m.findIndex((v, i) => v !== given[s * nTokens + i]);
      if (bad >= 0) {
        throw new Error(
          `${fx.path}: sample ${s}: our mask from input.mask_permutation differs from input.mask at token ${bad}`,
        );
      }
    }
  }
  const draws = method.drawsWithMask(images, Int32Array.from(given));
  const spec = specFromFixture(method.stepSpec(), fx, [INDEX_BUFFER]);
  const engine = await createEngine(spec);
  try {
    // No optimizer in the fixture: the step runs with the schedule's first lr; only pre-step tensors are compared.
    const res = await engine.step(draws, method.hyperAt(simmimIterLr(config, b, 0)), { trace: true, grads: true });
    const t = res.traced!;
    const d = config.embedDim;
    const bias = t.get("rel_pos_bias")!;
    report.compare("rel_pos_bias", bias.data, { shape: bias.shape });
    const z = t.get("enc.z")!; // [B, N, D] -> [B, D, Gh, Gw]
    const zt = new Float32Array(z.data.length);
    for (let s = 0; s < b; s++) {
      for (let n = 0; n < nTokens; n++) {
        for (let c = 0; c < d; c++) zt[(s * d + c) * nTokens + n] = z.data[(s * nTokens + n) * d + c];
      }
    }
    report.compare("enc.z", zt, { shape: [b, d, gridH, gridW] });
    const xRec = unpatchify(t.get("dec.x_rec")!, config.encoderStride, [gridH, gridW], "chw"); // PixelShuffle, on the host
    report.compare("dec.x_rec", xRec.data, { shape: xRec.shape });
    const loss = t.get("loss")!;
    report.compare("loss", loss.data, { shape: [] });
    for (const [name, p] of spec.params) {
      const g = res.grads?.get(name);
      if (!p.trainable) continue;
      if (!g) throw new Error(`${fx.path}: no gradient reached '${name}'`);
      if (fx.has(`grad.${name}`)) report.compare(`grad.${name}`, g.data, { shape: g.shape });
    }
    res.dispose();
  } finally {
    engine.dispose();
  }
}
