/**
 * Feature extraction into the sharded disk store: batching, mean-patch pooling, label plumbing,
 * reads of any rows across shard boundaries, the cache round trip, temporary stores removed,
 * and the feature sources built from stored rows.
 */
import assert from "node:assert/strict";
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";
import { type EvalImageSource, extractFeatures, progressLine } from "./features.ts";
import { sourcesFor, tableSourceRows } from "./feature_sources.ts";
import { openFeatureStore } from "./feature_store.ts";

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

Deno.test("extractFeatures writes shards, reads any rows back, and round-trips through the cache", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const calls = { n: 0 };
    // A row is 2 (global) + 2 (avg) + 12 (patches) floats = 64 bytes: 130-byte shards hold 2 images.
    const opts = {
      batchSize: 2,
      keepPatches: true,
      cache: { dir, encoderKey: "abc" },
      progress: null,
      shardBytes: 130,
    };
    const f = await extractFeatures(fakeEncoder(calls), source, opts);
    assert.equal(calls.n, 3);
    assert.equal(f.blockRows, 2, "130-byte shards hold two 64-byte rows");
    // mean over r in {0,1}, c in {0,1,2} of id + r + 10c (+100): id + 0.5 + 10.
    assert.deepEqual([...await f.read("avgPatch", [3])], [3 + 10.5, 3 + 110.5]);
    assert.deepEqual([...f.labels!], [0, 1, 0, 1, 0]);
    assert.deepEqual(f.dims, { global: 2, avgPatch: 2, patches: [2, 3, 2], labelMap: null });
    // Any order, repeats, across shards: global of rows 4, 1, 2, 1 = (id, -id).
    assert.deepEqual([...await f.read("global", [4, 1, 2, 1])], [4, -4, 1, -1, 2, -2, 1, -1]);
    // Into a caller's buffer (reused across batches): a view of its start comes back.
    const buf = new Float32Array(16);
    const view = await f.read("global", [3, 0], buf);
    assert.equal(view.buffer, buf.buffer);
    assert.deepEqual([...view], [3, -3, 0, -0]);
    const p = await f.read("patches", [2]);
    assert.equal(p[1], 2 + 100, "patch (0, 0), channel 1 of image 2");
    await f.close();
    const again = await extractFeatures(fakeEncoder(calls), source, opts);
    assert.equal(calls.n, 3, "second extraction must be a cache hit");
    assert.deepEqual([...await again.read("global", [0, 1, 2, 3, 4])], [...await f.read("global", [0, 1, 2, 3, 4])]);
    const names = [...Deno.readDirSync(dir)].flatMap((e) =>
      [...Deno.readDirSync(`${dir}/${e.name}`)].map((x) => x.name)
    );
    assert.ok(names.every((n) => !n.includes(".tmp-")), "no temp files left");
    assert.ok(names.includes("shard-00002.bin") && names.includes("manifest.json"), names.join(", "));
    assert.equal(await openFeatureStore(again.dir, { other: "key" }), null, "another key is not a hit");
    assert.deepEqual(sourcesFor("capi", true), ["cls", "avg_patch", "cls_avg_patch"]);
    assert.deepEqual(sourcesFor("capi", false), ["avg_patch"]);
    assert.deepEqual([...await tableSourceRows(again, "cls_avg_patch", [1])], [1, -1, 11.5, 111.5]);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a cache folder the store is temporary and close() deletes it", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const t = await extractFeatures(fakeEncoder({ n: 0 }), source, {
      batchSize: 4,
      keepPatches: false,
      tempDir: parent,
      progress: null,
    });
    assert.equal(t.dims.patches, null);
    assert.equal([...Deno.readDirSync(parent)].length, 1);
    await t.close();
    assert.equal([...Deno.readDirSync(parent)].length, 0);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("progress line shows counts and ETA", () => {
  assert.equal(progressLine("x", 5, 10, 10), "x [############............] 5/10 0.5 img/s elapsed 0:10 ETA 0:10");
});
