/**
 * CAPI as a `MimMethod`: parameters under their official names and their initialisation
 * (SPEC 1.7), the two optimizers with the official param groups (SPEC 1.8), the EMA, the
 * per-step draws (SPEC 1.6) and the evaluation forward. The loss is model/capi/loss.ts.
 *
 * Parameters: `student.backbone.*`, `student.head.last_layer.weight_{g,v}`, the EMA copy
 * `ema.backbone.*` / `ema.head.*` (the teacher backbone), and `teacher_head.layer.{weight,bias}`
 * (`OnlineClustering`, trained by its own AdamW). The evaluated encoder is the EMA backbone,
 * as in the released CAPI checkpoints.
 *
 * @module
 */
import { assertImageBatch, type EncoderInfo } from "../encoder.ts";
import type { HostTensor } from "../fixture.ts";
import { constant, defaultBias, normal, truncNormal, xavierUniform, zeros } from "../init.ts";
import type { EncoderForward, EncoderOutputs, MimMethod } from "../method.ts";
import { patchify } from "../nn/patch_embed.ts";
import type { Ops, ParamGetter } from "../ops/ops.ts";
import { Rng } from "../rng.ts";
import type { MicroBatch, ParamSpec, StepDraws, StepHyper, TrainStepSpec } from "../train_step.ts";
import { microBatchRanges, sliceSamples } from "../micro_batch.ts";
import { assertTrainable, type CapiConfig, type CapiDims, capiDims } from "./config.ts";
import { capiBatchStats, capiLoss } from "./loss.ts";
import { type CapiMasks, sampleCapiMasks, sliceCapiMasks } from "./masking.ts";
import { CapiGeometry, drawDropPath, evalForward } from "./model.ts";
import { type CapiGroup, capiParamGroups, capiSchedules } from "./optim.ts";
import { ropeFreqs } from "./rope.ts";

/** Backbone parameter names in the official state-dict order (model.py:317-324). */
export function backboneNames(c: CapiConfig): string[] {
  const out = ["patch_embed.weight", "patch_embed.bias", "registers", "mask_token"];
  for (const [stack, depth] of [["encoder", c.encoderDepth], ["decoder", c.decoderDepth]] as const) {
    for (let i = 0; i < depth; i++) {
      const r1 = `${stack}.blocks.${i}.residual1.`, r2 = `${stack}.blocks.${i}.residual2.`;
      out.push(`${r1}norm.weight`, ...["q_proj", "k_proj", "v_proj", "proj"].map((n) => `${r1}fn.${n}.weight`));
      out.push(`${r1}fn.rope.freqs`, `${r2}norm.weight`, `${r2}fn.fc1.weight`, `${r2}fn.fc2.weight`);
    }
  }
  return out;
}

/** Backbone parameter names and initial values (model.py:317-324, 451-463). */
export function initBackbone(c: CapiConfig, d: CapiDims, rng: Rng): Map<string, HostTensor<Float32Array>> {
  const D = c.embedDim, p = c.patchSize, hidden = Math.round(c.mlpRatio * D);
  const out = new Map<string, HostTensor<Float32Array>>();
  for (const name of backboneNames(c)) {
    const lin = (shape: number[]) => xavierUniform(rng.fork(name), shape);
    let v: HostTensor<Float32Array>;
    if (name === "patch_embed.weight") {
      v = { shape: [D, 3, p, p], data: xavierUniform(rng.fork(name), [D, 3 * p * p]).data }; // on the (D, 3p^2) view
    } else if (name === "patch_embed.bias") v = defaultBias(rng.fork(name), D, 3 * p * p);
    else if (name === "registers") v = normal(rng.fork(name), [1, c.nRegisters, D], 0.02);
    else if (name === "mask_token") v = normal(rng.fork(name), [1, D], 0.02);
    else if (name.endsWith("norm.weight")) v = constant([D], 1);
    else if (name.endsWith("rope.freqs")) v = ropeFreqs(d.headDim);
    else if (name.endsWith("fc1.weight")) v = lin([hidden, D]);
    else if (name.endsWith("fc2.weight")) v = lin([D, hidden]);
    else v = lin([D, D]); // q/k/v/proj
    out.set(name, v);
  }
  return out;
}

