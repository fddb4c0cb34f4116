/**
 * Suite `default`: the benchmark anyone can run, on the embedded synthetic data, tiny models,
 * 2 CPU cores.
 *
 *   deno task bench                     (same as --suite default: engine ort, ep cpu, probes on blas)
 *   deno task leaderboard
 *
 * Matrix: capi, mae, simmim pretrained with the same data and budget, each method's encoder at
 * initialisation (the floor) and raw pixels; tiny preset; 2 seeds; probes kNN, linear, attentive
 * (top-1 on the synthetic classification data) and seg kNN, seg logistic regression (mIoU on
 * the synthetic segmentation data).
 *
 * Expected runtime (measured 2026-12-02 02:07-02:25 UTC on an idle 2-vCPU AMD EPYC VM, commit
 * 581b7a8, `npx -y deno task bench` on a fresh clone with OpenBLAS hidden, i.e. probes on tfjs
 * wasm): 17 min 17 s wall (18.2 CPU-min), npm install from the local cache and synthetic data
 * generation (5 s) included; pretraining on the ort engine at 132-200 img/s (50 x 32 images in
 * 8-12 s), per pretrained cell 77-101 s, per baseline cell 44-76 s, of which the probes on wasm
 * take most: seg_logreg 34-44 s (L-BFGS to convergence, 3 C values), seg_knn 11-17 s, linear
 * 3-16 s. With OpenBLAS (probes on `blas`, same machine, idle, commit 9d5ba42): 6 min 18 s wall
 * (9.2 CPU-min), cells 17-41 s. A re-run with every record present: < 1 s.
 * Same code, same seeds -> identical metrics (checked over all 14 records, and killed-and-resumed
 * vs uninterrupted, v2). Expected numbers (protocol v3, the published records of 9d5ba42, probes on blas; % mean over seeds
 * 0 and 1; chance top-1 = 10; n/m: not measured, a seed's probe did not converge or predicted the
 * majority class everywhere):
 *
 *   subject            knn   linear  attentive  seg_knn mIoU  seg_logreg mIoU
 *   capi               11.3   8.8     9.2       16.2          13.3
 *   mae                 9.7  12.2     7.3       19.6          14.4
 *   simmim             12.2  11.0    10.7       13.7          n/m
 *   random_init.capi   11.7   7.2    10.5       16.0          14.6
 *   random_init.mae    11.7  12.3    10.2       18.8          20.7
 *   random_init.simmim 11.2  10.8    n/m        12.1          n/m
 *   raw_pixels         13.7   9.8     9.0       11.4          n/m
 *
 * The kNN column equals v2's to the digit (the streamed k-NN reproduces the in-memory one); the
 * v2 seg_logreg 12.1 of simmim, random_init.simmim and raw pixels were the majority-class
 * constant, now flagged.
 * At this budget no method is above its own random init and raw pixels beyond the seed spread on
 * classification (all near chance; raw pixels lead kNN), as seen with the official PyTorch code at
 * a similar budget on this CPU; the leaderboard marks such differences as ties. The suite checks
 * that the pipeline runs end to end and is reproducible, not which method is best.
 *
 * @module
 */
import type { DataSpecInput as DataSpec, SuiteInput } from "../suite.ts";
import { ALL_SUBJECTS, classificationProbes, segmentationProbes } from "./common.ts";

/**
 * The generated data live in `.cache/` (never committed); its file-list hash identifies it.
 * Why smaller than the generator's default (2000/500 and 400/100): every one of the 14 cells
 * extracts features of every split, and the whole suite must fit 15 minutes on 2 cores.
 */
const SYNTHETIC = { trainPerClass: 100, valPerClass: 30, segTrain: 200, segVal: 60 };
const synthetic = (kind: "imagenet" | "ade20k", split: "train" | "val"): DataSpec => ({
  kind,
  source: "synthetic",
  root: "auto",
  synthetic: SYNTHETIC,
  split,
  name: kind === "imagenet" ? "synthetic-cls" : "synthetic-seg",
});

/** Probe settings scaled to 2 cores (the eval defaults otherwise; all are in the protocol's identity). */
const CPU_PROBES = { linear: { iterations: 500 }, attentive: { iterations: 100 } };

export const DEFAULT_SUITE: SuiteInput = {
  name: "default",
  description: "embedded synthetic data, tiny models, 2 CPU cores, <= 15 minutes",
  subjects: ALL_SUBJECTS,
  models: [{ preset: "tiny" }],
  // Why this budget: the whole suite must fit 15 minutes on 2 cores (issue 7); pretraining is
  // the dominant cost (3 methods x 2 seeds).
  pretraining: [{ data: synthetic("imagenet", "train"), steps: 50, batchSize: 32 }],
  protocol: {
    id: "mimbench.synthetic_cls_seg",
    // v2: eval/ now shares one seeded holdout split across the classification probes (8595396),
    // which changes the selected hyper-parameters and so the numbers. Bump on every such change.
    // v3: L-BFGS logistic regression, streamed probes, official holdout sizes and segmentation scaler.
    version: 3,
    evalProtocol: "cpu",
    probes: [
      ...classificationProbes(synthetic("imagenet", "train"), synthetic("imagenet", "val"), CPU_PROBES),
      ...segmentationProbes(synthetic("ade20k", "train"), synthetic("ade20k", "val")),
    ],
  },
  // Two seeds is the minimum that shows a spread; the leaderboard never ranks inside it.
  seeds: [0, 1],
  // Pretraining and features on the ort engine (each training step one ONNX graph on onnxruntime's
  // CPU provider: 2-3x less CPU per step than tfjs blas, no system library needed). Probe heads on
  // tfjs blas: wasm with the system BLAS for matrix products (~5x faster attentive probe measured
  // here); without a BLAS library it says so and runs on plain wasm. Runtime knobs: same identity.
  runtime: {
    engine: "ort",
    ep: "cpu",
    backend: "blas",
    evalBatchSize: 64,
    workers: 2,
    logEvery: 10,
    checkpointEvery: 20,
  },
  ci: { shards: 7 },
};
