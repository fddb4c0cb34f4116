/**
 * The method registry: `createMethod(name, config, seed)` builds any registered `MimMethod`
 * from its (unresolved) config, with an exhaustive switch over `MethodName`.
 *
 * @module
 */
import type { MethodName, MimMethod } from "./method.ts";
import { CAPI_PRESETS, CapiConfig, type CapiPreset } from "./capi/config.ts";
import { CapiMethod } from "./capi/method.ts";

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
  _opts: CreateMethodOptions = {},
): MimMethod {
  switch (name) {
    case "capi": {
      const parsed = CapiConfig.safeParse(config);
      if (!parsed.success) throw new Error(`capi config is invalid:\n${describeIssues(parsed.error)}`);
      return new CapiMethod(parsed.data, seed);
    }
    case "mae":
      throw new Error("createMethod: method 'mae' is not implemented in the registry yet");
    case "simmim":
      throw new Error("createMethod: method 'simmim' is not implemented in the registry yet");
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
    case "mae":
      throw new Error("methodPreset: method 'mae' is not implemented in the registry yet");
    case "simmim":
      throw new Error("methodPreset: method 'simmim' is not implemented in the registry yet");
    default: {
      const never: never = name;
      throw new Error(`methodPreset: unknown method '${never}'`);
    }
  }
}