/** timm-style name, e.g. `vit_tiny_patch4_32.capi`. */
export function capiArchName(c: CapiConfig, d: CapiDims): string {
  const size = ({ 192: "tiny", 384: "small", 768: "base", 1024: "large" } as Record<number, string>)[c.embedDim] ??
    `d${c.embedDim}`;
  const res = d.imageH === d.imageW ? `${d.imageH}` : `${d.imageH}x${d.imageW}`;
  return `vit_${size}_patch${c.patchSize}_${res}.capi`;
}

/** The frozen CAPI encoder (eval API, model.py:432-448) over the backbone under `encoderPrefix`. */
export class CapiEncoderForward implements EncoderForward {
  readonly encoderInfo: EncoderInfo;
  readonly geometry: CapiGeometry;
  constructor(readonly config: CapiConfig, readonly encoderPrefix: string) {
    const d = capiDims(config);
    this.geometry = new CapiGeometry(config, d);
    this.encoderInfo = {
      arch: capiArchName(config, d),
      embedDim: config.embedDim,
      patchSize: config.patchSize,
      imageSize: [d.imageH, d.imageW],
    };
  }

  encode(o: Ops, get: ParamGetter, images: HostTensor<Float32Array>): EncoderOutputs {
    assertImageBatch(this.encoderInfo, images);
    const p = patchify(images, this.config.patchSize, "chw");
    const r = evalForward(o, get, this.encoderPrefix, o.input("patches", p), this.geometry);
    return { global: r.global, patches: r.featureMap, registers: r.registers };
  }
}

export interface CapiMethodOptions {
  /**
   * Differentiate the parameters whose lr multiplier is 0 (`rope.freqs` by default) and keep them
   * in the student AdamW at lr 0, as the official code does (they require grad). Training leaves
   * them out (same parameters after every step, less work); parity asks for their gradients.
   */
  zeroLrGrads?: boolean;
  /**
   * Micro-batched steps: keep each micro-batch's teacher features (`B x N x D` floats over the
   * global batch) between the Sinkhorn statistics passes and the loss (default true), or recompute
   * the teacher in every pass (`1 + nSkIter` more teacher forwards per step; same values).
   */
  keepTeacher?: boolean;
}

export class CapiMethod extends CapiEncoderForward implements MimMethod {
  readonly name = "capi" as const;
  readonly dims: CapiDims;
  readonly seed: number;
  readonly #opts: CapiMethodOptions;
  /** Every student param group, lr-0 ones included (`hyper` gives them all). */
  readonly #groups: CapiGroup[];

  constructor(config: CapiConfig, seed: number, opts: CapiMethodOptions = {}) {
    super(config, "ema.backbone.");
    this.dims = capiDims(config);
    assertTrainable(config, this.dims);
    this.seed = seed;
    this.#opts = opts;
    this.#groups = capiParamGroups(this.#studentNames(), config.optim);
  }

