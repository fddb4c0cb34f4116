/**
 * MAE as a `MimMethod` (for the trainer) and a `VisionEncoder` (for evaluation).
 *
 * Optimisation (mae:main_pretrain.py, util/lr_sched.py, timm `add_weight_decay`): AdamW
 * (0.9, 0.95), weight decay only on trainable parameters with `ndim > 1` that do not end in
 * `.bias` (so `cls_token` and `mask_token` are decayed; the frozen sin-cos `pos_embed`s are
 * not optimised at all); peak lr = blr * batch / 256; per-iteration linear warmup then
 * half-cycle cosine (`maeLr` on the fractional epoch = iteration / iterations-per-epoch,
 * which is `maeLr` on iterations with the schedule counted in iterations).
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import type { LossOutput, MimMethod, OptimizerSpec, PreparedBatch } from "../method.ts";
import { assertImageBatch, type EncoderFeatures, type EncoderInfo, type VisionEncoder } from "../encoder.ts";
import type { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { maeLr } from "../schedules.ts";
import { patchify } from "../nn/patch_embed.ts";
import { type MaeConfig, maeWarmupIters } from "./config.ts";
import { MaeModel, normPixTarget } from "./mae.ts";
import { type MaeMasking, maskingFromNoise, sampleNoise } from "./masking.ts";

/** A batch with its MAE masking and host-side patches/targets. */
export interface MaeBatch extends PreparedBatch {
  masking: MaeMasking;
  /** `[B, L, C*p*p]` in `chw` order (the patch embedding's input). */
  patches: HostTensor<Float32Array>;
  /** `[B, L, p*p*C]` in `hwc` order, norm-pix normalised when the config says so. */
  target: HostTensor<Float32Array>;
}

function isMaeBatch(b: PreparedBatch): b is MaeBatch {
  return "masking" in b && "patches" in b && "target" in b;
}

/** timm `add_weight_decay`: no decay for `ndim <= 1` or names ending in `.bias`. */
export function maeDecays(name: string, shape: readonly number[]): boolean {
  return !(shape.length <= 1 || name.endsWith(".bias"));
}

/** `{decay, no_decay}` names of the trainable parameters, in store order (official `param_groups`). */
export function maeParamGroups(params: ParamStore): { decay: string[]; no_decay: string[] } {
  const decay: string[] = [], noDecay: string[] = [];
  for (const [name, v] of params.trainable()) (maeDecays(name, v.shape) ? decay : noDecay).push(name);
  return { decay, no_decay: noDecay };
}

/** Peak lr = blr * batch / 256 (main_pretrain.py). */
export function maePeakLr(config: MaeConfig, batchSize: number): number {
  return config.optim.blr * batchSize / 256;
}

/** The single AdamW of MAE at `batchSize`. */
export function maeOptimizer(config: MaeConfig, params: ParamStore, batchSize: number): OptimizerSpec {
  const o = config.optim;
  const lr = maePeakLr(config, batchSize);
  const decays = new Map([...params.trainable()].map(([n, v]) => [n, maeDecays(n, v.shape)]));
  return {
    id: "main",
    params: [...decays.keys()],
    betas: o.betas,
    eps: o.eps,
    hyper: (it, name) => ({
      lr: maeLr({ lr, minLr: o.minLr, warmupEpochs: maeWarmupIters(o), epochs: o.totalIters }, it),
      weightDecay: decays.get(name) ? o.weightDecay : 0,
    }),
  };
}

/** Patchify, target and masking of one batch; `noise` `[B, L]` decides the masking. */
export function prepareMaeBatch(
  model: MaeModel,
  images: HostTensor<Float32Array>,
  noise: HostTensor<Float32Array>,
): MaeBatch {
  const c = model.config;
  const [, ch, h, w] = images.shape;
  if (images.shape.length !== 4 || ch !== c.inChans || h !== model.dims.imageH || w !== model.dims.imageW) {
    throw new Error(
      `MAE: images must be [B, ${c.inChans}, ${model.dims.imageH}, ${model.dims.imageW}] (config imageSize), got [${images.shape}]`,
    );
  }
  const raw = patchify(images, c.patchSize, "hwc");
  return {
    images,
    masking: maskingFromNoise(noise, model.dims.lenKeep),
    patches: patchify(images, c.patchSize, "chw"),
    target: c.normPixLoss ? normPixTarget(raw) : raw,
  };
}

