/**
 * Suite `released`: the published CAPI, MAE and SimMIM weights (issue 14) under the CAPI
 * paper's protocols (SPEC 1.10): ImageNet-1k kNN, linear and attentive probes, ADE20K
 * segmentation kNN and logistic regression, with the authors' numbers beside ours.
 *
 *   IMAGENET_ROOT=/data/imagenet ADE20K_ROOT=/data/ADEChallengeData2016 \
 *     deno task bench --suite released --shard i/n         (engine ort on CUDA; probe heads on tfjs blas)
 *
 * Expected runtime: GPU runners only; each ViT-L/14 cell embeds 1.33M ImageNet images and 22k
 * ADE20K images (~1.7e11 FLOP an image), the weights download once into `.cache/hub`
 * (0.6-2.5 GB a file). Expected numbers (facebookresearch/capi README, ViT-L/14): attentive
 * IN-1k 82.9 / 83.6 / 83.8 / 79.2 and ADE20K kNN mIoU 29.2 / 29.7 / 32.1 / 35.2 for in1k /
 * i22k / lvd / p205 pretraining (the rows' `published` numbers). MAE's own linear probe
 * (BatchNorm + LARS, 90 epochs; mae FINETUNE.md) gives ViT-B 68.0, ViT-L 75.8, ViT-H 76.6: a
 * different protocol from this suite's `linear`, so they are not shown beside its rows; SimMIM
 * publishes fine-tuning numbers only. Our probes are scaled down for CPU by default (each
 * probe's config says how), so expect our numbers below the published ones until the full
 * protocols run.
 *
 * Smoke run here: the tiny released-layout files the tests use and the synthetic data in the
 * ImageNet and ADE20K layouts (`deno task bench` generates it). Measured 2026-12-01 on 2 shared
 * vCPUs (load average ~15 from other jobs): 4 cells in 3 min 54 s wall, 55 s CPU, 395 MB peak
 * RSS; with 16 validation images (all of one class in dataset order) every classification
 * probe scores 100 %, so it checks the plumbing, not the probes:
 *
 *   RELEASED_WEIGHTS=tiny IMAGENET_ROOT=.cache/synthetic-v1/imagenet ADE20K_ROOT=.cache/synthetic-v1/ade20k/ADEChallengeData2016 \
 *     deno task bench --suite released --backend blas --limit-train 64 --limit-val 16 \
 *     --records /tmp/released/runs --out /tmp/released
 *
 * @module
 */
import type { SuiteInput } from "../suite.ts";
import { HUB } from "../hub.ts";
import { ade20k, ADE20K_ROOT, classificationProbes, imagenet, IMAGENET_ROOT, segmentationProbes } from "./common.ts";

type Weights = Extract<SuiteInput["subjects"][number], { kind: "released" }>;

/** The hub entries (bench/hub.ts), with the CAPI README's numbers as `published`. */
export const RELEASED_WEIGHTS: Weights[] = [
  "capi_vitl14_in1k",
  "capi_vitl14_in22k",
  "capi_vitl14_lvd",
  "capi_vitl14_p205",
  "mae_pretrain_vit_base",
  "mae_pretrain_vit_large",
  "mae_pretrain_vit_huge",
  "simmim_pretrain__vit_base__img224__800ep",
].map((name) => {
  const e = HUB[name];
  return { kind: "released", name, method: e.method, checkpoint: name, preset: e.preset, published: e.published ?? {} };
});

const TINY = new URL("../../model/torch/testdata/released/", import.meta.url).pathname;

/** The committed tiny files in the released layouts (architecture from their shapes), for smoke runs. */
export const TINY_RELEASED_WEIGHTS: Weights[] = [
  {
    kind: "released",
    name: "capi_tiny",
    method: "capi",
    checkpoint: `${TINY}capi_tiny.pth`,
    overrides: { imageSize: 16 },
  },
  { kind: "released", name: "mae_tiny", method: "mae", checkpoint: `${TINY}mae_tiny.pth`, overrides: { numHeads: 2 } },
  { kind: "released", name: "simmim_tiny", method: "simmim", checkpoint: `${TINY}simmim_tiny.pth` },
];

/** The suite over `weights` (plus raw pixels, the floor), on the given data folders. */
export function releasedSuite(o: {
  weights: Weights[];
  imagenetRoot: string;
  ade20kRoot: string;
  rawPixelsPreset: string;
}): SuiteInput {
  const train = imagenet(o.imagenetRoot, "train"), val = imagenet(o.imagenetRoot, "val");
  return {
    name: "released",
    description: "published CAPI / MAE / SimMIM weights; IN-1k kNN, linear, attentive; ADE20K seg kNN, logreg",
    subjects: [...o.weights, { kind: "raw_pixels" }],
    // Released rows carry their own preset; this one sizes the raw-pixels floor (224 px, patch 14 for vit_l).
    models: [{ preset: o.rawPixelsPreset }],
    // Nothing is pretrained here: this only names the rows' group.
    pretraining: [{ data: imagenet(o.imagenetRoot, "train", "released"), steps: 1, batchSize: 1 }],
    protocol: {
      id: "mimbench.released",
      version: 1,
      probes: [
        ...classificationProbes(train, val),
        ...segmentationProbes(ade20k(o.ade20kRoot, "train"), ade20k(o.ade20kRoot, "val")),
      ],
    },
    // Released weights are deterministic; probe seeds would only measure the probes' own noise.
    seeds: [0],
    runtime: { engine: "ort", ep: "cuda", backend: "blas", evalBatchSize: 128, workers: 8 },
    // One GPU job per released file (and one for raw pixels): each embeds IN-1k and ADE20K once.
    ci: { shards: o.weights.length + 1 },
  };
}

const tiny = Deno.env.get("RELEASED_WEIGHTS") === "tiny";

export const RELEASED_SUITE: SuiteInput = releasedSuite({
  weights: tiny ? TINY_RELEASED_WEIGHTS : RELEASED_WEIGHTS,
  imagenetRoot: IMAGENET_ROOT,
  ade20kRoot: ADE20K_ROOT,
  rawPixelsPreset: tiny ? "tiny" : "vit_l",
});
