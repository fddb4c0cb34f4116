/**
 * CAPI as a `MimMethod` (trainer) and a `VisionEncoder` (evaluation): parameters under
 * their official names, initialisation (SPEC 1.7), the two optimizers (SPEC 1.8), one
 * training iteration (SPEC 1.1) and the EMA.
 *
 * Store layout: `student.backbone.*`, `student.head.last_layer.weight_{g,v}`, the EMA copy
 * `ema.backbone.*` / `ema.head.*` (the teacher backbone), and `teacher_head.layer.{weight,bias}`
 * (`OnlineClustering`, trained by its own AdamW). The evaluated encoder is the EMA backbone,
 * as in the released CAPI checkpoints.
 *
 * @module
 */
import { tf } from "../engine.ts";
import { assertImageBatch, type EncoderFeatures, type EncoderInfo, type VisionEncoder } from "../encoder.ts";
import type { HostTensor } from "../fixture.ts";
import { constant, defaultBias, normal, truncNormal, xavierUniform, zeros } from "../init.ts";
import type { LossOutput, MimMethod, OptimizerSpec, PreparedBatch } from "../method.ts";
import { patchify } from "../nn/patch_embed.ts";
import { ParamStore } from "../params.ts";
import { Rng } from "../rng.ts";
import { assertTrainable, type CapiConfig, type CapiDims, capiDims } from "./config.ts";
import { clusterAssignments, clusteringLogits, l2NormLinear, meanEntropy, softCrossEntropy } from "./heads.ts";
import { type CapiMasks, sampleCapiMasks } from "./masking.ts";
import { CapiGeometry, evalForward, fullEncode, studentForward } from "./model.ts";
import { capiSchedules, emaUpdate, paramGroupMults } from "./optim.ts";
import { ropeFreqs } from "./rope.ts";

/**
 * A batch with its masks, host-side patches and the teacher's side of the iteration, computed
 * in `prepare` outside the gradient tape: the teacher backbone gets no gradient and the
 * Sinkhorn targets are detached (`.detach()` in the official code), so recording them would
 * only cost memory and a useless backward pass through Sinkhorn.
 */
export interface CapiBatch extends PreparedBatch {
  masks: CapiMasks;
  /** `[B, N, 3p^2]` in Conv2d `(c, py, px)` order. */
  patches: HostTensor<Float32Array>;
  /** Teacher patch features after `enc_norm`, registers dropped: `[B, N, D]`. */
  teacherFeats: tf.Tensor;
  /** Sinkhorn assignments `[B, N, K]`. */
  assignments: tf.Tensor;
  /** Assignments at the predicted positions `[B*nPredict, K]`. */
  targets: tf.Tensor;
  targetEntropy: tf.Scalar;
  dispose(): void;
}

function isCapiBatch(b: PreparedBatch): b is CapiBatch {
  return "masks" in b && "targets" in b;
}

/** Backbone parameter names and initial values (model.py:317-324, 451-463). */
export function initBackbone(c: CapiConfig, d: CapiDims, rng: Rng): Map<string, HostTensor<Float32Array>> {
  const D = c.embedDim, p = c.patchSize, hidden = Math.round(c.mlpRatio * D);
  const out = new Map<string, HostTensor<Float32Array>>();
  const pe = xavierUniform(rng.fork("patch_embed.weight"), [D, 3 * p * p]); // xavier on the (D, 3p^2) view
  out.set("patch_embed.weight", { shape: [D, 3, p, p], data: pe.data });
  out.set("patch_embed.bias", defaultBias(rng.fork("patch_embed.bias"), D, 3 * p * p));
  out.set("registers", normal(rng.fork("registers"), [1, c.nRegisters, D], 0.02));
  out.set("mask_token", normal(rng.fork("mask_token"), [1, D], 0.02));
  for (const [stack, depth] of [["encoder", c.encoderDepth], ["decoder", c.decoderDepth]] as const) {
    for (let i = 0; i < depth; i++) {
      const pre = `${stack}.blocks.${i}.`;
      const lin = (n: string, shape: number[]) => out.set(pre + n, xavierUniform(rng.fork(pre + n), shape));
      out.set(`${pre}residual1.norm.weight`, constant([D], 1));
      for (const n of ["q_proj", "k_proj", "v_proj", "proj"]) lin(`residual1.fn.${n}.weight`, [D, D]);
      out.set(`${pre}residual1.fn.rope.freqs`, ropeFreqs(d.headDim));
      out.set(`${pre}residual2.norm.weight`, constant([D], 1));
      lin("residual2.fn.fc1.weight", [hidden, D]);
      lin("residual2.fn.fc2.weight", [D, hidden]);
    }
  }
  return out;
}

