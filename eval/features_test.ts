/** Feature extraction: batching, mean-patch pooling, label plumbing, cache round trip, sources. */
import assert from "node:assert/strict";
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";
import { type EvalImageSource, extractFeatures, progressLine } from "./features.ts";
import { featureVectors, sourcesFor } from "./feature_sources.ts";

/** Fake encoder: patch token (r, c) of image i has channel j = i + r + 10c + 100j (first pixel = i). */
function fakeEncoder(calls: { n: number }): VisionEncoder {
  return {
    info: { arch: "fake", embedDim: 2, patchSize: 2, imageSize: [4, 6] },
    encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
      calls.n++;
      const b = images.shape[0];
      const patches = new Float32Array(b * 2 * 3 * 2);
      const global = new Float32Array(b * 2);
      for (let i = 0; i < b; i++) {
        const id = images.data[i * 3 * 4 * 6];
        global.set([id, -id], i * 2);
        for (let r = 0; r < 2; r++) {
          for (let c = 0; c < 3; c++) {
            for (let j = 0; j < 2; j++) patches[((i * 2 + r) * 3 + c) * 2 + j] = id + r + 10 * c + 100 * j;
          }
        }
      }
      return Promise.resolve({
        global: { shape: [b, 2], data: global },
        patches: { shape: [b, 2, 3, 2], data: patches },
        registers: null,
      });
    },
    dispose() {},
  };
}

const source: EvalImageSource = {
  id: "synthetic-5",
  length: 5,
  async *batches(size) {
    for (let start = 0; start < 5; start += size) {
      const b = Math.min(size, 5 - start);
      const images = new Float32Array(b * 3 * 4 * 6);
      for (let i = 0; i < b; i++) images[i * 72] = start + i;
      yield {
        images: { shape: [b, 3, 4, 6], data: images },
        labels: Int32Array.from({ length: b }, (_, i) => (start + i) % 2),
      };
    }
  },
};

Deno.test("extractFeatures pools patches, keeps labels, and round-trips through the cache", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const calls = { n: 0 };
    const opts = { batchSize: 2, keepPatches: true, cache: { dir, encoderKey: "abc" }, progress: null };
    const f = await extractFeatures(fakeEncoder(calls), source, opts);
    assert.equal(calls.n, 3);
    // mean over r in {0,1}, c in {0,1,2} of id + r + 10c (+100): id + 0.5 + 10.
    assert.deepEqual([...f.avgPatch.data.subarray(6, 8)], [3 + 10.5, 3 + 110.5]);
    assert.deepEqual([...f.labels!], [0, 1, 0, 1, 0]);
    assert.deepEqual(f.patches!.shape, [5, 2, 3, 2]);
    const again = await extractFeatures(fakeEncoder(calls), source, opts);
    assert.equal(calls.n, 3, "second extraction must be a cache hit");
    assert.deepEqual(again, f);
    assert.ok([...Deno.readDirSync(dir)].every((e) => !e.name.includes(".tmp-")), "no temp files left");
    assert.deepEqual(sourcesFor("capi", f), ["cls", "avg_patch", "cls_avg_patch"]);
    assert.deepEqual(sourcesFor("simmim", f), ["avg_patch"]);
    const cat = featureVectors(f, "cls_avg_patch");
    assert.deepEqual(cat.shape, [5, 4]);
    assert.deepEqual([...cat.data.subarray(4, 8)], [1, -1, 11.5, 111.5]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("progress line shows counts and ETA", () => {
  assert.equal(progressLine("x", 5, 10, 10), "x [############............] 5/10 0.5 img/s elapsed 0:10 ETA 0:10");
});
