/**
 * Which vectors the classification probes read, per method (SPEC 1.10; capi
 * eval_classification.py `pool_representations`):
 * - `cls`: the method's global representation (CAPI `global_repr` = predictor pooling,
 *   MAE the cls token after the final norm);
 * - `avg_patch`: mean of the patch tokens;
 * - `cls_avg_patch`: the two concatenated (CAPI only).
 * SimMIM has no global representation in its official code, so only `avg_patch`.
 * The attentive probe reads all patch tokens instead.
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";
import type { ExtractedFeatures } from "./features.ts";

export const FEATURE_SOURCES = {
  capi: ["cls", "avg_patch", "cls_avg_patch"],
  mae: ["cls", "avg_patch"],
  simmim: ["avg_patch"],
  /** An external encoder: `cls` too when it returns a global representation. */
  external: ["cls", "avg_patch"],
} as const;
export type EvalMethod = keyof typeof FEATURE_SOURCES;
export type FeatureSource = "cls" | "avg_patch" | "cls_avg_patch";

/** The sources a method's probes are trained on, dropping `cls` when there is no global output. */
export function sourcesFor(method: EvalMethod, f: Pick<ExtractedFeatures, "global">): FeatureSource[] {
  return FEATURE_SOURCES[method].filter((s) => f.global !== null || s === "avg_patch");
}

/** The `[N, Din]` vectors of one source. */
export function featureVectors(f: ExtractedFeatures, source: FeatureSource): HostTensor<Float32Array> {
  switch (source) {
    case "avg_patch":
      return f.avgPatch;
    case "cls":
    case "cls_avg_patch": {
      if (!f.global) throw new Error(`feature source '${source}' needs a global representation; this encoder has none`);
      if (source === "cls") return f.global;
      const [n, d1] = f.global.shape, d2 = f.avgPatch.shape[1];
      const out = new Float32Array(n * (d1 + d2));
      for (let i = 0; i < n; i++) {
        out.set(f.global.data.subarray(i * d1, (i + 1) * d1), i * (d1 + d2));
        out.set(f.avgPatch.data.subarray(i * d2, (i + 1) * d2), i * (d1 + d2) + d1);
      }
      return { shape: [n, d1 + d2], data: out };
    }
    default: {
      const never: never = source;
      throw new Error(`unknown feature source '${never}'`);
    }
  }
}

/** Patch tokens `[N, Gh, Gw, D]` as `[N, Gh*Gw, D]` for the attentive probe. */
export function patchTokens(f: ExtractedFeatures): HostTensor<Float32Array> {
  if (!f.patches) throw new Error("attentive probe: patch tokens were not kept (extract with keepPatches: true)");
  const [n, gh, gw, d] = f.patches.shape;
  return { shape: [n, gh * gw, d], data: f.patches.data };
}