export class CapiMethod implements MimMethod {
  readonly name = "capi" as const;
  readonly config: CapiConfig;
  readonly dims: CapiDims;
  readonly params = new ParamStore();
  readonly optimizers: OptimizerSpec[];
  readonly geometry: CapiGeometry;
  readonly #emaPairs: [tf.Variable, tf.Variable][] = [];

  constructor(config: CapiConfig, seed: number) {
    this.config = config;
    this.dims = capiDims(config);
    assertTrainable(config, this.dims);
    this.geometry = new CapiGeometry(config, this.dims);
    const rng = Rng.from(seed, "capi", "init");
    const K = config.numClusters, D = config.embedDim;
    const student = new Map<string, HostTensor<Float32Array>>();
    for (const [n, t] of initBackbone(config, this.dims, rng.fork("backbone"))) student.set(`backbone.${n}`, t);
    student.set("head.last_layer.weight_g", constant([K, 1], 1));
    student.set("head.last_layer.weight_v", truncNormal(rng.fork("head"), [K, D], 0.02, -2, 2));
    for (const [n, t] of student) {
      const s = this.params.add(`student.${n}`, t, true);
      const e = this.params.add(`ema.${n}`, t, false); // exact copy at init (train_capi.py:167-168)
      this.#emaPairs.push([e, s]);
    }
    this.params.add("teacher_head.layer.weight", normal(rng.fork("teacher_head"), [K, D], 1));
    if (config.clusteringBias) this.params.add("teacher_head.layer.bias", zeros([K]));
    const o = config.optim;
    // RoPE freqs have lr x0: they are left out of the optimizer (no gradient needed); AdamW with
    // lr 0 would leave them unchanged anyway (decoupled decay is scaled by lr).
    const studentNames = [...student.keys()].filter((n) => paramGroupMults(n, o).lrMult > 0);
    this.optimizers = [
      {
        id: "student",
        params: studentNames.map((n) => `student.${n}`),
        betas: o.betas,
        eps: o.eps,
        hyper: (it, name) => {
          const m = paramGroupMults(name.slice("student.".length), o);
          return { lr: capiSchedules(o, it).lr * m.lrMult, weightDecay: o.weightDecay * m.wdMult };
        },
      },
      {
        id: "clustering",
        params: this.params.names().filter((n) => n.startsWith("teacher_head.")),
        betas: o.clusteringBetas,
        eps: o.clusteringEps,
        hyper: (it) => ({ lr: capiSchedules(o, it).clusteringLr, weightDecay: o.clusteringWeightDecay }),
      },
    ];
  }

  prepare(images: HostTensor<Float32Array>, rng: Rng): CapiBatch {
    const { imageH, imageW, gridH, gridW, nMasked, nPredict } = this.dims;
    if (
      images.shape.length !== 4 || images.shape[1] !== 3 || images.shape[2] !== imageH || images.shape[3] !== imageW
    ) {
      throw new Error(`CAPI: images must be [B, 3, ${imageH}, ${imageW}] (config imageSize), got [${images.shape}]`);
    }
    const batch = images.shape[0];
    return this.prepareWithMasks(
      images,
      sampleCapiMasks(rng.fork("capi.mask"), { batch, gridH, gridW, nMasked, nPredict }),
    );
  }