  /** Student parameter names without the `student.` prefix. */
  #studentNames(): string[] {
    return [
      ...backboneNames(this.config).map((n) => `backbone.${n}`),
      "head.last_layer.weight_g",
      "head.last_layer.weight_v",
    ];
  }

  stepSpec(): TrainStepSpec {
    const c = this.config, o = c.optim, K = c.numClusters, D = c.embedDim;
    const rng = Rng.from(this.seed, "capi", "init");
    const student = new Map<string, HostTensor<Float32Array>>();
    for (const [n, t] of initBackbone(c, this.dims, rng.fork("backbone"))) student.set(`backbone.${n}`, t);
    student.set("head.last_layer.weight_g", constant([K, 1], 1));
    student.set("head.last_layer.weight_v", truncNormal(rng.fork("head"), [K, D], 0.02, -2, 2));
    const groups = this.#groups.filter((g) => g.lrMult > 0 || this.#opts.zeroLrGrads);
    const trained = new Set(groups.flatMap((g) => g.params));
    const params = new Map<string, ParamSpec>();
    for (const [n, t] of student) params.set(`student.${n}`, { value: t, trainable: trained.has(n) });
    // The EMA starts as an exact copy of the student (train_capi.py:167-168).
    for (const [n, t] of student) params.set(`ema.${n}`, { value: t, trainable: false });
    params.set("teacher_head.layer.weight", { value: normal(rng.fork("teacher_head"), [K, D], 1), trainable: true });
    const head = ["teacher_head.layer.weight"];
    if (c.clusteringBias) {
      params.set("teacher_head.layer.bias", { value: zeros([K]), trainable: true });
      head.push("teacher_head.layer.bias");
    }
    return {
      params,
      optimizers: [
        {
          id: "student",
          groups: groups.map((g) => ({ id: g.id, params: g.params.map((n) => `student.${n}`) })),
          betas: o.betas,
          eps: o.eps,
        },
        { id: "clustering", groups: [{ id: "head", params: head }], betas: o.clusteringBetas, eps: o.clusteringEps },
      ],
      ema: { pairs: [...student.keys()].map((n) => [`ema.${n}`, `student.${n}`]) },
      loss: (ops, get, inputs, trace, batch) => capiLoss(ops, get, inputs, c, this.geometry, trace, batch),
      batchStats: capiBatchStats(c, this.geometry, { keepTeacher: this.#opts.keepTeacher ?? true }),
    };
  }

  draw(images: HostTensor<Float32Array>, rng: Rng): StepDraws {
    return this.drawMicroBatches(images, rng, images.shape[0])[0].draws;
  }

  /**
   * Masks and prediction subsets are per sample: drawn for the whole batch, then split. The
   * drop-path subsets are per device (`randperm(B_m)[:n_keep]` on each GPU, model.py:158): drawn
   * for each micro-batch in turn from one stream, so `n_keep` follows the micro-batch.
   */
  drawMicroBatches(images: HostTensor<Float32Array>, rng: Rng, batchPerDevice: number): MicroBatch[] {
    const { imageH, imageW, gridH, gridW, nTokens, nMasked, nPredict } = this.dims;
    if (
      images.shape.length !== 4 || images.shape[1] !== 3 || images.shape[2] !== imageH || images.shape[3] !== imageW
    ) {
      throw new Error(`CAPI: images must be [B, 3, ${imageH}, ${imageW}] (config imageSize), got [${images.shape}]`);
    }
    const batch = images.shape[0];
    // The streams of the former prepare/loss split, kept so that runs reproduce bit for bit.
    const masks = sampleCapiMasks(rng.fork("prepare", "capi.mask"), { batch, gridH, gridW, nMasked, nPredict });
    const dropPath = rng.fork("loss", "capi.drop_path");
    return microBatchRanges(batch, batchPerDevice).map((r) => ({
      draws: {
        ...this.drawsWithMasks(sliceSamples(images, r), sliceCapiMasks(masks, r, nTokens)),
        ...drawDropPath(dropPath, this.config, r.size),
      },
      samples: r.size,
    }));
  }

  /** The draws of a batch with given masks and no drop path (parity feeds the fixture's masks). */
  drawsWithMasks(images: HostTensor<Float32Array>, m: CapiMasks): StepDraws {
    const b = images.shape[0];
    return {
      patches: patchify(images, this.config.patchSize, "chw"),
      visible_indices: { shape: [m.visibleIndices.length], data: m.visibleIndices },
      predict_indices: { shape: [m.predictIndices.length], data: m.predictIndices },
      coords_enc: this.geometry.visibleCoords(m.visibleIndices, b),
      coords_dec: this.geometry.gatherCoords(m.predictIndices, b),
    };
  }

  hyper(it: number): StepHyper {
    const s = capiSchedules(this.config.optim, it);
    return this.hyperAt(s.lr, s.clusteringLr, s.momentum);
  }

  /** The step's hyper-parameters for given schedule values (parity: the fixture's constant lrs and momentum). */
  hyperAt(lr: number, clusteringLr: number, momentum: number): StepHyper {
    const o = this.config.optim;
    const student = Object.fromEntries(
      this.#groups.map((g) => [g.id, { lr: lr * g.lrMult, weightDecay: o.weightDecay * g.wdMult }]),
    );
    return {
      groups: { student, clustering: { head: { lr: clusteringLr, weightDecay: o.clusteringWeightDecay } } },
      emaMomentum: momentum,
    };
  }

  logScalars(it: number): Record<string, number> {
    const s = capiSchedules(this.config.optim, it);
    return { lr: s.lr, clustering_lr: s.clusteringLr, momentum: s.momentum };
  }
}
