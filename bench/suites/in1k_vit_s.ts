/**
 * Suite `in1k_vit_s`: ViT-S/16-sized models pretrained on ImageNet-1k, classification probes on
 * ImageNet-1k val. The mid-size setting for a GPU runner fleet.
 *
 *   IMAGENET_ROOT=/data/imagenet deno task bench --suite in1k_vit_s --shard i/n   (engine ort on CUDA)
 *   deno task leaderboard
 *
 * Cost (14 cells; 6 pretrain 100 epochs = 128M images each). Measured: nothing at ViT-S (no GPU
 * runner has run this suite). Estimate, from the one GPU number we have: PyTorch fp32 trained the
 * reference ViT at 18,077 img/s on an H100 (results/gpu, batch 256), ~19 TFLOP/s effective; at that
 * rate ViT-S/16 trains CAPI at ~870 img/s (22 GFLOP/img: student on the 35% visible tokens + 6-block
 * predictor, teacher forward on all), MAE ~510 (38: the official 512x8 decoder dominates), SimMIM
 * ~720 (27), so pretraining is ~41 + 69 + 50 GPU-hours per seed, ~320 GPU-hours for both seeds;
 * features (9 GFLOP/img forward, ~2,150 img/s) ~10 min per cell and split pass. The ORT CUDA
 * engine's real throughput is unmeasured; decoding must keep up: 60-195 img/s per 2 shared cores
 * measured at 224 px (datasets/loader_bench.ts), so ~10-30 cores per GPU.
 * CI: 7 shards (one pretraining each; the longest, MAE, ~69 GPU-hours: resumes across jobs).
 * Expected runtime: not measured yet (no GPU runner with tfjs-node-gpu was available to us);
 * 14 cells (6 of them pretrain 100 epochs of ViT-S: roughly a GPU-day each, an estimate).
 * Probes (`paper` protocol, eval/protocols.ts, the official evaluation's settings): linear and
 * attentive grids (30 classifiers per feature source) trained together on the fly through the
 * frozen encoder, 12,500 iterations x 1024 augmented images (12.8M encoder forwards, ~10 IN-1k
 * epochs) plus the 10% holdout and val; kNN reads extracted features of train + val (1.33M
 * forwards, global and mean-patch vectors only, ~8 GB on disk for D = 384).
 * Expected numbers: none published for CAPI at ViT-S; MAE reports no ViT-S linear probe either,
 * so this suite's first run defines them.
 *
 * @module
 */
import type { SuiteInput } from "../suite.ts";
import { ALL_SUBJECTS, classificationProbes, imagenet, IMAGENET_ROOT } from "./common.ts";

export const IN1K_VIT_S_SUITE: SuiteInput = {
  name: "in1k_vit_s",
  description: "ViT-S on ImageNet-1k, 100 epochs at batch 1024, kNN/linear/attentive on IN-1k val",
  subjects: ALL_SUBJECTS,
  models: [{ preset: "vit_s" }],
  // 100 epochs of 1,281,167 images at global batch 1024 = 125,114 steps.
  pretraining: [{ data: imagenet(IMAGENET_ROOT, "train"), steps: 125_114, batchSize: 1024 }],
  protocol: {
    id: "mimbench.in1k_cls",
    // v2: the paper protocol (eval/protocols.ts): the official probe settings, online class probes, L-BFGS.
    version: 2,
    evalProtocol: "paper",
    probes: classificationProbes(imagenet(IMAGENET_ROOT, "train"), imagenet(IMAGENET_ROOT, "val")),
  },
  seeds: [0, 1],
  runtime: {
    engine: "ort",
    ep: "cuda",
    backend: "blas",
    batchPerDevice: 256,
    evalBatchSize: 256,
    workers: 8,
    checkpointEvery: 2000,
  },
  ci: { shards: 7 },
};
