/**
 * MAE as a `MimMethod`: parameters and initialisation (model/mae/mae.ts), the optimizer, the
 * per-step draws and the evaluation forward.
 *
 * Optimisation (mae:main_pretrain.py, util/lr_sched.py, timm `add_weight_decay`): AdamW
 * (0.9, 0.95), weight decay only on trainable parameters with `ndim > 1` that do not end in
 * `.bias` (so `cls_token` and `mask_token` are decayed; the frozen sin-cos `pos_embed`s are
 * not optimised at all); peak lr = blr * batch / 256; per-iteration linear warmup then
 * half-cycle cosine (`maeLr` on the fractional epoch = iteration / iterations-per-epoch,
 * which is `maeLr` on iterations with the schedule counted in iterations).
 *
 * Micro-batches: the loss is a mean over the removed patches, `B (L - len_keep)` of them in every
 * batch, so each micro-batch's mean weighted by `B_m / B` sums to the batch's exactly.
 *
 * @module
 */
import { assertImageBatch, type EncoderInfo } from "../encoder.ts";
import type { HostTensor } from "../fixture.ts";
import type { EncoderForward, EncoderOutputs, MimMethod } from "../method.ts";
import type { Ops, ParamGetter } from "../ops/ops.ts";
import { patchify } from "../nn/patch_embed.ts";
import { Rng } from "../rng.ts";
import { maeLr } from "../schedules.ts";
import type { MicroBatch, ParamSpec, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import { microBatchRanges, sliceSamples } from "../micro_batch.ts";
import { type MaeConfig, type MaeDims, maeDims, maeWarmupIters } from "./config.ts";
import { absoluteIndices, initialParams, maeEncode, maeForward, normPixTarget } from "./mae.ts";
import { type MaeMasking, maskingFromNoise, sampleNoise } from "./masking.ts";

/** timm `add_weight_decay`: no decay for `ndim <= 1` or names ending in `.bias`. */
export function maeDecays(name: string, shape: readonly number[]): boolean {
  return !(shape.length <= 1 || name.endsWith(".bias"));
}

/** `{decay, no_decay}` names of the trainable parameters, in parameter order (official `param_groups`). */
export function maeParamGroups(params: Map<string, ParamSpec>): { decay: string[]; no_decay: string[] } {
  const decay: string[] = [], noDecay: string[] = [];
  for (const [name, p] of params) if (p.trainable) (maeDecays(name, p.value.shape) ? decay : noDecay).push(name);
  return { decay, no_decay: noDecay };
}

/** Peak lr = blr * batch / 256 (main_pretrain.py). */
export function maePeakLr(config: MaeConfig, batchSize: number): number {
  return config.optim.blr * batchSize / 256;
}

/** timm-style architecture name, e.g. `vit_tiny_patch4_32.mae`. */
export function vitArchName(width: number, patch: number, h: number, w: number, tag: string): string {
  const size =
    ({ 192: "tiny", 384: "small", 768: "base", 1024: "large", 1280: "huge" } as Record<number, string>)[width] ??
      `d${width}`;
  return `vit_${size}_patch${patch}_${h === w ? h : `${h}x${w}`}.${tag}`;
}

/** MAE's encoder for evaluation: no masking; global = cls token, patches = patch tokens, both after the final norm. */
export class MaeEncoderForward implements EncoderForward {
  readonly encoderInfo: EncoderInfo;
  readonly encoderPrefix = "";
  readonly dims: MaeDims;
  constructor(readonly config: MaeConfig) {
    this.dims = maeDims(config);
    this.encoderInfo = {
      arch: vitArchName(config.embedDim, config.patchSize, this.dims.imageH, this.dims.imageW, "mae"),
      embedDim: config.embedDim,
      patchSize: config.patchSize,
      imageSize: [this.dims.imageH, this.dims.imageW],
    };
  }

  encode(o: Ops, get: ParamGetter, images: HostTensor<Float32Array>): EncoderOutputs {
    assertImageBatch(this.encoderInfo, images);
    const { gridH, gridW, nTokens } = this.dims;
    const d = this.config.embedDim, b = images.shape[0];
    const p = patchify(images, this.config.patchSize, "chw");
    const latent = maeEncode(o, get, this.config, o.input("patches", p), null); // [B, 1+N, D]
    return {
      global: o.reshape(o.slice(latent, [0, 0, 0], [b, 1, d]), [b, d]),
      patches: o.reshape(o.slice(latent, [0, 1, 0], [b, nTokens, d]), [b, gridH, gridW, d]),
      registers: null,
    };
  }
}

export interface MaeMethodOptions {
  seed: number;
  /** Global batch size: sets the peak lr (blr * batch / 256). */
  batchSize: number;
}

export class MaeMethod extends MaeEncoderForward implements MimMethod {
  readonly name = "mae" as const;
  readonly seed: number;
  readonly batchSize: number;

  constructor(config: MaeConfig, opts: MaeMethodOptions) {
    super(config);
    this.seed = opts.seed;
    this.batchSize = opts.batchSize;
  }

  stepSpec(): TrainStepSpec {
    const c = this.config, o = c.optim;
    const params = new Map<string, ParamSpec>();
    for (const [name, value, trainable] of initialParams(c, Rng.from(this.seed, "mae", "init"))) {
      params.set(name, { value, trainable });
    }
    const g = maeParamGroups(params);
    return {
      params,
      optimizers: [{
        id: "main",
        groups: [{ id: "decay", params: g.decay }, { id: "no_decay", params: g.no_decay }],
        betas: o.betas,
        eps: o.eps,
      }],
      ema: null,
      loss: (ops, get, inputs, trace) => {
        const out = maeForward(ops, get, c, {
          patches: inputs.patches,
          target: inputs.target,
          keep: inputs.keep_indices,
          restore: inputs.restore_indices,
          mask: inputs.mask,
        });
        trace?.("enc.latent", out.latent);
        trace?.("dec.pred", out.pred);
        trace?.("loss", out.loss);
        return { loss: out.loss, metrics: {} };
      },
    };
  }

  draw(images: HostTensor<Float32Array>, rng: Rng): StepDraws {
    return this.drawMicroBatches(images, rng, images.shape[0])[0].draws;
  }

  /** The masking noise is per sample: drawn for the whole batch, then split. */
  drawMicroBatches(images: HostTensor<Float32Array>, rng: Rng, batchPerDevice: number): MicroBatch[] {
    // The stream of the former `prepare`, kept so that runs reproduce bit for bit.
    const noise = sampleNoise(rng.fork("prepare", "mae.noise"), images.shape[0], this.dims.nTokens);
    return microBatchRanges(images.shape[0], batchPerDevice).map((r) => ({
      draws: this.drawsFromNoise(sliceSamples(images, r), sliceSamples(noise, r)).draws,
      samples: r.size,
    }));
  }

  /** Patchify, target and masking of one batch; `noise` `[B, L]` decides the masking (parity feeds the fixture's). */
  drawsFromNoise(
    images: HostTensor<Float32Array>,
    noise: HostTensor<Float32Array>,
  ): { draws: StepDraws; masking: MaeMasking; target: HostTensor<Float32Array> } {
    const c = this.config, { imageH, imageW, lenKeep } = this.dims;
    const [b, ch, h, w] = images.shape;
    if (images.shape.length !== 4 || ch !== c.inChans || h !== imageH || w !== imageW) {
      throw new Error(
        `MAE: images must be [B, ${c.inChans}, ${imageH}, ${imageW}] (config imageSize), got [${images.shape}]`,
      );
    }
    const raw = patchify(images, c.patchSize, "hwc");
    const target = c.normPixLoss ? normPixTarget(raw) : raw;
    const m = maskingFromNoise(noise, lenKeep);
    const keep = absoluteIndices(m.idsKeep, b, m.length), restore = absoluteIndices(m.idsRestore, b, m.length);
    return {
      draws: {
        patches: patchify(images, c.patchSize, "chw"),
        target,
        keep_indices: { shape: [keep.length], data: keep },
        restore_indices: { shape: [restore.length], data: restore },
        mask: { shape: [b, m.length], data: m.mask },
      },
      masking: m,
      target,
    };
  }

  hyper(it: number): StepHyper {
    const o = this.config.optim;
    const lr = maeLr({
      lr: maePeakLr(this.config, this.batchSize),
      minLr: o.minLr,
      warmupEpochs: maeWarmupIters(o),
      epochs: o.totalIters,
    }, it);
    return this.hyperAt(lr);
  }

  /** The step's hyper-parameters at learning rate `lr` (parity: the fixture's constant lr). */
  hyperAt(lr: number, weightDecay = this.config.optim.weightDecay): StepHyper {
    return { groups: { main: { decay: { lr, weightDecay }, no_decay: { lr, weightDecay: 0 } } } };
  }

  logScalars(it: number): Record<string, number> {
    return { lr: this.hyper(it).groups.main.decay.lr };
  }
}
