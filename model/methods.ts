/**
 * The method registry: `createMethod(name, config, seed)` builds any registered `MimMethod`
 * from its (unresolved) config, with an exhaustive switch over `MethodName`.
 *
 * @module
 */
import type { MethodName, MimMethod } from "./method.ts";
import { CAPI_PRESETS, CapiConfig, type CapiPreset } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";
import { MAE_OFFICIAL_BATCH, MAE_PRESETS, MaeConfig, type MaePreset } from "./mae/config.ts";
import { MaeMethod } from "./mae/method.ts";
import { SIMMIM_OFFICIAL_BATCH, SIMMIM_PRESETS, SimmimConfig, type SimmimPreset } from "./simmim/config.ts";
import { SimmimMethod } from "./simmim/method.ts";

export interface CreateMethodOptions {
  /** Global batch size (MAE and SimMIM scale their lr by it). */
  batchSize?: number;
}

function describeIssues(e: { issues: { path: PropertyKey[]; message: string }[] }): string {
  return e.issues.map((i) => `  ${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("\n");
}

/** Build method `name` from `config` (validated by the method's zod schema) with parameters from `seed`. */
export function createMethod(
  name: MethodName,
  config: Record<string, unknown>,
  seed: number,
  opts: CreateMethodOptions = {},
): MimMethod {
  switch (name) {
    case "capi": {
      const parsed = CapiConfig.safeParse(config);
      if (!parsed.success) throw new Error(`capi config is invalid:\n${describeIssues(parsed.error)}`);
      return new CapiMethod(parsed.data, seed);
    }
    case "mae": {
      const parsed = MaeConfig.safeParse(config);
      if (!parsed.success) throw new Error(`mae config is invalid:\n${describeIssues(parsed.error)}`);
      return new MaeMethod(parsed.data, { seed, batchSize: opts.batchSize ?? MAE_OFFICIAL_BATCH });
    }
    case "simmim": {
      const parsed = SimmimConfig.safeParse(config);
      if (!parsed.success) throw new Error(`simmim config is invalid:\n${describeIssues(parsed.error)}`);
      return new SimmimMethod(parsed.data, { seed, batchSize: opts.batchSize ?? SIMMIM_OFFICIAL_BATCH });
    }
    default: {
      const never: never = name;
      throw new Error(`createMethod: unknown method '${never}'`);
    }
  }
}

/** A method's preset as an unresolved config (presets only override the schema defaults). */
export function methodPreset(name: MethodName, preset: string): Record<string, unknown> {
  switch (name) {
    case "capi": {
      if (!(preset in CAPI_PRESETS)) {
        throw new Error(
          `--preset: capi has no preset '${preset}'; expected one of ${Object.keys(CAPI_PRESETS).join(", ")}`,
        );
      }
      return structuredClone(CAPI_PRESETS[preset as CapiPreset]) as Record<string, unknown>;
    }
    case "mae": {
      if (!(preset in MAE_PRESETS)) {
        throw new Error(
          `--preset: mae has no preset '${preset}'; expected one of ${Object.keys(MAE_PRESETS).join(", ")}`,
        );
      }
      return structuredClone(MAE_PRESETS[preset as MaePreset]) as Record<string, unknown>;
    }
    case "simmim": {
      if (!(preset in SIMMIM_PRESETS)) {
        throw new Error(
          `--preset: simmim has no preset '${preset}'; expected one of ${Object.keys(SIMMIM_PRESETS).join(", ")}`,
        );
      }
      return structuredClone(SIMMIM_PRESETS[preset as SimmimPreset]) as Record<string, unknown>;
    }
    default: {
      const never: never = name;
      throw new Error(`methodPreset: unknown method '${never}'`);
    }
  }
}
