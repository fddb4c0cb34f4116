/**
 * Export any registered method's evaluation encoder to ONNX (exhaustive switch over the
 * method name, STYLE rule 5) and open it in onnxruntime: `deno task eval --onnx` runs the
 * probes on these features instead of the tfjs forward.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import type { MimMethod } from "../method.ts";
import { CapiMethod } from "../capi/method.ts";
import { MaeMethod } from "../mae/method.ts";
import { SimmimMethod } from "../simmim/method.ts";
import { exportCapiEncoder } from "./export_capi.ts";
import { exportMaeEncoder } from "./export_mae.ts";
import { exportSimmimEncoder } from "./export_simmim.ts";
import { hostGetter } from "./export_vit.ts";
import { type OnnxAdapterInput, OrtEncoder } from "./ort_encoder.ts";

/**
 * Serialised ONNX encoder of `method` with weights `params` (an engine's `snapshot().params`, a
 * checkpoint's tensors or the initial values) and the adapter that reads it.
 */
export function exportMethodEncoder(
  method: MimMethod,
  params: Map<string, HostTensor<Float32Array>>,
): { model: Uint8Array; adapter: OnnxAdapterInput } {
  const get = hostGetter(params, `${method.name} parameters`);
  const arch = method.encoderInfo.arch;
  const wrong = () => new Error(`exportMethodEncoder: '${method.name}' method is not the registered class`);
  switch (method.name) {
    case "capi":
      if (!(method instanceof CapiMethod)) throw wrong();
      // The evaluated CAPI encoder is the EMA backbone (`encoderPrefix`).
      return exportCapiEncoder(get, method.encoderPrefix, method.config, method.dims, arch);
    case "mae":
      if (!(method instanceof MaeMethod)) throw wrong();
      return exportMaeEncoder(get, method.config, method.dims, arch);
    case "simmim":
      if (!(method instanceof SimmimMethod)) throw wrong();
      return exportSimmimEncoder(get, method.config, method.dims, arch);
    default: {
      const never: never = method.name;
      throw new Error(`exportMethodEncoder: unknown method '${never}'`);
    }
  }
}

/** The ORT encoder of `method` with weights `params`, with `threads` intra-op threads. */
export function ortEncoderFor(
  method: MimMethod,
  params: Map<string, HostTensor<Float32Array>>,
  threads = 2,
): Promise<OrtEncoder> {
  const { model, adapter } = exportMethodEncoder(method, params);
  return OrtEncoder.create(model, { ...adapter, intraOpThreads: threads });
}
