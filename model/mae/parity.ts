/**
 * Parity runner for MAE fixtures (`mae_tiny` and any other `mim-fixture-v1` MAE fixture): the
 * method's own training step, run once by a `TrainEngine` on the fixture's weights, noise and
 * constant lr. Compares masking and targets (host draws), encoder latent, decoder prediction and
 * loss (`step` with trace), every gradient (`step` with grads), the post-step parameters after one
 * AdamW step with the timm weight-decay grouping (derived by rule and checked against the manifest's
 * `param_groups`, `snapshot`), and the sin-cos unit case. Run it with
 * `deno task parity model/testdata/mae_tiny.json`.
 *
 * @module
 */
import type { Fixture } from "../fixture.ts";
import { specFromFixture } from "../fixture_spec.ts";
import type { ParityReport } from "../parity.ts";
import { patchify } from "../nn/patch_embed.ts";
import type { EngineFactory } from "../train_engine.ts";
import { maeConfigFromFixture } from "./config.ts";
import { MaeMethod, maeParamGroups } from "./method.ts";
import { sincos2d } from "./sincos.ts";

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && new Set([...a, ...b]).size === a.length;
}

interface FixtureOptimizer {
  lr: number;
  weight_decay: number;
  betas: [number, number];
  eps: number;
  param_groups?: Record<string, string[]>;
}

export async function runMaeParity(fx: Fixture, report: ParityReport, createEngine: EngineFactory): Promise<void> {
  const cfg = fx.config;
  const o = cfg.optimizer as FixtureOptimizer;
  const config = maeConfigFromFixture(cfg, fx.path);
  // The fixture's AdamW betas and eps; the lr and decay are fed per step below.
  const method = new MaeMethod({ ...config, optim: { ...config.optim, betas: o.betas, eps: o.eps } }, {
    seed: 0,
    batchSize: 1,
  });
  const { lenKeep, nTokens } = method.dims;
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
  const { draws, masking: mk, target } = method.drawsFromNoise(images, fx.f32("input.noise"));
  report.compare("ids_keep", mk.idsKeep, { shape: [mk.batch, mk.lenKeep] });
  report.compare("ids_restore", mk.idsRestore, { shape: [mk.batch, mk.length] });
  report.compare("mask", mk.mask, { shape: [mk.batch, mk.length] });
  if (fx.has("target.patchified")) {
    const p = patchify(images, config.patchSize, "hwc");
    report.compare("target.patchified", p.data, { shape: p.shape });
  }
  if (fx.has("target.norm_pix")) {
    if (!config.normPixLoss) throw new Error(`${fx.path}: target.norm_pix present but norm_pix_loss is false`);
    report.compare("target.norm_pix", target.data, { shape: target.shape });
  }

  const spec = specFromFixture(method.stepSpec(), fx);
  // The timm grouping, derived by rule, checked against the manifest.
  const groups = maeParamGroups(spec.params);
  for (const key of ["decay", "no_decay"] as const) {
    if (o.param_groups && !sameSet(groups[key], o.param_groups[key] ?? [])) {
      throw new Error(
        `${fx.path}: weight-decay group '${key}' by rule is [${groups[key]}], manifest says [${o.param_groups[key]}]`,
      );
    }
  }
  const engine = await createEngine(spec);
  try {
    const res = await engine.step(draws, method.hyperAt(o.lr, o.weight_decay), { trace: true, grads: true });
    for (const [name, t] of res.traced ?? []) if (fx.has(name)) report.compare(name, t.data, { shape: t.shape });
    for (const [name, p] of spec.params) {
      if (!p.trainable) continue;
      const g = res.grads?.get(name);
      if (!g) throw new Error(`${fx.path}: no gradient reached '${name}'`);
      if (fx.has(`grad.${name}`)) report.compare(`grad.${name}`, g.data, { shape: g.shape });
    }
    res.dispose();
    const after = await engine.snapshot();
    for (const [name, p] of spec.params) {
      const ref = `step.${name}`;
      if (!p.trainable || !fx.has(ref)) continue;
      const v = after.params.get(name)!;
      if (name.endsWith("attn.qkv.bias")) {
        const d = v.shape[0] / 3;
        report.compare(ref, v.data, {
          shape: v.shape,
          keep: (i) => i < d || i >= 2 * d,
          note: "q and v thirds only: the manifest notes the key third's gradient is analytically zero (noise)",
        });
      } else {
        report.compare(ref, v.data, { shape: v.shape });
      }
    }
  } finally {
    engine.dispose();
  }
}
