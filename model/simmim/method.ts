/**
 * SimMIM as a `MimMethod` (for the trainer) and a `VisionEncoder` (for evaluation).
 *
 * Optimisation (simmim:optimizer.py, lr_scheduler.py, main_simmim.py): AdamW (0.9, 0.999),
 * eps 1e-8, weight decay 0.05 except parameters with `ndim == 1`, names ending `.bias`,
 * `encoder.pos_embed` and `encoder.cls_token` (the RPB table and `mask_token` are decayed);
 * lr and warmup lr scaled by batch/512; per-iteration linear warmup then multistep decay;
 * global grad-norm clip 5. Stochastic depth `linspace(0, rate, depth)` (timm `DropPath`).
 *
 * @module
 */
import { tf } from "../engine.ts";
import type { HostTensor } from "../fixture.ts";
import type { LossOutput, MimMethod, OptimizerSpec, PreparedBatch } from "../method.ts";
import { assertImageBatch, type EncoderFeatures, type EncoderInfo, type VisionEncoder } from "../encoder.ts";
import type { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { simmimLr } from "../schedules.ts";
import { patchify } from "../nn/patch_embed.ts";
import { vitArchName } from "../mae/method.ts";
import { type SimmimConfig, simmimScheduleIters } from "./config.ts";
import { SimmimModel } from "./simmim.ts";
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

export function simmimOptimizer(config: SimmimConfig, params: ParamStore, batchSize: number): OptimizerSpec {
  const o = config.optim;
  const decays = new Map([...params.trainable()].map(([n, v]) => [n, simmimDecays(n, v.shape)]));
  return {
    id: "main",
    params: [...decays.keys()],
    betas: o.betas,
    eps: o.eps,
    clipGradNorm: o.clipGrad,
    hyper: (it, name) => ({
      lr: simmimIterLr(config, batchSize, it),
      weightDecay: decays.get(name) ? o.weightDecay : 0,
    }),
  };
}

export interface SimmimBatch extends PreparedBatch {
  /** `[B*N]`, 1 = masked. */
  mask: Int32Array;
  /** `[B, N, C*p*p]` in `chw` order: the patch embedding's input and the L1 target. */
  patches: HostTensor<Float32Array>;
}

function isSimmimBatch(b: PreparedBatch): b is SimmimBatch {
  return "mask" in b && "patches" in b;
}

export function prepareSimmimBatch(
  model: SimmimModel,
  images: HostTensor<Float32Array>,
  mask: Int32Array,
): SimmimBatch {
  const { imageH, imageW, nTokens } = model.dims;
  const [b, ch, h, w] = images.shape;
  if (images.shape.length !== 4 || ch !== model.config.inChans || h !== imageH || w !== imageW) {
    throw new Error(
      `SimMIM: images must be [B, ${model.config.inChans}, ${imageH}, ${imageW}] (config imageSize), got [${images.shape}]`,
    );
  }
  if (mask.length !== b * nTokens) {
    throw new Error(`SimMIM: mask has ${mask.length} entries, expected ${b} x ${nTokens}`);
  }
  return { images, mask, patches: patchify(images, model.config.patchSize, "chw") };
}

/** timm `DropPath` multipliers per block and branch: `[B, 1, 1]`, 0 or `1/keep`. */
function dropPathScales(rng: Rng, config: SimmimConfig, batch: number): [tf.Tensor, tf.Tensor][] | null {
  if (config.dropPathRate === 0) return null;
  const out: [tf.Tensor, tf.Tensor][] = [];
  for (let i = 0; i < config.depth; i++) {
    const rate = config.depth === 1 ? 0 : config.dropPathRate * i / (config.depth - 1); // linspace(0, rate, depth)
    const keep = 1 - rate;
    const draw = () => {
      const s = new Float32Array(batch);
      for (let b = 0; b < batch; b++) s[b] = Math.floor(keep + rng.float()) / keep;
      return tf.tensor3d(s, [batch, 1, 1]);
    };
    out.push([draw(), draw()]);
  }
  return out;
}

/** SimMIM's encoder for evaluation: no masking, no global token (cls is not trained to summarise), patch tokens after the final norm. */
export class SimmimEncoder implements VisionEncoder {
  readonly info: EncoderInfo;
  readonly #model: SimmimModel;

  readonly #owned: boolean;

  /** `owned`: the encoder disposes the model (a loaded checkpoint); otherwise the method does. */
  constructor(model: SimmimModel, arch: string, owned = false) {
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
    assertImageBatch(this.info, images);
    const p = patchify(images, this.#model.config.patchSize, "chw");
    const z = tf.tidy(() => this.#model.encode(tf.tensor(p.data, p.shape), null)); // [B, N, D]
    const data = (await z.data()) as Float32Array;
    z.dispose();
    return {
      global: null,
      patches: { shape: [images.shape[0], gridH, gridW, this.#model.config.embedDim], data },
      registers: null,
    };
  }

  dispose(): void {
    if (this.#owned) this.#model.dispose();
  }
}

export interface SimmimMethodOptions {
  seed: number;
  /** Global batch size: scales the lr (batch / 512). */
  batchSize: number;
}

export class SimmimMethod implements MimMethod {
  readonly name = "simmim" as const;
  readonly model: SimmimModel;
  readonly params: ParamStore;
  readonly optimizers: OptimizerSpec[];

  constructor(config: SimmimConfig, opts: SimmimMethodOptions) {
    this.model = SimmimModel.create(config, Rng.from(opts.seed, "simmim", "init"));
    this.params = this.model.params;
    this.optimizers = [simmimOptimizer(config, this.params, opts.batchSize)];
  }

  prepare(images: HostTensor<Float32Array>, rng: Rng): PreparedBatch {
    return prepareSimmimBatch(
      this.model,
      images,
      sampleSimmimMasks(rng.fork("simmim.mask"), images.shape[0], this.model.dims),
    );
  }

  loss(batch: PreparedBatch, rng: Rng): LossOutput {
    if (!isSimmimBatch(batch)) throw new Error("SimmimMethod.loss: batch was not prepared by SimmimMethod.prepare");
    return tf.tidy(() => {
      const drop = dropPathScales(rng.fork("simmim.drop_path"), this.model.config, batch.images.shape[0]);
      const out = this.model.forward(tf.tensor(batch.patches.data, batch.patches.shape), batch.mask, drop);
      return { loss: out.loss, metrics: {} };
    });
  }

  encoder(): VisionEncoder {
    const c = this.model.config;
    return new SimmimEncoder(
      this.model,
      vitArchName(c.embedDim, c.patchSize, this.model.dims.imageH, this.model.dims.imageW, "simmim"),
    );
  }

  dispose(): void {
    this.model.dispose();
  }
}
