/**
 * The per-method `TrajectoryAdapter`s (model/trajectory.ts): each method's own `TrainStepSpec` on a
 * `mim-trajectory-v1` fixture's initial parameters, and step t's `StepDraws` built by the method's own
 * draw code from the fixture's recorded draws (`input.*[t]`), so a replay runs exactly what the
 * trainer runs, with the reference's random numbers. Learning rates, weight decays and the EMA
 * momentum come from the fixture (`stepHyper`), not from the methods' schedules.
 *
 * @module
 */
import type { Fixture, HostTensor } from "./fixture.ts";
import { specFromFixture } from "./fixture_spec.ts";
import type { MethodName } from "./method.ts";
import type { Rng } from "./rng.ts";
import { stepInput, type TrajectoryAdapter } from "./trajectory.ts";
import { capiConfigFromFixture } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";
import { drawDropPath } from "./capi/model.ts";
import { maeConfigFromFixture } from "./mae/config.ts";
import { MaeMethod } from "./mae/method.ts";
import { type SimmimConfig, simmimConfigFromFixture } from "./simmim/config.ts";
import { SimmimMethod } from "./simmim/method.ts";

const images = (fx: Fixture, t: number) => stepInput(fx, "images", t) as HostTensor<Float32Array>;
const ints = (fx: Fixture, name: string, t: number) => Int32Array.from(stepInput(fx, name, t).data);

/**
 * The recorded `torch.randperm(B)` draws of one step as the `Rng` `drawDropPath` consumes: it asks
 * for one permutation per residual branch (encoder blocks, then decoder blocks; residual1, then
 * residual2), which is the order the fixture recorded them in (`input.drop_path_perms` `[T, branches, B]`).
 */
function recordedPermutations(fx: Fixture, t: number): { rng: Rng; used: () => number; total: number } {
  const perms = stepInput(fx, "drop_path_perms", t);
  const [branches, b] = perms.shape;
  let i = 0;
  const rng = {
    permutation(n: number): Int32Array {
      if (i >= branches) throw new Error(`${fx.path}: step ${t}: drop path asks for more than ${branches} draws`);
      if (n !== b) throw new Error(`${fx.path}: step ${t}: drop path draws randperm(${n}); the fixture's are of ${b}`);
      return Int32Array.from(perms.data.subarray(b * i, b * ++i));
    },
  };
  return { rng: rng as unknown as Rng, used: () => i, total: branches };
}

function capiAdapter(): TrajectoryAdapter {
  let method: CapiMethod | null = null;
  const of = (fx: Fixture) => (method ??= new CapiMethod(capiConfigFromFixture(fx.config), 0));
  return {
    spec: (fx) => specFromFixture(of(fx).stepSpec(), fx),
    draws(fx, t) {
      const m = of(fx);
      const draws = m.drawsWithMasks(images(fx, t), {
        masks: Uint8Array.from(stepInput(fx, "masks", t).data),
        visibleIndices: ints(fx, "visible_indices", t),
        predictIndices: ints(fx, "predict_indices", t),
      });
      if (m.config.dropPathRate <= 0) {
        if (fx.has("input.drop_path_perms")) {
          throw new Error(`${fx.path}: input.drop_path_perms given, but the config has no drop path`);
        }
        return draws;
      }
      if (!fx.has("input.drop_path_perms")) {
        throw new Error(`${fx.path}: drop_path_rate ${m.config.dropPathRate} but no input.drop_path_perms`);
      }
      const rec = recordedPermutations(fx, t);
      const drop = drawDropPath(rec.rng, m.config, images(fx, t).shape[0]);
      if (rec.used() !== rec.total) {
        throw new Error(`${fx.path}: step ${t}: drop path used ${rec.used()} of the ${rec.total} recorded draws`);
      }
      return { ...draws, ...drop };
    },
  };
}

function maeAdapter(): TrajectoryAdapter {
  let method: MaeMethod | null = null;
  const of = (fx: Fixture) => (method ??= new MaeMethod(maeConfigFromFixture(fx.config, fx.path), {
    seed: 0,
    batchSize: 1, // sets only the method's own lr schedule, which a replay does not use
  }));
  return {
    spec: (fx) => specFromFixture(of(fx).stepSpec(), fx),
    draws: (fx, t) => of(fx).drawsFromNoise(images(fx, t), stepInput(fx, "noise", t) as HostTensor<Float32Array>).draws,
  };
}

/** SimMIM's AdamW as the fixture's `config.optimizer` states it (`simmimConfigFromFixture` reads the model only). */
function simmimConfig(fx: Fixture): SimmimConfig {
  const c = simmimConfigFromFixture(fx.config, fx.path);
  const o = (fx.config.optimizer ?? {}) as { betas?: [number, number]; eps?: number; clip_grad?: number };
  if (!o.betas || o.eps === undefined || o.clip_grad === undefined) {
    throw new Error(`${fx.path}: config.optimizer needs betas, eps and clip_grad`);
  }
  return { ...c, optim: { ...c.optim, betas: o.betas, eps: o.eps, clipGrad: o.clip_grad } };
}

function simmimAdapter(): TrajectoryAdapter {
  let method: SimmimMethod | null = null;
  const of = (fx: Fixture) => (method ??= new SimmimMethod(simmimConfig(fx), {
    seed: 0,
    batchSize: 1, // sets only the method's own lr schedule, which a replay does not use
  }));
  return {
    spec(fx) {
      if (of(fx).config.dropPathRate > 0) throw new Error(`${fx.path}: SimMIM trajectories hold no drop-path draws`);
      return specFromFixture(of(fx).stepSpec(), fx);
    },
    draws: (fx, t) => of(fx).drawsWithMask(images(fx, t), ints(fx, "mask", t)),
  };
}

/** A fresh adapter for one fixture of `method` (adapters keep the method they build). */
export const TRAJECTORY_ADAPTERS: Record<MethodName, () => TrajectoryAdapter> = {
  capi: capiAdapter,
  mae: maeAdapter,
  simmim: simmimAdapter,
};

/** The adapter for the method a trajectory names, or an error naming the file and the methods. */
export function trajectoryAdapter(fx: Fixture): TrajectoryAdapter {
  const method = String(fx.manifest.method ?? "");
  const make = (TRAJECTORY_ADAPTERS as Record<string, () => TrajectoryAdapter>)[method];
  if (!make) {
    throw new Error(
      `${fx.path}: manifest method '${method}' has no trajectory adapter (${Object.keys(TRAJECTORY_ADAPTERS)})`,
    );
  }
  return make();
}
