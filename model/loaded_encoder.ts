/**
 * An encoder on weights read from a file one tensor at a time (released weights, converted
 * checkpoints): the loader (model/state_dict.ts `loadParams`) hands each tensor to a sink.
 *
 * - tfjs (no `engine` given): each tensor is uploaded into a tfjs variable as it is read and its
 *   host copy dropped, so the whole file never sits in host memory (peak RSS of a ViT-L/14 embed
 *   measured at 2.33x its bf16 file, README).
 * - any other engine (onnxruntime): the tensors are collected as float32 host arrays, which the
 *   engine then holds (its CPU provider feeds them without copying; a GPU provider uploads them).
 *
 * @module
 */
import { EngineEncoder, evalOnlySpec } from "./engine_encoder.ts";
import type { HostTensor } from "./fixture.ts";
import type { EncoderForward } from "./method.ts";
import { ParamStore } from "./params.ts";
import type { LoadReport, ParamSink } from "./state_dict.ts";
import { tfEncoderFromStore } from "./tf_train_engine.ts";
import type { EngineFactory } from "./train_engine.ts";

/**
 * Load weights with `load` (which adds every tensor it reads to `sink`, after checking every
 * shape) into an encoder of `forward()` on `engine`. `forward` is built after the load, so a file
 * that does not fit the expected architecture is reported by the load's shape check first.
 */
export async function loadedEncoder(
  forward: () => EncoderForward,
  load: (sink: ParamSink) => Promise<LoadReport>,
  engine?: EngineFactory,
): Promise<{ encoder: EngineEncoder; report: LoadReport }> {
  if (!engine) {
    const store = new ParamStore();
    try {
      const report = await load(store);
      return { encoder: tfEncoderFromStore(forward(), store), report };
    } catch (e) {
      store.dispose();
      throw e;
    }
  }
  const params = new Map<string, HostTensor<Float32Array>>();
  const report = await load({ add: (name, value) => params.set(name, value) });
  return { encoder: new EngineEncoder(await engine(evalOnlySpec(params)), forward(), true), report };
}
