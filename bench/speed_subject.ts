/**
 * What `deno task speed --method M` trains: the step spec both engines run, the images, the per-step
 * draws, the hyper-parameters, and what the PyTorch twin (bench/speed_torch.py) needs to build the same
 * thing: the resolved config as JSON and the schedule values as scalars.
 *
 * - `vit`: the reference ViT of issue 8 (model/ops/vit_step_spec.ts) on a fixed N(0, 1) batch, Adam at lr 1e-4;
 * - `capi`, `mae`, `simmim`: the method's `tiny` preset on the synthetic images of `deno task pretrain`,
 *   a fresh draw (masks, indices, drop path) every step from the seeded streams `speed/<it>`, and the
 *   hyper-parameters of iteration 200 of the tiny schedules (`SPEED_HYPER_IT`) at every step.
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";
import { capiConfig, type CapiConfigInput } from "../model/capi/config.ts";
import { CapiMethod } from "../model/capi/method.ts";
import { capiSchedules } from "../model/capi/optim.ts";
import { maeConfig, type MaeConfigInput } from "../model/mae/config.ts";
import { MaeMethod } from "../model/mae/method.ts";
import { METHOD_NAMES, type MimMethod } from "../model/method.ts";
import {
  REFERENCE_VIT,
  VIT_HYPER,
  type VitConfig,
  vitDraws,
  vitImages,
  vitStepSpec,
} from "../model/ops/vit_step_spec.ts";
import { Rng } from "../model/rng.ts";
import { simmimConfig, type SimmimConfigInput } from "../model/simmim/config.ts";
import { SimmimMethod } from "../model/simmim/method.ts";
import type { StepDraws, StepHyper, TrainStepSpec } from "../model/train_step.ts";
import { syntheticBatch } from "./pretrain.ts";

/** `vit`: the reference ViT (issue 8); the others: the method's `tiny` preset. */
export const SPEED_METHODS = ["vit", ...METHOD_NAMES] as const;
export type SpeedMethod = typeof SPEED_METHODS[number];

/**
 * The iteration whose schedule values every timed step uses: the end of CAPI's tiny warmup (200 of 2000:
 * peak lr, EMA momentum 0.99), past MAE's and SimMIM's. Iteration 0 would not do for the twin check: CAPI's lr
 * starts at 0 and its EMA momentum at 1, so a second step would not see the first one's update.
 */
export const SPEED_HYPER_IT = 200;

export interface SpeedSubject {
  method: SpeedMethod;
  /** For the log, e.g. `capi tiny preset` or the ViT's config. */
  label: string;
  spec: TrainStepSpec;
  /** The batch `[B, 3, H, W]` every step draws from. */
  images: HostTensor<Float32Array>;
  /** Draws of iteration `it` (0-based). */
  draw(it: number): StepDraws;
  hyper: StepHyper;
  /** What bench/speed_torch.py builds its twin from: the resolved config and the same schedule values. */
  torch: { config: unknown; hyper: Record<string, number> };
}

function methodSubject(
  method: SpeedMethod,
  m: MimMethod & { config: unknown },
  images: HostTensor<Float32Array>,
  torchHyper: Record<string, number>,
  overrides: Record<string, unknown>,
): SpeedSubject {
  return {
    method,
    label: `${method} tiny preset${Object.keys(overrides).length ? ` with ${JSON.stringify(overrides)}` : ""}`,
    spec: m.stepSpec(),
    images,
    draw: (it) => m.draw(images, Rng.from(0, "speed", it)),
    hyper: m.hyper(SPEED_HYPER_IT),
    torch: { config: m.config, hyper: torchHyper },
  };
}

/** Smaller models of the same code, for tests: the ViT's config, or overrides of a method's tiny preset. */
export interface SubjectOptions {
  vit?: VitConfig;
  /** Validated by the method's zod schema (unknown keys are errors). */
  overrides?: Record<string, unknown>;
}

/** The subject of `--method`, at `batch` images per step. */
export function speedSubject(method: SpeedMethod, batch: number, opts: SubjectOptions = {}): SpeedSubject {
  const it = SPEED_HYPER_IT, vit = opts.vit ?? REFERENCE_VIT, overrides = opts.overrides ?? {};
  switch (method) {
    case "vit": {
      const images = vitImages(vit, batch);
      const draws = vitDraws(vit, images);
      const h = VIT_HYPER.groups.main.all;
      return {
        method,
        label: `reference ViT ${JSON.stringify(vit)}`,
        spec: vitStepSpec(vit, 0),
        images,
        draw: () => draws,
        hyper: VIT_HYPER,
        torch: { config: vit, hyper: { lr: h.lr, weightDecay: h.weightDecay } },
      };
    }
    case "capi": {
      const config = capiConfig("tiny", overrides as CapiConfigInput), o = config.optim, s = capiSchedules(o, it);
      const images = syntheticBatch(0, 0, batch, config.imageSize as number, config.imageSize as number);
      return methodSubject(method, new CapiMethod(config, 0), images, {
        lr: s.lr,
        weightDecay: o.weightDecay,
        clusteringLr: s.clusteringLr,
        clusteringWeightDecay: o.clusteringWeightDecay,
        momentum: s.momentum,
      }, overrides);
    }
    case "mae": {
      const config = maeConfig("tiny", overrides as MaeConfigInput),
        m = new MaeMethod(config, { seed: 0, batchSize: batch });
      const images = syntheticBatch(0, 0, batch, config.imageSize as number, config.imageSize as number);
      const h = m.hyper(it).groups.main.decay;
      return methodSubject(method, m, images, { lr: h.lr, weightDecay: h.weightDecay }, overrides);
    }
    case "simmim": {
      const config = simmimConfig("tiny", overrides as SimmimConfigInput),
        m = new SimmimMethod(config, { seed: 0, batchSize: batch });
      const images = syntheticBatch(0, 0, batch, config.imageSize as number, config.imageSize as number);
      const h = m.hyper(it).groups.main.decay;
      return methodSubject(method, m, images, { lr: h.lr, weightDecay: h.weightDecay }, overrides);
    }
    default: {
      const never: never = method;
      throw new Error(`speedSubject: unknown method '${never}'`);
    }
  }
}
