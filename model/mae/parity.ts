/**
 * Parity runner for MAE fixtures (`mae_tiny` and any other `mim-fixture-v1` MAE fixture):
 * builds the model from the manifest's `config`, loads `param.*`, and compares masking,
 * targets, encoder latent, decoder prediction, loss, every gradient, one AdamW step (with
 * the timm weight-decay grouping derived by rule and checked against the manifest's
 * `param_groups`) and the sin-cos unit case. Run it with
 * `deno task parity model/testdata/mae_tiny.json`.
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { Fixture, HostTensor } from "../fixture.ts";
import type { ParityReport } from "../parity.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { AdamW } from "../adamw.ts";
import { patchify } from "../nn/patch_embed.ts";
import { maeConfigFromFixture } from "./config.ts";
import { initialParams, MaeModel } from "./mae.ts";
import { maeDecays, maeParamGroups, prepareMaeBatch } from "./method.ts";
import { sincos2d } from "./sincos.ts";

/** A model whose parameters are the fixture's `param.*`; names and shapes must match ours exactly. */
export function maeModelFromFixture(fx: Fixture): MaeModel {
  const config = maeConfigFromFixture(fx.config, fx.path);
  const ours = initialParams(config, Rng.from(0, "mae-parity"));
  const theirs = new Set(fx.withPrefix("param."));
  const missing = ours.map(([n]) => n).filter((n) => !theirs.has(n));
  const extra = [...theirs].filter((n) => !ours.some(([o]) => o === n));
  if (missing.length || extra.length) {
    throw new Error(`${fx.path}: parameter names differ from ours: missing [${missing}], unexpected [${extra}]`);
  }
  const store = new ParamStore();
  for (const [name, init, trainable] of ours) {
    const t = fx.f32(`param.${name}`);
    if (t.shape.join(",") !== init.shape.join(",")) {
      throw new Error(`${fx.path}: param.${name} has shape [${t.shape}], the config implies [${init.shape}]`);
    }
    store.add(name, t, trainable);
  }
  return new MaeModel(config, store);
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && new Set([...a, ...b]).size === a.length;
}

async function host(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

export async function runMaeParity(fx: Fixture, report: ParityReport): Promise<void> {
  const model = maeModelFromFixture(fx);
  try {
    const cfg = fx.config;
    const { lenKeep, nTokens } = model.dims;
    for (const [key, ours] of [["len_keep", lenKeep], ["num_patches", nTokens]] as const) {
      if (key in cfg && cfg[key] !== ours) throw new Error(`${fx.path}: config.${key} = ${cfg[key]}, ours ${ours}`);
    }
    // Sin-cos unit cases: `unit.sincos_<Gh>x<Gw>_dim<D>[_cls]`.
    for (const name of fx.names().filter((n) => n.startsWith("unit.sincos"))) {
      const m = /^unit\.sincos_(\d+)x(\d+)_dim(\d+)(_cls)?$/.exec(name);
      if (!m) {
        report.skip(name, "unrecognised sin-cos unit case name");
        continue;
      }
      const ours = sincos2d(Number(m[3]), [Number(m[1]), Number(m[2])], Boolean(m[4]));
      report.compare(name, ours.data, { shape: ours.shape });
    }

    const images = fx.f32("input.images");
    const batch = prepareMaeBatch(model, images, fx.f32("input.noise"));
    const mk = batch.masking;
    report.compare("ids_keep", mk.idsKeep, { shape: [mk.batch, mk.lenKeep] });
    report.compare("ids_restore", mk.idsRestore, { shape: [mk.batch, mk.length] });
    report.compare("mask", mk.mask, { shape: [mk.batch, mk.length] });
    if (fx.has("target.patchified")) {
      const p = patchify(images, model.config.patchSize, "hwc");
      report.compare("target.patchified", p.data, { shape: p.shape });
    }
    if (fx.has("target.norm_pix")) {
      if (!model.config.normPixLoss) throw new Error(`${fx.path}: target.norm_pix present but norm_pix_loss is false`);
      report.compare("target.norm_pix", batch.target.data, { shape: batch.target.shape });
    }

    const t = (h: HostTensor<Float32Array>) => tf.tensor(h.data, h.shape);
    const patches = t(batch.patches), target = t(batch.target);
    const fwd = model.forward(patches, target, mk);
    report.compare("enc.latent", await host(fwd.latent), { shape: fwd.latent.shape });
    report.compare("dec.pred", await host(fwd.pred), { shape: fwd.pred.shape });
    report.compare("loss", await host(fwd.loss), { shape: [] });
    tf.dispose([fwd.latent, fwd.pred, fwd.loss]);

    const trainable = model.params.trainable();
    const { value, grads } = tf.variableGrads(() => model.forward(patches, target, mk).loss, [...trainable.values()]);
    value.dispose();
    // variableGrads keys gradients by the variables' unique names; map back to official names.
    const byName = new Map<string, tf.Tensor>();
    for (const [name, v] of trainable) {
      const g = grads[v.name];
      if (!g) throw new Error(`${fx.path}: no gradient reached '${name}'`);
      byName.set(name, g);
      if (fx.has(`grad.${name}`)) report.compare(`grad.${name}`, await host(g), { shape: g.shape });
    }

    // One AdamW step with the timm grouping, derived by rule and checked against the manifest.
    const o = cfg.optimizer as {
      lr: number;
      weight_decay: number;
      betas: [number, number];
      eps: number;
      param_groups?: Record<string, string[]>;
    };
    const groups = maeParamGroups(model.params);
    if (o.param_groups) {
      for (const key of ["decay", "no_decay"] as const) {
        if (!sameSet(groups[key], o.param_groups[key] ?? [])) {
          throw new Error(
            `${fx.path}: weight-decay group '${key}' by rule is [${groups[key]}], manifest says [${
              o.param_groups[key]
            }]`,
          );
        }
      }
    }
    const opt = new AdamW({ betas: o.betas, eps: o.eps });
    opt.step(trainable, byName, (name) => ({
      lr: o.lr,
      weightDecay: maeDecays(name, trainable.get(name)!.shape) ? o.weight_decay : 0,
    }));
    for (const [name, v] of trainable) {
      const ref = `step.${name}`;
      if (!fx.has(ref)) continue;
      if (name.endsWith("attn.qkv.bias")) {
        const d = v.shape[0] / 3;
        report.compare(ref, await host(v), {
          shape: v.shape,
          keep: (i) => i < d || i >= 2 * d,
          note: "q and v thirds only: the manifest notes the key third's gradient is analytically zero (noise)",
        });
      } else {
        report.compare(ref, await host(v), { shape: v.shape });
      }
    }
    opt.dispose();
    tf.dispose([patches, target, ...byName.values()]);
  } finally {
    model.dispose();
  }
}
