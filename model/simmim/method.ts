/**
 * SimMIM as a `MimMethod`: parameters and initialisation (model/simmim/simmim.ts), the
 * optimizer, the per-step draws and the evaluation forward.
 *
 * Optimisation (simmim:optimizer.py, lr_scheduler.py, main_simmim.py): AdamW (0.9, 0.999),
 * eps 1e-8, weight decay 0.05 except parameters with `ndim == 1`, names ending `.bias`,
 * `encoder.pos_embed` and `encoder.cls_token` (the RPB table and `mask_token` are decayed);
 * lr and warmup lr scaled by batch/512; per-iteration linear warmup then multistep decay;
 * global grad-norm clip 5. Stochastic depth `linspace(0, rate, depth)` (timm `DropPath`).
 *
 * Micro-batches (`drawMicroBatches`): each micro-batch's loss is normalised by its own masked
 * pixels, `/ (sum(m_m) + 1e-5)`, and the accumulated gradient weights it by `B_m / B`: exactly
 * what the official training computes on each GPU before DDP averages the gradients. One batch
 * normalises once by `sum(m) + 1e-5`; the two differ by about `1e-5 / sum(m_m)` relative, below
 * float32 rounding for any micro-batch with more than ~170 masked pixels (one 32x32 mask patch is
 * 1,024), so the per-device normaliser is kept rather than fed the global one.
 *
 * @module
 */
