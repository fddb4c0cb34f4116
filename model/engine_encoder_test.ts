/**
 * `EngineEncoder`: every method's `encode` gives the same features on the ONNX engine as on
 * tfjs (the bench's feature path on `runtime.engine: ort`), within float32 noise.
 */
import assert from "node:assert/strict";
import { initBackend } from "./engine.ts";
import { EngineEncoder, evalOnlySpec } from "./engine_encoder.ts";
import type { HostTensor } from "./fixture.ts";
import { initialValues, METHOD_NAMES } from "./method.ts";
import { createMethod, methodPreset } from "./methods.ts";
import { createTfTrainEngine } from "./tf_train_engine.ts";
import { OrtTrainEngine } from "./ops/ort_train_engine.ts";
import { Rng } from "./rng.ts";

await initBackend("cpu");

function scaleRelative(a: HostTensor<Float32Array> | null, b: HostTensor<Float32Array> | null): number {
  assert.ok(a && b, "one engine returned a tensor the other did not");
  assert.deepEqual(a.shape, b.shape);
  let d = 0, s = 0;
  for (let i = 0; i < b.data.length; i++) {
    d = Math.max(d, Math.abs(a.data[i] - b.data[i]));
    s = Math.max(s, Math.abs(b.data[i]));
  }
  return d / s;
}

for (const name of METHOD_NAMES) {
  Deno.test(`${name}: encode on the ort engine equals tfjs (patches, global, registers)`, async () => {
    const method = createMethod(name, methodPreset(name, "tiny"), 0);
    const params = initialValues(method.stepSpec());
    const [h, w] = method.encoderInfo.imageSize;
    const images = { shape: [3, 3, h, w], data: Rng.from(5, "images").fillNormal(new Float32Array(3 * 3 * h * w)) };
    const tf = new EngineEncoder(await createTfTrainEngine(evalOnlySpec(params)), method, true);
    const ort = new EngineEncoder(new OrtTrainEngine(evalOnlySpec(params), { threads: 1 }), method, true);
    try {
      const [a, b] = [await ort.encode(images), await tf.encode(images)];
      assert.ok(scaleRelative(a.patches, b.patches) < 1e-5, `patches ${scaleRelative(a.patches, b.patches)}`);
      if (b.global || a.global) assert.ok(scaleRelative(a.global, b.global) < 1e-5, "global");
      if (b.registers || a.registers) assert.ok(scaleRelative(a.registers, b.registers) < 1e-5, "registers");
    } finally {
      tf.dispose();
      ort.dispose();
    }
  });
}
