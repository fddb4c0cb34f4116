/**
 * Parity runner for SimMIM fixtures (`simmim_tiny` and any other `mim-fixture-v1` SimMIM
 * fixture): builds the model from the manifest's `config`, checks our relative position
 * index against the fixture's buffer and our coarse mask (from the stored permutation)
 * against the stored mask, then compares the gathered relative position bias, encoder
 * output `enc.z`, reconstruction `dec.x_rec`, loss and every gradient. Run it with
 * `deno task parity model/testdata/simmim_tiny.json`.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { Fixture } from "../fixture.ts";
import type { ParityReport } from "../parity.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { unpatchify } from "../nn/patch_embed.ts";
import { simmimConfigFromFixture } from "./config.ts";
import { initialParams, SimmimModel } from "./simmim.ts";
import { maskFromPermutation } from "./mask_generator.ts";
import { prepareSimmimBatch } from "./method.ts";

const INDEX_BUFFER = "encoder.rel_pos_bias.relative_position_index";

/** A model whose parameters are the fixture's `param.*`; names and shapes must match ours exactly. */
export function simmimModelFromFixture(fx: Fixture): SimmimModel {
  const config = simmimConfigFromFixture(fx.config, fx.path);
  const ours = initialParams(config, Rng.from(0, "simmim-parity"));
  const theirs = new Set(fx.withPrefix("param.").filter((n) => n !== INDEX_BUFFER));
  const missing = ours.map(([n]) => n).filter((n) => !theirs.has(n));
  const extra = [...theirs].filter((n) => !ours.some(([o]) => o === n));
  if (missing.length || extra.length) {
    throw new Error(`${fx.path}: parameter names differ from ours: missing [${missing}], unexpected [${extra}]`);
  }
  const store = new ParamStore();
  for (const [name, init] of ours) {
    const t = fx.f32(`param.${name}`);
    if (t.shape.join(",") !== init.shape.join(",")) {
      throw new Error(`${fx.path}: param.${name} has shape [${t.shape}], the config implies [${init.shape}]`);
    }
    store.add(name, t);
  }
  const model = new SimmimModel(config, store);
  if (fx.has(`param.${INDEX_BUFFER}`)) {
    const ref = fx.i32(`param.${INDEX_BUFFER}`).data;
    const idx = model.relPosIndex.dataSync();
    const bad = ref.findIndex((v, i) => v !== idx[i]);
    if (ref.length !== idx.length || bad >= 0) {
      model.dispose();
      throw new Error(
        `${fx.path}: our relative_position_index differs from param.${INDEX_BUFFER} at flat index ${bad}`,
      );
    }
  }
  return model;
}

async function host(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

export async function runSimmimParity(fx: Fixture, report: ParityReport): Promise<void> {
  const model = simmimModelFromFixture(fx);
  try {
    const { gridH, gridW, nTokens, randH, randW, maskCount } = model.dims;
    const cfg = fx.config;
    for (const [key, ours] of [["token_count", randH * randW], ["mask_count", maskCount]] as const) {
      if (key in cfg && cfg[key] !== ours) throw new Error(`${fx.path}: config.${key} = ${cfg[key]}, ours ${ours}`);
    }
    const images = fx.f32("input.images");
    const b = images.shape[0];
    const given = fx.i32("input.mask").data; // [B, Gh, Gw]
    const mask = new Int32Array(b * nTokens);
    if (fx.has("input.mask_permutation")) {
      const perm = fx.i32("input.mask_permutation");
      const cells = perm.shape[1];
      for (let s = 0; s < b; s++) {
        const m = maskFromPermutation(perm.data.subarray(s * cells, (s + 1) * cells), model.dims);
        const bad = m.findIndex((v, i) => v !== given[s * nTokens + i]);
        if (bad >= 0) {
          throw new Error(
            `${fx.path}: sample ${s}: our mask from input.mask_permutation differs from input.mask at token ${bad}`,
          );
        }
      }
    }
    mask.set(given);

    const batch = prepareSimmimBatch(model, images, mask);
    const patches = tf.tensor(batch.patches.data, batch.patches.shape);
    const bias = model.relPosBias();
    report.compare("rel_pos_bias", await host(bias), { shape: bias.shape });
    bias.dispose();

    const fwd = model.forward(patches, mask);
    const d = model.config.embedDim;
    const z = tf.tidy(() => tf.transpose(tf.reshape(fwd.z, [b, gridH, gridW, d]), [0, 3, 1, 2])); // [B, D, Gh, Gw]
    report.compare("enc.z", await host(z), { shape: z.shape });
    const rec = { shape: fwd.rec.shape, data: await host(fwd.rec) };
    const xRec = unpatchify(rec, model.config.encoderStride, [gridH, gridW], "chw"); // PixelShuffle, on the host
    report.compare("dec.x_rec", xRec.data, { shape: xRec.shape });
    report.compare("loss", await host(fwd.loss), { shape: [] });
    tf.dispose([z, fwd.z, fwd.rec, fwd.loss]);

    const trainable = model.params.trainable();
    const { value, grads } = tf.variableGrads(() => model.forward(patches, mask).loss, [...trainable.values()]);
    value.dispose();
    for (const [name, v] of trainable) {
      const g = grads[v.name];
      if (!g) throw new Error(`${fx.path}: no gradient reached '${name}'`);
      if (fx.has(`grad.${name}`)) report.compare(`grad.${name}`, await host(g), { shape: g.shape });
    }
    tf.dispose([patches, ...Object.values(grads)]);
  } finally {
    model.dispose();
  }
}
