/**
 * Open a `VisionEncoder` for evaluation from what `deno task pretrain` wrote
 * (`checkpoint.safetensors`, format `mim-checkpoint-v1`: official parameter names plus
 * metadata `method` and `identity` holding the resolved config), on tfjs or, exported from
 * the same weights, on onnxruntime; or from an external `.onnx` file with an adapter config.
 *
 * @module
 */
import { readSafetensors } from "../model/safetensors.ts";
import type { HostTensor } from "../model/fixture.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import type { MethodName, MimMethod } from "../model/method.ts";
import { METHOD_NAMES } from "../model/method.ts";
import { createMethod } from "../model/methods.ts";
import { ortEncoderFor } from "../model/onnx/export.ts";
import { OnnxAdapterConfig, OrtEncoder } from "../model/onnx/ort_encoder.ts";
import type { EvalMethod } from "./feature_sources.ts";
import { sha256Hex } from "../model/sha256.ts";

export interface OpenedEncoder {
  encoder: VisionEncoder;
  method: EvalMethod;
  /** SHA-256 of the checkpoint file (cache key and record provenance). */
  sha256: string;
  /** Training step recorded in the checkpoint, when known. */
  step: number | null;
  /** Resolved model config from the checkpoint (null for external ONNX). */
  config: Record<string, unknown> | null;
  dispose(): void;
}

/** Load `path`: a pretrain checkpoint (`.safetensors`) or an external ONNX encoder (needs `adapterPath`). */
export async function openEncoder(
  path: string,
  o: { onnx: boolean; threads: number; adapterPath?: string },
): Promise<OpenedEncoder> {
  const bytes = await Deno.readFile(path).catch((e) => {
    throw new Error(`--checkpoint ${path}: cannot read (${(e as Error).message})`);
  });
  const sha256 = await sha256Hex(bytes);
  if (path.endsWith(".onnx")) {
    if (!o.adapterPath) {
      throw new Error(`--checkpoint ${path}: an external ONNX encoder needs --adapter FILE.json naming its outputs`);
    }
    const adapter = OnnxAdapterConfig.parse({
      intraOpThreads: o.threads,
      ...JSON.parse(await Deno.readTextFile(o.adapterPath)),
    });
    const encoder = await OrtEncoder.create(bytes, adapter);
    return { encoder, method: "external", sha256, step: null, config: null, dispose: () => encoder.dispose() };
  }
  const f = await readSafetensors(path);
  const name = f.metadata.method;
  if (!(METHOD_NAMES as readonly string[]).includes(name ?? "")) {
    throw new Error(`${path}: metadata 'method' is '${name}', expected one of ${METHOD_NAMES.join(", ")}`);
  }
  let identity: { config?: Record<string, unknown>; seed?: number; batch?: number };
  try {
    identity = JSON.parse(f.metadata.identity ?? "");
  } catch {
    throw new Error(`${path}: metadata 'identity' is missing or not JSON (not written by deno task pretrain?)`);
  }
  if (!identity.config) throw new Error(`${path}: metadata 'identity' has no 'config'`);
  const method: MimMethod = createMethod(name as MethodName, identity.config, identity.seed ?? 0, {
    batchSize: identity.batch,
  });
  const params = new Map<string, HostTensor<Float32Array>>();
  for (const [k, t] of f.tensors) {
    if (k.startsWith("optim.")) continue;
    if (!(t.data instanceof Float32Array)) throw new Error(`${path}: tensor '${k}' is not float32`);
    params.set(k, t as HostTensor<Float32Array>);
  }
  const missing = method.params.names().filter((n) => !params.has(n));
  if (missing.length) throw new Error(`${path}: checkpoint lacks ${missing.length} parameters, e.g. '${missing[0]}'`);
  method.params.assign(params);
  const encoder = o.onnx ? await ortEncoderFor(method, o.threads) : method.encoder();
  return {
    encoder,
    method: name as MethodName,
    sha256,
    step: f.metadata.step ? Number(f.metadata.step) : null,
    config: identity.config,
    dispose: () => {
      encoder.dispose();
      method.dispose();
    },
  };
}