import { assertImageBatch, type EncoderInfo } from "../encoder.ts";
import type { HostTensor } from "../fixture.ts";
import type { EncoderForward, EncoderOutputs, MimMethod } from "../method.ts";
import type { Ops, ParamGetter, Tensor } from "../ops/ops.ts";
import { Rng } from "../rng.ts";
import { simmimLr } from "../schedules.ts";
import { patchify } from "../nn/patch_embed.ts";
import type { MicroBatch, ParamSpec, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import { microBatchRanges, sliceSamples } from "../micro_batch.ts";
import { vitArchName } from "../mae/method.ts";
import { type SimmimConfig, type SimmimDims, simmimDims, simmimScheduleIters } from "./config.ts";
import { initialParams, simmimEncode, simmimForward, simmimRelPosBias } from "./simmim.ts";
import { sampleSimmimMasks } from "./mask_generator.ts";

/** Names excluded from weight decay besides 1-D parameters and biases (`VisionTransformer.no_weight_decay`). */
export const SIMMIM_NO_DECAY = new Set(["encoder.pos_embed", "encoder.cls_token"]);

/** optimizer.py `get_pretrain_param_groups`. */
export function simmimDecays(name: string, shape: readonly number[]): boolean {
  return !(shape.length === 1 || name.endsWith(".bias") || SIMMIM_NO_DECAY.has(name));
}

/**
 * The lr of iteration `it`: the scheduler's `step_update(i)` runs *after* iteration i's
 * optimizer step (main_simmim.py), so iteration `it` uses the schedule's value at `it - 1`
 * (and the warmup start value at 0).
 */
export function simmimIterLr(config: SimmimConfig, batchSize: number, it: number): number {
  const o = config.optim;
  const scale = batchSize / 512;
  const sched = { baseLr: o.baseLr * scale, warmupLr: o.warmupLr * scale, gamma: o.gamma, ...simmimScheduleIters(o) };
  return simmimLr(sched, Math.max(0, it - 1));
}

/** timm `DropPath` multipliers per block and branch: `[B, 1, 1]`, 0 or `1/keep`, as draws `drop_path.<i>.{attn,mlp}`. */
export function drawSimmimDropPath(rng: Rng, config: SimmimConfig, batch: number): StepDraws {
  const out: StepDraws = {};
  if (config.dropPathRate === 0) return out;
  for (let i = 0; i < config.depth; i++) {
    const rate = config.depth === 1 ? 0 : config.dropPathRate * i / (config.depth - 1); // linspace(0, rate, depth)
    const keep = 1 - rate;
    for (const branch of ["attn", "mlp"]) {
      const s = new Float32Array(batch);
      for (let b = 0; b < batch; b++) s[b] = Math.floor(keep + rng.float()) / keep;
      out[`drop_path.${i}.${branch}`] = { shape: [batch, 1, 1], data: s };
    }
  }
  return out;
}

/** SimMIM's encoder for evaluation: no masking, no global token (cls is not trained to summarise), patch tokens after the final norm. */
export class SimmimEncoderForward implements EncoderForward {
  readonly encoderInfo: EncoderInfo;
  readonly encoderPrefix = "";
  readonly dims: SimmimDims;
  constructor(readonly config: SimmimConfig) {
    this.dims = simmimDims(config);
    this.encoderInfo = {
      arch: vitArchName(config.embedDim, config.patchSize, this.dims.imageH, this.dims.imageW, "simmim"),
      embedDim: config.embedDim,
      patchSize: config.patchSize,
      imageSize: [this.dims.imageH, this.dims.imageW],
    };
  }

  encode(o: Ops, get: ParamGetter, images: HostTensor<Float32Array>): EncoderOutputs {
    assertImageBatch(this.encoderInfo, images);
    const { gridH, gridW } = this.dims;
    const p = patchify(images, this.config.patchSize, "chw");
    const z = simmimEncode(o, get, this.config, o.input("patches", p), null); // [B, N, D]
    return {
      global: null,
      patches: o.reshape(z, [images.shape[0], gridH, gridW, this.config.embedDim]),
      registers: null,
    };
  }
}

export interface SimmimMethodOptions {
  seed: number;
  /** Global batch size: scales the lr (batch / 512). */
  batchSize: number;
}

export class SimmimMethod extends SimmimEncoderForward implements MimMethod {
  readonly name = "simmim" as const;
  readonly seed: number;
  readonly batchSize: number;

  constructor(config: SimmimConfig, opts: SimmimMethodOptions) {
    super(config);
    this.seed = opts.seed;
    this.batchSize = opts.batchSize;
  }

  stepSpec(): TrainStepSpec {
    const c = this.config, o = c.optim;
    const params = new Map<string, ParamSpec>();
    for (const [name, value] of initialParams(c, Rng.from(this.seed, "simmim", "init"))) {
      params.set(name, { value, trainable: true });
    }
    const decay: string[] = [], noDecay: string[] = [];
    for (const [name, p] of params) (simmimDecays(name, p.value.shape) ? decay : noDecay).push(name);
    return {
      params,
      optimizers: [{
        id: "main",
        groups: [{ id: "decay", params: decay }, { id: "no_decay", params: noDecay }],
        betas: o.betas,
        eps: o.eps,
        clipGradNorm: o.clipGrad,
      }],
      ema: null,
      loss: (ops, get, inputs, trace) => {
        const drop = c.dropPathRate > 0
          ? Array.from({ length: c.depth }, (_, i): [Tensor, Tensor] => [
            inputs[`drop_path.${i}.attn`],
            inputs[`drop_path.${i}.mlp`],
          ])
          : null;
        trace?.("rel_pos_bias", simmimRelPosBias(ops, get, c));
        const out = simmimForward(ops, get, c, inputs.patches, inputs.mask, drop);
        trace?.("enc.z", out.z);
        trace?.("dec.x_rec", out.rec);
        trace?.("loss", out.loss);
        return { loss: out.loss, metrics: {} };
      },
    };
  }

  draw(images: HostTensor<Float32Array>, rng: Rng): StepDraws {
    return this.drawMicroBatches(images, rng, images.shape[0])[0].draws;
  }

  /** Masks and timm's drop path are per sample: drawn for the whole batch, then split. */
  drawMicroBatches(images: HostTensor<Float32Array>, rng: Rng, batchPerDevice: number): MicroBatch[] {
    const b = images.shape[0], n = this.dims.nTokens;
    // The streams of the former prepare/loss split, kept so that runs reproduce bit for bit.
    const mask = sampleSimmimMasks(rng.fork("prepare", "simmim.mask"), b, this.dims);
    const drop = drawSimmimDropPath(rng.fork("loss", "simmim.drop_path"), this.config, b);
    return microBatchRanges(b, batchPerDevice).map((r) => ({
      draws: {
        ...this.drawsWithMask(sliceSamples(images, r), mask.subarray(r.start * n, (r.start + r.size) * n)),
        ...Object.fromEntries(Object.entries(drop).map(([k, t]) => [k, sliceSamples(t, r)])),
      },
      samples: r.size,
    }));
  }

  /** Patches and mask of one batch (`mask` `[B*N]`, 1 = masked; parity feeds the fixture's), no drop path. */
  drawsWithMask(images: HostTensor<Float32Array>, mask: Int32Array): StepDraws {
    const { imageH, imageW, nTokens, maskCount, scale } = this.dims;
    const [b, ch, h, w] = images.shape;
    if (images.shape.length !== 4 || ch !== this.config.inChans || h !== imageH || w !== imageW) {
      throw new Error(
        `SimMIM: images must be [B, ${this.config.inChans}, ${imageH}, ${imageW}] (config imageSize), got [${images.shape}]`,
      );
    }
    if (mask.length !== b * nTokens) {
      throw new Error(`SimMIM: mask has ${mask.length} entries, expected ${b} x ${nTokens}`);
    }
    for (let s = 0; s < b; s++) {
      let n = 0;
      for (let t = 0; t < nTokens; t++) n += mask[s * nTokens + t];
      if (n !== maskCount * scale * scale) {
        throw new Error(
          `SimMIM: mask of image ${s} has ${n} masked tokens; the config masks ${maskCount * scale * scale}`,
        );
      }
    }
    return {
      patches: patchify(images, this.config.patchSize, "chw"),
      mask: { shape: [b, nTokens, 1], data: Float32Array.from(mask) },
    };
  }

  hyper(it: number): StepHyper {
    return this.hyperAt(simmimIterLr(this.config, this.batchSize, it));
  }

  /** The step's hyper-parameters at learning rate `lr`. */
  hyperAt(lr: number): StepHyper {
    const weightDecay = this.config.optim.weightDecay;
    return { groups: { main: { decay: { lr, weightDecay }, no_decay: { lr, weightDecay: 0 } } } };
  }

  logScalars(it: number): Record<string, number> {
    return { lr: simmimIterLr(this.config, this.batchSize, it) };
  }
}
