/**
 * `deno run -A model/onnx/ort_speed.ts [--preset tiny] [--method capi] [--batch 32] [--threads 2] [--iters 5]`
 *
 * Encoder throughput of the same weights on tfjs (wasm by default, `--backend`) and on
 * onnxruntime-node (exported graph), in images/s, after one warm-up batch each; also checks
 * that both return the same features (max relative error). Numbers for eval/README.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend, parseBackend } from "../engine.ts";
import { createMethod, methodPreset } from "../methods.ts";
import { initialValues, METHOD_NAMES, type MethodName } from "../method.ts";
import { tfEncoder } from "../tf_train_engine.ts";
import { Rng } from "../rng.ts";
import { maxRelErr } from "../parity.ts";
import type { VisionEncoder } from "../encoder.ts";
import { ortEncoderFor } from "./export.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    method: { type: "string", default: "capi" },
    preset: { type: "string", default: "tiny" },
    batch: { type: "string", default: "32" },
    threads: { type: "string", default: "2" },
    iters: { type: "string", default: "5" },
    backend: { type: "string" },
  },
});
if (!(METHOD_NAMES as readonly string[]).includes(values.method!)) throw new Error(`--method: one of ${METHOD_NAMES}`);
const backend = parseBackend(values.backend);
await initBackend(backend);
const method = createMethod(values.method as MethodName, methodPreset(values.method as MethodName, values.preset!), 0);
const params = initialValues(method.stepSpec());
const tfjs = tfEncoder(method, params);
const ort = await ortEncoderFor(method, params, Number(values.threads));
const [h, w] = tfjs.info.imageSize;
const b = Number(values.batch), iters = Number(values.iters);
const images = { shape: [b, 3, h, w], data: Rng.from(0, "speed").fillNormal(new Float32Array(b * 3 * h * w)) };

async function rate(enc: VisionEncoder): Promise<number> {
  await enc.encode(images); // warm-up
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await enc.encode(images);
  return (b * iters) / ((performance.now() - t0) / 1000);
}
const a = await tfjs.encode(images), o = await ort.encode(images);
const err = Math.max(
  maxRelErr(o.patches.data, a.patches.data),
  a.global ? maxRelErr(o.global!.data, a.global.data) : 0,
);
const tfjsRate = await rate(tfjs), ortRate = await rate(ort);
console.log(JSON.stringify({
  arch: tfjs.info.arch,
  batch: b,
  tfjs: { backend, imagesPerSec: +tfjsRate.toFixed(1) },
  ort: { threads: Number(values.threads), imagesPerSec: +ortRate.toFixed(1) },
  speedup: +(ortRate / tfjsRate).toFixed(2),
  maxRelErr: err,
}));
ort.dispose();
tfjs.dispose();
