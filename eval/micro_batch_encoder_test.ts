import assert from "node:assert/strict";
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";
import { activationBytesPerImage, imagesPerCall, MicroBatchEncoder } from "./micro_batch_encoder.ts";

/** An encoder whose features are the image index, recording the batch of every call. */
function fake(calls: number[]): VisionEncoder {
  return {
    info: { arch: "fake", embedDim: 2, patchSize: 1, imageSize: [1, 1] },
    encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
      const b = images.shape[0];
      calls.push(b);
      const v = (k: number) => Float32Array.from({ length: b * k }, (_, i) => images.data[Math.floor(i / k) * 3]);
      return Promise.resolve({
        global: { shape: [b, 2], data: v(2) },
        patches: { shape: [b, 1, 1, 2], data: v(2) },
        registers: null,
      });
    },
    dispose() {},
  };
}

Deno.test("MicroBatchEncoder: splits a batch into calls of at most maxImages and concatenates in order", async () => {
  const calls: number[] = [];
  const enc = new MicroBatchEncoder(fake(calls), 2);
  const images = { shape: [5, 3, 1, 1], data: Float32Array.from({ length: 15 }, (_, i) => Math.floor(i / 3)) };
  const f = await enc.encode(images);
  assert.deepEqual(calls, [2, 2, 1]);
  assert.deepEqual(f.global!.shape, [5, 2]);
  assert.deepEqual(Array.from(f.global!.data), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  assert.deepEqual(f.patches.shape, [5, 1, 1, 2]);
  assert.equal(f.registers, null);
  await enc.encode({ shape: [2, 3, 1, 1], data: new Float32Array(6) });
  assert.deepEqual(calls.slice(3), [2], "a small batch is one call");
});

Deno.test("activationBytesPerImage: fitted to CAPI ViT-L/14 at 224 px (0.69 GB an image measured)", () => {
  const vitL = { blocks: 25, tokens: 272, width: 1024, heads: 16 };
  assert.ok(Math.abs(activationBytesPerImage(vitL) / 1e6 - 690) < 15);
  assert.equal(imagesPerCall(vitL, 768 * 2 ** 20), 1);
  assert.equal(imagesPerCall({ blocks: 3, tokens: 20, width: 16, heads: 2 }, 768 * 2 ** 20), 10_754);
});