  /** `prepare` with given masks (the parity test feeds the fixture's). */
  prepareWithMasks(images: HostTensor<Float32Array>, masks: CapiMasks): CapiBatch {
    const { nTokens } = this.dims;
    const c = this.config, get = (n: string) => this.params.get(n);
    const batch = images.shape[0];
    const patches = patchify(images, c.patchSize, "chw");
    const [teacherFeats, assignments, targets, targetEntropy] = tf.tidy(() => {
      // Teacher = EMA backbone on the full image, registers dropped (train_capi.py:99).
      const t = fullEncode(
        get,
        "ema.backbone.",
        tf.tensor3d(patches.data, patches.shape as [number, number, number]),
        this.geometry,
      );
      const feats = tf.slice(t.out, [0, c.nRegisters, 0], [batch, nTokens, c.embedDim]); // [B, N, D]
      const logits = clusteringLogits(feats, get("teacher_head.layer.weight"), this.#headBias());
      const a = clusterAssignments(logits, c); // [B, N, K]
      const tg = tf.gather(tf.reshape(a, [-1, c.numClusters]), tf.tensor1d(masks.predictIndices, "int32"));
      return [feats, a, tg, meanEntropy(tg)];
    });
    const owned = [teacherFeats, assignments, targets, targetEntropy];
    return {
      images,
      masks,
      patches,
      teacherFeats,
      assignments,
      targets,
      targetEntropy: targetEntropy as tf.Scalar,
      dispose: () => tf.dispose(owned),
    };
  }

  loss(batch: PreparedBatch, rng: Rng): LossOutput {
    if (!isCapiBatch(batch)) throw new Error("CapiMethod.loss: batch was not prepared by CapiMethod.prepare");
    const c = this.config, g = this.geometry, get = (n: string) => this.params.get(n);
    return tf.tidy(() => {
      // Clustering loss: gradient reaches only the teacher head's weight and bias.
      const logits = clusteringLogits(
        batch.teacherFeats,
        get("teacher_head.layer.weight"),
        this.#headBias(),
      );
      const lossClustering = softCrossEntropy(batch.assignments, logits, c.predTemp);
      const patches = tf.tensor3d(batch.patches.data, batch.patches.shape as [number, number, number]);
      const dp = c.dropPathRate > 0 ? { rate: c.dropPathRate, rng: rng.fork("capi.drop_path") } : undefined;
      const pred = studentForward(get, "student.backbone.", patches, batch.masks, g, { dp });
      const studentLogits = l2NormLinear(
        pred,
        get("student.head.last_layer.weight_v"),
        get("student.head.last_layer.weight_g"),
      );
      const lossCapi = softCrossEntropy(batch.targets, studentLogits, c.studentTemp);
      // The two losses touch disjoint parameters, so one sum gives both gradients.
      return {
        loss: tf.add(lossCapi, lossClustering) as tf.Scalar,
        metrics: {
          loss_capi: lossCapi,
          loss_clustering: lossClustering,
          target_entropy: tf.clone(batch.targetEntropy),
        },
      };
    });
  }

  #headBias(): tf.Tensor | null {
    return this.params.has("teacher_head.layer.bias") ? this.params.get("teacher_head.layer.bias") : null;
  }

  /** EMA of backbone and head from the post-step student (momentum of iteration `it`). */
  afterStep(it: number): void {
    emaUpdate(this.#emaPairs, capiSchedules(this.config.optim, it).momentum);
  }

  logScalars(it: number): Record<string, number> {
    const s = capiSchedules(this.config.optim, it);
    return { lr: s.lr, clustering_lr: s.clusteringLr, momentum: s.momentum };
  }

  encoder(): VisionEncoder {
    return new CapiEncoder(this.params, this.geometry, "ema.backbone.");
  }

  dispose(): void {
    this.params.dispose();
    this.geometry.dispose();
  }
}

/** timm-style name, e.g. `vit_tiny_patch4_32.capi`. */
export function capiArchName(c: CapiConfig, d: CapiDims): string {
  const size = ({ 192: "tiny", 384: "small", 768: "base", 1024: "large" } as Record<number, string>)[c.embedDim] ??
    `d${c.embedDim}`;
  const res = d.imageH === d.imageW ? `${d.imageH}` : `${d.imageH}x${d.imageW}`;
  return `vit_${size}_patch${c.patchSize}_${res}.capi`;
}

/** The frozen CAPI encoder (eval API, model.py:432-448) over a store's backbone under `prefix`. */
export class CapiEncoder implements VisionEncoder {
  readonly info: EncoderInfo;
  constructor(readonly params: ParamStore, readonly geometry: CapiGeometry, readonly prefix: string) {
    const { c, d } = geometry;
    this.info = {
      arch: capiArchName(c, d),
      embedDim: c.embedDim,
      patchSize: c.patchSize,
      imageSize: [d.imageH, d.imageW],
    };
  }

  async encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    assertImageBatch(this.info, images);
    const p = patchify(images, this.info.patchSize, "chw");
    const out = tf.tidy(() => {
      const r = evalForward((n) => this.params.get(n), this.prefix, tf.tensor(p.data, p.shape), this.geometry);
      return [r.global, r.featureMap, r.registers];
    });
    const [global, patches, registers] = await Promise.all(
      out.map(async (t) => ({ shape: [...t.shape], data: (await t.data()) as Float32Array })),
    );
    tf.dispose(out);
    return { global, patches, registers: this.geometry.c.nRegisters > 0 ? registers : null };
  }

  dispose(): void {
    // Shares the method's weights: the method disposes them.
  }
}
