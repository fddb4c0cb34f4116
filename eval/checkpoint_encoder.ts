/**
 * Open a `VisionEncoder` for evaluation: the one place an encoder is created from a file
 * (a later `--engine` choice switches here).
 *
 * - what `deno task pretrain` wrote (`checkpoint.safetensors`, format `mim-checkpoint-v1`:
 *   official parameter names plus metadata `method` and `identity` holding the resolved
 *   config), on tfjs or, exported from the same weights, on onnxruntime;
 * - released weights (`.pth` in the CAPI / MAE / SimMIM layouts, official-name safetensors,
 *   or what `deno task convert` wrote): `--method` (and `--preset`) say what to build; the
 *   tensors are read lazily and uploaded one at a time;
 * - an external `.onnx` file with an adapter config.
 *
 * @module
 */
import { readSafetensors } from "../model/safetensors.ts";
import { loadReleasedEncoder, type ReleasedSpec } from "../model/released_encoder.ts";
import { describeLoad, type LoadReport } from "../model/state_dict.ts";
import { type ActivationShape, encodeBudgetBytes, imagesPerCall, MicroBatchEncoder } from "./micro_batch_encoder.ts";
import { openTensorSource } from "../model/tensor_source.ts";
import type { HostTensor } from "../model/fixture.ts";
import type { VisionEncoder } from "../model/encoder.ts";
import type { MethodName, MimMethod } from "../model/method.ts";
import { METHOD_NAMES } from "../model/method.ts";
import { createMethod } from "../model/methods.ts";
import { createTfTrainEngine } from "../model/tf_train_engine.ts";
import { EngineEncoder, evalOnlySpec } from "../model/engine_encoder.ts";
import type { StartedEngine } from "../model/engine_choice.ts";
import { OnnxAdapterConfig, OrtEncoder } from "../model/onnx/ort_encoder.ts";
import type { EvalMethod } from "./feature_sources.ts";
import { sha256File } from "../model/sha256.ts";

/** Metadata `format` of `deno task convert` output: released weights under official names. */
export const RELEASED_FORMAT = "mim-released-v1";

export interface OpenedEncoder {
  encoder: VisionEncoder;
  method: EvalMethod;
  /** SHA-256 of the checkpoint file (cache key and record provenance). */
  sha256: string;
  /** Training step recorded in the checkpoint, when known. */
  step: number | null;
  /** Resolved model config from the checkpoint (null for external ONNX). */
  config: Record<string, unknown> | null;
  /** How the file was read: `mim-checkpoint-v1`, `pth-zip`, `pth-legacy`, `safetensors`, `onnx`. */
  format: string;
  /** Released weights: what `load_state_dict(strict=False)` would report. */
  load: LoadReport | null;
  dispose(): void;
}

export interface OpenEncoderOptions {
  /** The engine that encodes (default: tfjs on the current backend). */
  engine?: StartedEngine;
  /** onnxruntime threads of an external ONNX encoder (`--adapter`). */
  threads: number;
  adapterPath?: string;
  /** Released weights: the method, preset and `--config` overrides (from flags, a hub entry, or convert metadata). */
  method?: MethodName;
  preset?: string;
  overrides?: Record<string, unknown>;
  /** Evaluation resolution `[H, W]` for released weights (default: the config's). */
  imageSize?: [number, number];
  log?: (line: string) => void;
}

