/**
 * The two evaluation protocols every probe can run (`--protocol paper|cpu`):
 *
 * - `paper`: the official evaluation code's settings (SPEC 1.10; capi eval_classification.py,
 *   eval_segmentation.py, default_eval_config.yaml): linear and attentive grids of 10 lrs x 3
 *   wds trained 12,500 iterations at batch 1024 on the fly through the frozen encoder with
 *   RandomResizedCrop + flip, at 224 px; segmentation at 224 x 224, k-NN in bfloat16,
 *   logistic regression by L-BFGS to tol 1e-12 (max 1000 iterations). The classification k-NN
 *   is not in capi's code: `paper` uses DINO eval_knn.py's k in {10, 20, 100, 200}, T = 0.07.
 * - `cpu`: each probe's schema defaults, scaled to finish on 2 CPU cores (fewer iterations,
 *   smaller grids and batches, features extracted once at the encoder's own resolution).
 *
 * The protocol id goes into every record next to the resolved config.
 *
 * @module
 */
import { z } from "zod";
import { OFFICIAL_LRS, OFFICIAL_WDS } from "./class_probe.ts";

export const EVAL_PROTOCOLS = ["paper", "cpu"] as const;
export const EvalProtocol = z.enum(EVAL_PROTOCOLS).describe(
  "paper: the official evaluation code's settings; cpu: scaled to finish on 2 CPU cores",
);
export type EvalProtocol = z.infer<typeof EvalProtocol>;

const PAPER_CLASS = {
  lrs: OFFICIAL_LRS,
  wds: OFFICIAL_WDS,
  iterations: 12_500,
  warmupFraction: 0.1, // 1250 of 12500
  batchSize: 1024, // 128 per GPU x 8 GPUs
  holdoutFraction: 0.1,
  features: "online",
  cropScale: [0.08, 1],
  resolution: 224,
};

/** The `paper` protocol's settings per probe (the `cpu` protocol is every schema's defaults). */
export const PAPER_SETTINGS = {
  linear: PAPER_CLASS,
  attentive: PAPER_CLASS,
  // chunk: 8192 queries per pass over the streamed database (ImageNet train: 7 passes for val, not 49).
  knn: { ks: [10, 20, 100, 200], temperature: 0.07, holdoutFraction: 0.1, chunk: 8192 },
  seg_knn: {
    ks: [1, 3, 10, 30],
    distances: ["cosine", "l2"],
    standardize: true,
    dtype: "bfloat16",
    resolution: 224,
    holdoutFraction: 0.1,
  },
  seg_logreg: {
    cs: Array.from({ length: 8 }, (_, i) => 10 ** (-6 + (11 * i) / 7)),
    maxIter: 1000,
    tol: 1e-12,
    lbfgsMemory: 5,
    linesearchMaxIter: 50,
    standardize: true,
    resolution: 224,
    holdoutFraction: 0.1,
    selectFrom: "all",
  },
} as const;

/** The settings a probe starts from under `protocol`, before the caller's overrides. */
export function protocolSettings(probe: keyof typeof PAPER_SETTINGS, protocol: EvalProtocol): Record<string, unknown> {
  return protocol === "paper" ? { ...PAPER_SETTINGS[probe] } : {};
}

/** Parse `--protocol`; the error lists the valid ids. */
export function parseProtocol(text: string | undefined): EvalProtocol {
  const r = EvalProtocol.safeParse(text ?? "cpu");
  if (!r.success) {
    throw new Error(`--protocol: unknown protocol '${text}'; expected one of ${EVAL_PROTOCOLS.join(", ")}`);
  }
  return r.data;
}
