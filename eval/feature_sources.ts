/**
 * Which vectors the classification probes read, per method (SPEC 1.10; capi
 * eval_classification.py `BackboneWrapper`):
 * - `cls`: the method's global representation (CAPI `global_repr` = predictor pooling,
 *   MAE the cls token after the final norm);
 * - `avg_patch`: mean of the patch tokens;
 * - `cls_avg_patch`: the two concatenated (CAPI only);
 * - `patch`: all patch tokens `[N, D]` per image, for the attentive probe.
 * SimMIM has no global representation in its official code, so only `avg_patch`.
 *
 * @module
 */
import type { EncoderFeatures } from "../model/encoder.ts";
import { type FeatureTable, outputBuffer } from "./feature_table.ts";
import { meanPatch } from "./features.ts";

export const FEATURE_SOURCES = {
  capi: ["cls", "avg_patch", "cls_avg_patch"],
  mae: ["cls", "avg_patch"],
  simmim: ["avg_patch"],
  /** An external encoder: `cls` too when it returns a global representation. */
  external: ["cls", "avg_patch"],
} as const;
export type EvalMethod = keyof typeof FEATURE_SOURCES;
export type FeatureSource = "cls" | "avg_patch" | "cls_avg_patch" | "patch";

/** The sources a method's linear probes are trained on, dropping `cls` when there is no global output. */
export function sourcesFor(method: EvalMethod, hasGlobal: boolean): FeatureSource[] {
  return FEATURE_SOURCES[method].filter((s) => hasGlobal || s === "avg_patch");
}

/** Row shape of a source: `[Din]` for the linear sources, `[tokens, D]` for `patch`. */
export function sourceShape(
  source: FeatureSource,
  dims: { global: number | null; avgPatch: number; patches: [number, number, number] | null },
): number[] {
  const needGlobal = () => {
    if (dims.global === null) throw new Error(`feature source '${source}' needs a global representation; none here`);
    return dims.global;
  };
  switch (source) {
    case "avg_patch":
      return [dims.avgPatch];
    case "cls":
      return [needGlobal()];
    case "cls_avg_patch":
      return [needGlobal() + dims.avgPatch];
    case "patch": {
      if (!dims.patches) throw new Error("feature source 'patch' needs the patch tokens (extract with keepPatches)");
      const [gh, gw, d] = dims.patches;
      return [gh * gw, d];
    }
  }
}

/** Concatenate two row-major arrays row by row: `[n, a] ++ [n, b] -> [n, a + b]` (into `into` when long enough). */
function concatRows(a: Float32Array, b: Float32Array, n: number, into?: Float32Array): Float32Array {
  const da = a.length / n, db = b.length / n;
  const out = outputBuffer(Float32Array, n * (da + db), into);
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * da, (i + 1) * da), i * (da + db));
    out.set(b.subarray(i * db, (i + 1) * db), i * (da + db) + da);
  }
  return out;
}

/** Reusable buffers for `tableSourceRows` (one reader's; the returned rows are valid until its next call). */
export type SourceScratch = Partial<Record<FeatureSource | "global" | "avgPatch", Float32Array>>;

/** Rows `rows` of `source` read from a table, row-major (into `scratch`'s buffers when given). */
export async function tableSourceRows(
  t: FeatureTable,
  source: FeatureSource,
  rows: ArrayLike<number>,
  scratch?: SourceScratch,
): Promise<Float32Array> {
  const keep = (k: keyof SourceScratch, a: Float32Array) => {
    if (scratch && (scratch[k]?.length ?? 0) < a.length) scratch[k] = a;
    return a;
  };
  switch (source) {
    case "avg_patch":
      return keep(source, await t.read("avgPatch", rows, scratch?.[source]));
    case "cls":
      return keep(source, await t.read("global", rows, scratch?.[source]));
    case "cls_avg_patch": {
      const g = keep("global", await t.read("global", rows, scratch?.global));
      const a = keep("avgPatch", await t.read("avgPatch", rows, scratch?.avgPatch));
      return keep(source, concatRows(g, a, rows.length, scratch?.[source]));
    }
    case "patch":
      return keep(source, await t.read("patches", rows, scratch?.[source]));
  }
}

/** The rows of `source` from one encoder forward (`b` images). */
export function encoderSourceRows(f: EncoderFeatures, source: FeatureSource): Float32Array {
  const b = f.patches.shape[0];
  const global = () => {
    if (!f.global) throw new Error(`feature source '${source}' needs a global representation; the encoder has none`);
    return f.global.data;
  };
  switch (source) {
    case "avg_patch":
      return meanPatch(f.patches);
    case "cls":
      return global();
    case "cls_avg_patch":
      return concatRows(global(), meanPatch(f.patches), b);
    case "patch":
      return f.patches.data;
  }
}