/** Load `path`: a pretrain checkpoint, released weights, or an external ONNX encoder (needs `adapterPath`). */
export async function openEncoder(path: string, o: OpenEncoderOptions): Promise<OpenedEncoder> {
  const sha256 = await sha256File(path).catch((e) => {
    throw new Error(`--checkpoint ${path}: cannot read (${(e as Error).message})`);
  });
  if (path.endsWith(".onnx")) {
    if (!o.adapterPath) {
      throw new Error(`--checkpoint ${path}: an external ONNX encoder needs --adapter FILE.json naming its outputs`);
    }
    const adapter = OnnxAdapterConfig.parse({
      intraOpThreads: o.threads,
      ...JSON.parse(await Deno.readTextFile(o.adapterPath)),
    });
    const encoder = await OrtEncoder.create(await Deno.readFile(path), adapter);
    return {
      encoder,
      method: "external",
      sha256,
      step: null,
      config: null,
      format: "onnx",
      load: null,
      dispose: () => encoder.dispose(),
    };
  }
  const src = await openTensorSource(path);
  const meta = src.metadata;
  const ours = src.format === "safetensors" && meta.identity !== undefined && meta.format !== RELEASED_FORMAT;
  if (ours) {
    src.close();
    if (o.method && o.method !== meta.method) {
      throw new Error(`--method ${o.method}: ${path} is a '${meta.method}' checkpoint of deno task pretrain`);
    }
    return await openPretrainCheckpoint(path, sha256, o);
  }
  try {
    const converted = meta.format === RELEASED_FORMAT;
    const method = o.method ?? (converted ? meta.method as MethodName : undefined);
    if (!method || !(METHOD_NAMES as readonly string[]).includes(method)) {
      throw new Error(
        `--checkpoint ${path}: released weights (${src.format}, no deno task pretrain metadata) need ` +
          `--method ${METHOD_NAMES.join("|")} and usually --preset (e.g. --method capi --preset vit_l)`,
      );
    }
    const spec: ReleasedSpec = {
      method,
      preset: o.preset ?? (converted && !o.method ? meta.preset || undefined : undefined),
      overrides: o.overrides ?? (converted && !o.method && meta.overrides ? JSON.parse(meta.overrides) : undefined),
      imageSize: o.imageSize,
      // tfjs streams the file into variables by default; another engine takes host arrays.
      engine: o.engine && o.engine.choice.engine !== "tfjs" ? o.engine.factory : undefined,
    };
    const { encoder: full, config, report } = await loadReleasedEncoder(src, spec);
    o.log?.(`${path}: ${src.format}, ${method}${spec.preset ? ` preset ${spec.preset}` : ""}: ${describeLoad(report)}`);
    // Released models are large: bound the activation memory of one call (micro_batch_encoder.ts).
    const encoder = new MicroBatchEncoder(full, imagesPerCall(activationShape(method, config), encodeBudgetBytes()));
    return {
      encoder,
      method,
      sha256,
      step: null,
      config,
      format: src.format,
      load: report,
      dispose: () => encoder.dispose(),
    };
  } finally {
    src.close();
  }
}

/** The forward's size, from a released model's resolved config. */
function activationShape(method: MethodName, c: Record<string, unknown>): ActivationShape {
  const [h, w] = typeof c.imageSize === "number" ? [c.imageSize, c.imageSize] : c.imageSize as [number, number];
  const p = c.patchSize as number, n = (h / p) * (w / p);
  const width = c.embedDim as number, heads = c.numHeads as number;
  if (method === "capi") {
    return { blocks: (c.encoderDepth as number) + 1, tokens: n + (c.nRegisters as number), width, heads };
  }
  return { blocks: c.depth as number, tokens: n + 1, width, heads };
}

async function openPretrainCheckpoint(path: string, sha256: string, o: OpenEncoderOptions): Promise<OpenedEncoder> {
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
  const missing = [...method.stepSpec().params.keys()].filter((n) => !params.has(n));
  if (missing.length) throw new Error(`${path}: checkpoint lacks ${missing.length} parameters, e.g. '${missing[0]}'`);
  const encoder = new EngineEncoder(
    await (o.engine?.factory ?? createTfTrainEngine)(evalOnlySpec(params)),
    method,
    true,
  );
  return {
    encoder,
    method: name as MethodName,
    sha256,
    step: f.metadata.step ? Number(f.metadata.step) : null,
    config: identity.config,
    format: "mim-checkpoint-v1",
    load: null,
    dispose: () => encoder.dispose(),
  };
}
