/**
 * What `--checkpoint X` names, for `deno task eval`, `embed` and `convert`, checked before
 * anything else is opened:
 *
 * - a file: this suite's safetensors, a released `.pth`/`.pt`, official-name safetensors, `.onnx`;
 * - a run directory of `deno task pretrain --out DIR`: its `checkpoint.safetensors`;
 * - a hub name (`capi_vitl14_in1k`, `mae_pretrain_vit_base`, ...: `bench/hub.ts`): downloaded
 *   once into the cache; its method and preset become the defaults of `--method`/`--preset`.
 *
 * @module
 */
import { join } from "node:path";
import { METHOD_NAMES, type MethodName } from "../model/method.ts";
import { HUB, hubCheckpoint, type HubEntry } from "./hub.ts";

/** The file a pretrain run directory keeps its checkpoint in (model/trainer.ts). */
export const RUN_CHECKPOINT = "checkpoint.safetensors";

export interface ResolvedCheckpoint {
  /** The file to open. */
  path: string;
  /** How `--checkpoint` was given: `file`, `run-dir` or `hub`. */
  kind: "file" | "run-dir" | "hub";
  /** For hub names: the entry (method, preset, URL, published numbers) and the recorded hash. */
  hub?: { name: string; entry: HubEntry; sha256: string };
  method?: MethodName;
  preset?: string;
}

/** Resolve `arg` (see the module doc); `flag` names the option in errors. */
export async function resolveCheckpoint(
  arg: string,
  o: { hubCache?: string; hubUrls?: Record<string, string>; flag?: string; fetch?: typeof fetch } = {},
): Promise<ResolvedCheckpoint> {
  const flag = o.flag ?? "--checkpoint";
  const stat = await Deno.stat(arg).catch(() => null);
  if (stat?.isDirectory) {
    const path = join(arg, RUN_CHECKPOINT);
    if (!(await Deno.stat(path).then((s) => s.isFile, () => false))) {
      throw new Error(
        `${flag} ${arg}: a directory without ${RUN_CHECKPOINT}; expected a file or a run directory of ` +
          `'deno task pretrain --out DIR' (has it written its first checkpoint yet?)`,
      );
    }
    return { path, kind: "run-dir" };
  }
  if (stat?.isFile) return { path: arg, kind: "file" };
  if (HUB[arg]) {
    const { path, entry, record } = await hubCheckpoint(arg, { cacheDir: o.hubCache, urls: o.hubUrls, fetch: o.fetch });
    return {
      path,
      kind: "hub",
      hub: { name: arg, entry, sha256: record.sha256 },
      method: entry.method,
      preset: entry.preset,
    };
  }
  throw new Error(
    `${flag} ${arg}: no such file or directory, and not a hub name (hub names: ${Object.keys(HUB).join(", ")})`,
  );
}

/** `--method`: one of the registered methods. */
export function parseMethod(v: string | undefined): MethodName | undefined {
  if (v === undefined) return undefined;
  if (!(METHOD_NAMES as readonly string[]).includes(v)) {
    throw new Error(`--method: expected one of ${METHOD_NAMES.join(", ")}, got '${v}'`);
  }
  return v as MethodName;
}

/** `--config`: a JSON object of config keys replacing the preset's. */
export function parseConfigFlag(v: string | undefined): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (e) {
    throw new Error(`--config: not JSON (${(e as Error).message}); expected e.g. '{"numHeads": 2}'`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error(`--config: expected a JSON object of config keys, got ${v}`);
  }
  return parsed as Record<string, unknown>;
}
