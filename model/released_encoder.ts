/**
 * Released weights as a `VisionEncoder`: dispatch over the method to its layout and loader
 * (`model/<method>/checkpoint.ts`), with the architecture from a preset plus overrides (every
 * shape checked against it) or, without a preset, from the tensor shapes.
 *
 * @module
 */
import type { VisionEncoder } from "./encoder.ts";
import type { MethodName } from "./method.ts";
import { methodPreset } from "./methods.ts";
import { CapiConfig } from "./capi/config.ts";
import { capiLayout, loadCapiEncoderFrom } from "./capi/checkpoint.ts";
import { MaeConfig } from "./mae/config.ts";
import { loadMaeEncoderFrom, maeLayout } from "./mae/checkpoint.ts";
import { SimmimConfig } from "./simmim/config.ts";
import { loadSimmimEncoderFrom, simmimLayout } from "./simmim/checkpoint.ts";
import type { Layout, LoadReport } from "./state_dict.ts";
import type { TensorSource } from "./tensor_source.ts";
import type { EngineFactory } from "./train_engine.ts";

export interface ReleasedSpec {
  method: MethodName;
  /** A preset of the method (`vit_l`, `vit_b`, ...); without one the shapes decide. */
  preset?: string;
  /** Config keys replacing the preset's (or the inferred architecture's), e.g. `{"numHeads": 2}`. */
  overrides?: Record<string, unknown>;
  /** Evaluation resolution `[H, W]`; default the config's. */
  imageSize?: [number, number];
  /** The engine that encodes (default: tfjs, each tensor uploaded as it is read). */
  engine?: EngineFactory;
}

const SCHEMAS = { capi: CapiConfig, mae: MaeConfig, simmim: SimmimConfig } as const;

function layoutOf(
  method: MethodName,
  src: TensorSource,
  o: { config?: unknown; configName?: string; imageSize?: [number, number]; numHeads?: number },
): Layout<Record<string, unknown>> {
  switch (method) {
    case "capi":
      return capiLayout(src, { ...o, config: o.config as CapiConfig | undefined });
    case "mae":
      return maeLayout(src, { ...o, config: o.config as MaeConfig | undefined });
    case "simmim":
      return simmimLayout(src, { ...o, config: o.config as SimmimConfig | undefined });
  }
}

/**
 * The architecture stored in the file, as the user specified it: the preset plus `--config`,
 * or the shapes' architecture plus `--config`, or (neither given) undefined: the shapes decide.
 */
function storedConfig(src: TensorSource, spec: ReleasedSpec): { config?: unknown; configName?: string } {
  const o = spec.overrides ?? {};
  const schema = SCHEMAS[spec.method];
  const parse = (v: unknown, name: string) => {
    const r = schema.safeParse(v);
    if (!r.success) {
      const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      throw new Error(`--config for ${spec.method} (${name}): ${issues}`);
    }
    return { config: r.data, configName: name };
  };
  if (spec.preset) {
    const name = `preset ${spec.preset}${spec.overrides ? " with --config" : ""}`;
    return parse({ ...methodPreset(spec.method, spec.preset), ...o }, name);
  }
  if (!spec.overrides) return {};
  const inferred = layoutOf(spec.method, src, { numHeads: o.numHeads as number | undefined }).config;
  return parse({ ...inferred, ...o }, "architecture read from the file, with --config");
}

/** The layout of `spec.method` in `src` (no tensor data is read). */
export function releasedLayout(src: TensorSource, spec: ReleasedSpec): Layout<Record<string, unknown>> {
  return layoutOf(spec.method, src, { ...storedConfig(src, spec), imageSize: spec.imageSize });
}

/** Load the encoder of `spec.method` from `src`. */
export async function loadReleasedEncoder(
  src: TensorSource,
  spec: ReleasedSpec,
): Promise<{ encoder: VisionEncoder; config: Record<string, unknown>; report: LoadReport }> {
  const o = { ...storedConfig(src, spec), imageSize: spec.imageSize, engine: spec.engine };
  switch (spec.method) {
    case "capi":
      return await loadCapiEncoderFrom(src, { ...o, config: o.config as CapiConfig | undefined });
    case "mae":
      return await loadMaeEncoderFrom(src, { ...o, config: o.config as MaeConfig | undefined });
    case "simmim":
      return await loadSimmimEncoderFrom(src, { ...o, config: o.config as SimmimConfig | undefined });
  }
}
