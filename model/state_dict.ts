/**
 * Load a model's parameters from a `TensorSource` the way `load_state_dict(strict=False)`
 * does, one tensor at a time: each tensor is read, converted to float32, uploaded and
 * released before the next, so peak host memory is one tensor, not the file.
 *
 * The model says which names it expects (with shapes) and which of them encoding needs:
 * a needed weight that is missing is an error naming it, a shape mismatch names the key and
 * both shapes; missing weights encoding does not need and unexpected keys are reported.
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";
import { missingTensorError, type TensorSource } from "./tensor_source.ts";

export interface ExpectedParam {
  /** Name in the official state dict, without the file's prefix. */
  name: string;
  /** `null`: any shape (a part the encoder never runs and the architecture does not fix). */
  shape: number[] | null;
  /** `encode`: uploaded; `unused`: expected but never run at evaluation (read only to check its shape). */
  use: "encode" | "unused";
}

/** What a load did, in `load_state_dict` terms. */
export interface LoadReport {
  /** The prefix the model's names sit under in the file (`backbone.`, `model.`, ...). */
  prefix: string;
  /** Tensors uploaded. */
  loaded: number;
  /** Expected names the file lacks; none of them is needed to encode. */
  missing: string[];
  /** Names under the prefix the model does not have (`strict=False` ignores them). */
  unexpected: string[];
  /** Expected names present but not uploaded: evaluation never runs them (e.g. CAPI decoder blocks 1+). */
  unused: string[];
  /** Tensors outside the prefix (optimizer state, other modules), ignored like the official loaders do. */
  ignored: number;
}

export interface LoadOptions {
  /** Says what expects the shapes in errors, e.g. `CAPI ViT-L/14 (preset vit_l)`. */
  model: string;
  /** Store name of an official name (default: the same). */
  storeName?: (name: string) => string;
  /** Replaces a tensor before upload (MAE: `pos_embed` recomputed for another grid). */
  transform?: (name: string, t: HostTensor<Float32Array>) => HostTensor<Float32Array>;
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Where a model's state dict sits in a file, and what it expects there. */
export interface Layout<C> {
  prefix: string;
  config: C;
  expected: ExpectedParam[];
  /** Says what expects the shapes in errors, e.g. `CAPI (preset vit_l)`. */
  model: string;
}

/**
 * Check `expected` against `src` (names under `prefix`) without reading any tensor data:
 * throws for a missing needed weight or a wrong shape, reports the rest.
 */
export function checkParams(src: TensorSource, prefix: string, expected: ExpectedParam[], model: string): LoadReport {
  const report: LoadReport = { prefix, loaded: 0, missing: [], unexpected: [], unused: [], ignored: 0 };
  const known = new Set(expected.map((e) => e.name));
  for (const key of src.tensors.keys()) {
    if (!key.startsWith(prefix)) report.ignored++;
    else if (!known.has(key.slice(prefix.length))) report.unexpected.push(key);
  }
  for (const e of expected) {
    const t = src.tensors.get(prefix + e.name);
    if (!t) {
      if (e.use === "encode") throw missingTensorError(src, prefix + e.name, `${model} weight`);
      report.missing.push(e.name);
    } else if (e.shape && !same(t.shape, e.shape)) {
      throw new Error(
        `${src.path}: '${prefix}${e.name}' has shape [${t.shape}] in the file; ${model} expects [${e.shape}] ` +
          `(wrong --method/--preset, or pass --config to override the architecture)`,
      );
    } else if (e.use === "encode" && !["F32", "F16", "BF16", "F64"].includes(t.dtype)) {
      throw new Error(`${src.path}: '${prefix}${e.name}' is ${t.dtype}; ${model} expects a floating-point weight`);
    } else if (e.use === "unused") report.unused.push(e.name);
  }
  return report;
}

/** Where `loadParams` puts each tensor it reads: a tfjs `ParamStore` (uploads at once), or a host map. */
export interface ParamSink {
  add(name: string, value: HostTensor<Float32Array>, trainable: boolean): unknown;
}

/** Check, then hand the needed tensors of `expected` from `src` to `store`, one at a time. */
export async function loadParams(
  src: TensorSource,
  prefix: string,
  expected: ExpectedParam[],
  store: ParamSink,
  o: LoadOptions,
): Promise<LoadReport> {
  // Every shape is checked before anything is uploaded: a wrong preset fails fast and allocates nothing.
  const report = checkParams(src, prefix, expected, o.model);
  for (const e of expected) {
    const t = src.tensors.get(prefix + e.name);
    if (!t || e.use !== "encode") continue;
    let value = await t.read();
    if (o.transform) value = o.transform(e.name, value);
    store.add(o.storeName ? o.storeName(e.name) : e.name, value, false);
    report.loaded++;
  }
  return report;
}

/** One line for a log: what was loaded, and what `strict=False` would have printed. */
export function describeLoad(r: LoadReport): string {
  const list = (
    xs: string[],
  ) => (xs.length ? `${xs.length} (${xs.slice(0, 3).join(", ")}${xs.length > 3 ? ", ..." : ""})` : "0");
  return `loaded ${r.loaded} tensors under '${r.prefix}'; missing ${list(r.missing)}; unexpected ${
    list(r.unexpected)
  }; not needed to encode ${r.unused.length}; outside the prefix ${r.ignored}`;
}
