/**
 * Online class probes (the `paper` way): batches of augmented images go through the encoder in
 * micro-batches; the probe learns from them, and the held-out part and val are encoded with
 * the evaluation transform.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import type { ImageDataset } from "../datasets/dataset.ts";
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";
import { ClassProbeConfig, runClassProbe } from "./class_probe.ts";
import { onlineClassData } from "./class_online.ts";

await initBackend("cpu");

/** `n` solid-colour 12x12 images; class c is mostly channel c (plus a per-image shade). */
function colours(n: number, split: "train" | "val"): ImageDataset {
  const label = (i: number) => i % 3;
  return {
    description: `colours ${split}`,
    task: "classification",
    split,
    length: n,
    numClasses: 3,
    classNames: ["r", "g", "b"],
    ignoreLabels: [],
    expected: null,
    layoutProblems: [],
    path: (i) => `mem://${split}/${i}`,
    label,
    load: (i) => {
      const data = new Uint8Array(12 * 12 * 3);
      for (let p = 0; p < 144; p++) for (let c = 0; c < 3; c++) data[p * 3 + c] = c === label(i) ? 200 : (i * 7) % 60;
      return Promise.resolve({
        index: i,
        path: `mem://${split}/${i}`,
        image: { width: 12, height: 12, channels: 3, data },
        label: label(i),
        labelMap: null,
      });
    },
  };
}

/** Patch token = the 3 channel means of its 4x4 region, plus a constant 4th channel; no global output. */
function meanColourEncoder(calls: number[]): VisionEncoder {
  return {
    info: { arch: "fake_colour", embedDim: 4, patchSize: 4, imageSize: [8, 8] },
    encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
      const b = images.shape[0];
      calls.push(b);
      const patches = new Float32Array(b * 2 * 2 * 4);
      for (let i = 0; i < b; i++) {
        for (let gy = 0; gy < 2; gy++) {
          for (let gx = 0; gx < 2; gx++) {
            const o = ((i * 2 + gy) * 2 + gx) * 4;
            for (let c = 0; c < 3; c++) {
              let s = 0;
              for (let y = 0; y < 4; y++) {
                for (let x = 0; x < 4; x++) s += images.data[((i * 3 + c) * 8 + gy * 4 + y) * 8 + gx * 4 + x];
              }
              patches[o + c] = s / 16;
            }
            patches[o + 3] = 1;
          }
        }
      }
      return Promise.resolve({ global: null, patches: { shape: [b, 2, 2, 4], data: patches }, registers: null });
    },
    dispose() {},
  };
}

Deno.test("online linear probe: augmented batches through the encoder in micro-batches, cls dropped without a global output", async () => {
  const before = tf.memory().numTensors;
  const calls: number[] = [];
  const data = await onlineClassData(meanColourEncoder(calls), colours(60, "train"), colours(30, "val"), [
    "cls",
    "avg_patch",
  ], {
    classes: 3,
    holdoutFraction: 0.1,
    seed: 0,
    batchPerDevice: 4,
    evalBatch: 16,
    cropScale: [0.08, 1],
  });
  assert.deepEqual(Object.keys(data.shapes), ["avg_patch"]);
  assert.equal(data.fitCount, 54);
  // lr 0.5 x 10/256: the batch-scaled lr of a batch of 10.
  const cfg = ClassProbeConfig.parse({ lrs: [0.5], wds: [5e-4], iterations: 30, batchSize: 10, features: "online" });
  const r = await runClassProbe(data, ["avg_patch"], 3, cfg);
  assert.equal(r.selected.top1, 1);
  assert.equal(r.selected.converged, true);
  // 30 training batches of 10 images, encoded at most 4 at a time.
  assert.ok(calls.every((b) => b <= 16), `encoder batches ${[...new Set(calls)]}`);
  assert.ok(calls.filter((b) => b <= 4).length >= 75, "training images go through in micro-batches of 4");
  assert.equal(tf.memory().numTensors, before);
});
