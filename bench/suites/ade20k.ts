/**
 * Suite `ade20k`: segmentation probes (kNN and logistic regression on frozen patch features,
 * mIoU on ADE20K validation, SPEC 1.10) of ViT-L/14 encoders pretrained on ImageNet-1k with the
 * same budget as `in1k_vit_l14` (the same pretraining identity: finished checkpoints are reused).
 *
 *   IMAGENET_ROOT=/data/imagenet ADE20K_ROOT=/data/ADEChallengeData2016 \
 *     deno task bench --suite ade20k --shard i/n    (engine ort on CUDA; --engine tfjs --backend tensorflow also works)
 *
 * Cost: pretraining as `in1k_vit_l14` (~120,000 GPU-hours, an estimate: see its header), reused
 * when done: its shards hold the same pretrainings as `in1k_vit_l14`'s, so each shard restores
 * their checkpoint cache. Probes, estimate: ViT-L/14 features at ~120 img/s (161 GFLOP/img at
 * 224 px, the fp32 rate measured for PyTorch on an H100) make 22,210 images ~3 min per cell;
 * the kNN over ~5M patches and the logistic-regression solver dominate (unmeasured at this size).
 * CI: 7 shards, one cell each.
 * Expected runtime: pretraining as `in1k_vit_l14` (reused when already done); probes a few
 * GPU-hours per cell (feature extraction on 20,210 + 2,000 images, kNN over ~5M patches).
 * Probes (`paper` protocol, eval/protocols.ts): 224 x 224, StandardScaler, kNN k in {1, 3, 10, 30} x
 * {cosine, L2} on bfloat16 features, logistic regression by cuML's L-BFGS (max_iter 1000, tol
 * 1e-12) for C in 10^linspace(-6, 5, 8). Patch tokens go to a disk store (~21 GB float32 for
 * 20,210 images x 256 x 1024); `evalMemoryBytes` keeps the ~19 GB of standardised training
 * patches on the device (else every L-BFGS evaluation and every k-NN query chunk re-reads them).
 * Expected numbers (capi README, IN-1k pretraining, ViT-L/14): kNN ADE20K mIoU 29.2.
 * Paper Table 7 (LVD-142M pretraining): CAPI kNN 32.5, logreg 37.9; MAE ViT-L/16 kNN 7.8, logreg 27.4.
 *
 * @module
 */
import type { SuiteInput } from "../suite.ts";
import { ade20k, ADE20K_ROOT, ALL_SUBJECTS, imagenet, IMAGENET_ROOT, segmentationProbes } from "./common.ts";

export const ADE20K_SUITE: SuiteInput = {
  name: "ade20k",
  description: "ViT-L/14 pretrained on ImageNet-1k; kNN and logistic-regression segmentation on ADE20K",
  subjects: ALL_SUBJECTS,
  models: [{ preset: "vit_l" }],
  pretraining: [{ data: imagenet(IMAGENET_ROOT, "train"), steps: 500_000, batchSize: 16384 }],
  protocol: {
    id: "mimbench.ade20k_seg",
    // v2: the paper protocol (eval/protocols.ts): the official probe settings, online class probes, L-BFGS.
    version: 2,
    evalProtocol: "paper",
    probes: segmentationProbes(ade20k(ADE20K_ROOT, "train"), ade20k(ADE20K_ROOT, "val")),
  },
  seeds: [0],
  runtime: {
    engine: "ort",
    ep: "cuda",
    backend: "blas",
    batchPerDevice: 64,
    evalBatchSize: 128,
    workers: 8,
    checkpointEvery: 5000,
    evalMemoryBytes: 24 * 2 ** 30,
  },
  ci: { shards: 7 },
};
