/**
 * Export any registered method's evaluation encoder to ONNX (exhaustive switch over the
 * method name, STYLE rule 5) and open it in onnxruntime: `deno task eval --onnx` runs the
 * probes on these features instead of the tfjs forward.
 *
 * @module
 */
import type { MimMethod } from "../method.ts";
import { CapiMethod } from "../capi/method.ts";
import { MaeMethod } from "../mae/method.ts";
import { SimmimMethod } from "../simmim/method.ts";
import { exportCapiEncoder } from "./export_capi.ts";
import { exportMaeEncoder } from "./export_mae.ts";
import { exportSimmimEncoder } from "./export_simmim.ts";
import { hostGetter } from "./export_vit.ts";
import { type OnnxAdapterInput, OrtEncoder } from "./ort_encoder.ts";

/** Serialised ONNX encoder of `method` (its current weights) and the adapter that reads it. */
export async function exportMethodEncoder(
  method: MimMethod,
): Promise<{ model: Uint8Array; adapter: OnnxAdapterInput }> {
  const get = hostGetter(await method.params.toHost(), `${method.name} parameters`);
  const enc = method.encoder();
  const arch = enc.info.arch;
  enc.dispose();
  const wrong = () => new Error(`exportMethodEncoder: '${method.name}' method is not the registered class`);
  switch (method.name) {
    case "capi":
      if (!(method instanceof CapiMethod)) throw wrong();
      // The evaluated CAPI encoder is the EMA backbone (model/capi/method.ts `encoder()`).
      return exportCapiEncoder(get, "ema.backbone.", method.config, method.dims, arch);
    case "mae":
      if (!(method instanceof MaeMethod)) throw wrong();
      return exportMaeEncoder(get, method.model.config, method.model.dims, arch);
    case "simmim":
      if (!(method instanceof SimmimMethod)) throw wrong();
      return exportSimmimEncoder(get, method.model.config, method.model.dims, arch);
    default: {
      const never: never = method.name;
      throw new Error(`exportMethodEncoder: unknown method '${never}'`);
    }
  }
}

/** The ORT encoder of `method`, with `threads` intra-op threads. */
export async function ortEncoderFor(method: MimMethod, threads = 2): Promise<OrtEncoder> {
  const { model, adapter } = await exportMethodEncoder(method);
  return OrtEncoder.create(model, { ...adapter, intraOpThreads: threads });
}