/** MAE's encoder for evaluation: no masking; global = cls token, patches = patch tokens, both after the final norm. */
export class MaeEncoder implements VisionEncoder {
  readonly info: EncoderInfo;
  readonly #model: MaeModel;

  readonly #owned: boolean;

  /** `owned`: the encoder disposes the model (a loaded checkpoint); otherwise the method does. */
  constructor(model: MaeModel, arch: string, owned = false) {
    this.#model = model;
    this.#owned = owned;
    const c = model.config;
    this.info = {
      arch,
      embedDim: c.embedDim,
      patchSize: c.patchSize,
      imageSize: [model.dims.imageH, model.dims.imageW],
    };
  }

  async encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    const { gridH, gridW } = this.#model.dims;
    const d = this.#model.config.embedDim;
    assertImageBatch(this.info, images);
    const b = images.shape[0];
    const p = patchify(images, this.#model.config.patchSize, "chw");
    const latent = tf.tidy(() => this.#model.encode(tf.tensor(p.data, p.shape), null)); // [B, 1+N, D]
    const data = (await latent.data()) as Float32Array;
    latent.dispose();
    const n = gridH * gridW;
    const global = new Float32Array(b * d), patches = new Float32Array(b * n * d);
    for (let s = 0; s < b; s++) {
      global.set(data.subarray(s * (n + 1) * d, (s * (n + 1) + 1) * d), s * d);
      patches.set(data.subarray((s * (n + 1) + 1) * d, (s + 1) * (n + 1) * d), s * n * d);
    }
    return {
      global: { shape: [b, d], data: global },
      patches: { shape: [b, gridH, gridW, d], data: patches },
      registers: null,
    };
  }

  dispose(): void {
    if (this.#owned) this.#model.dispose();
  }
}

/** timm-style architecture name, e.g. `vit_tiny_patch4_32.mae`. */
export function vitArchName(width: number, patch: number, h: number, w: number, tag: string): string {
  const size =
    ({ 192: "tiny", 384: "small", 768: "base", 1024: "large", 1280: "huge" } as Record<number, string>)[width] ??
      `d${width}`;
  return `vit_${size}_patch${patch}_${h === w ? h : `${h}x${w}`}.${tag}`;
}

export interface MaeMethodOptions {
  seed: number;
  /** Global batch size: sets the peak lr (blr * batch / 256). */
  batchSize: number;
}

export class MaeMethod implements MimMethod {
  readonly name = "mae" as const;
  readonly model: MaeModel;
  readonly params: ParamStore;
  readonly optimizers: OptimizerSpec[];

  constructor(config: MaeConfig, opts: MaeMethodOptions) {
    this.model = MaeModel.create(config, Rng.from(opts.seed, "mae", "init"));
    this.params = this.model.params;
    this.optimizers = [maeOptimizer(config, this.params, opts.batchSize)];
  }

  prepare(images: HostTensor<Float32Array>, rng: Rng): PreparedBatch {
    return prepareMaeBatch(
      this.model,
      images,
      sampleNoise(rng.fork("mae.noise"), images.shape[0], this.model.dims.nTokens),
    );
  }

  loss(batch: PreparedBatch, _rng: Rng): LossOutput {
    if (!isMaeBatch(batch)) throw new Error("MaeMethod.loss: batch was not prepared by MaeMethod.prepare");
    return tf.tidy(() => {
      const { patches, target } = batch;
      const out = this.model.forward(
        tf.tensor(patches.data, patches.shape),
        tf.tensor(target.data, target.shape),
        batch.masking,
      );
      return { loss: out.loss, metrics: {} };
    });
  }

  encoder(): VisionEncoder {
    const { imageH, imageW } = this.model.dims;
    const c = this.model.config;
    return new MaeEncoder(this.model, vitArchName(c.embedDim, c.patchSize, imageH, imageW, "mae"));
  }

  dispose(): void {
    this.model.dispose();
  }
}
