/**
 * Loader: batches are byte-identical whatever the concurrency/prefetch, shards partition an
 * epoch, order changes per epoch but not per run, shapes and labels are right, and the data
 * spec parser rejects what it cannot open with a clear message.
 */
import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { Rng } from "../model/rng.ts";
import { parseDataSpec } from "./data_spec.ts";
import { type Batch, DataLoader, epochOrder } from "./loader.ts";
import { ensureSynthetic, openSynthetic } from "./synthetic.ts";
import { normalizeToChw, transformPixels, type TransformSpec } from "./transforms.ts";

const TINY = { trainPerClass: 3, valPerClass: 1, segTrain: 5, segVal: 2 };
const TRAIN: TransformSpec = { kind: "train", size: 16, scale: [0.3, 1], ratio: [3 / 4, 4 / 3], hflip: 0.5 };

async function collect(it: AsyncGenerator<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

async function withSynthetic(fn: (root: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir();
  try {
    await fn(await ensureSynthetic({ root: `${tmp}/s`, config: TINY }));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("batches do not depend on concurrency or prefetch; shapes and labels", async () => {
  await withSynthetic(async (root) => {
    const ds = await openSynthetic(root, "train", "classification");
    const slow = await collect(
      new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3, concurrency: 1, prefetch: 0 }).epoch(1),
    );
    const fast = await collect(
      new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3, concurrency: 16, prefetch: 4 }).epoch(1),
    );
    assertEquals(slow, fast);
    // Options passed as undefined fall back to the defaults (they once stalled the loop).
    const defaults = await collect(
      new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3, concurrency: undefined, prefetch: undefined })
        .epoch(1),
    );
    assertEquals(defaults, slow);
    throws(
      () => new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3, concurrency: 0 }),
      /loader: concurrency must be a positive integer, got 0/,
    );
    assertEquals(new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3 }).batchesPerEpoch, 4);
    assertEquals(new DataLoader(ds, { batchSize: 8, transform: TRAIN, seed: 3, dropLast: true }).batchesPerEpoch, 3);
    assertEquals(slow.map((b) => b.images.shape), [[8, 3, 16, 16], [8, 3, 16, 16], [8, 3, 16, 16], [6, 3, 16, 16]]);
    for (const b of slow) assertEquals(Array.from(b.labels), Array.from(b.indices, (i) => ds.label(i)));
    // Sample k of a batch is exactly transform(seed, epoch, index) of its file.
    const b = slow[1], i = b.indices[2];
    const t = transformPixels(TRAIN, await ds.load(i), Rng.from(3, "aug", 1, i));
    const want = new Float32Array(3 * 16 * 16);
    normalizeToChw(t.image, want);
    assertEquals(b.images.data.subarray(2 * 768, 3 * 768), want);
  });
});

Deno.test("epoch order: seeded per epoch; shards partition it; dropLast keeps shards in step", () => {
  const e0 = epochOrder(23, { seed: 1, epoch: 0 });
  assertEquals(e0, epochOrder(23, { seed: 1, epoch: 0 }));
  notDeepStrictEqual(e0, epochOrder(23, { seed: 1, epoch: 1 }));
  assertEquals([...e0].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
  const shards = [0, 1, 2].map((index) => epochOrder(23, { seed: 1, epoch: 0, shard: { index, count: 3 } }));
  assertEquals(shards.map((s) => s.length), [8, 8, 7]);
  assertEquals(shards.flatMap((s) => [...s]).sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
  assertEquals(shards[1][2], e0[2 * 3 + 1]);
  const dropped = [0, 1, 2].map((index) =>
    epochOrder(23, { seed: 1, epoch: 0, shard: { index, count: 3 }, dropLast: true })
  );
  assertEquals(dropped.map((s) => s.length), [7, 7, 7]);
  assertEquals(epochOrder(5, { seed: 1, epoch: 0, shuffle: false }), Int32Array.from([0, 1, 2, 3, 4]));
  throws(() => epochOrder(5, { seed: 1, epoch: 0, shard: { index: 2, count: 2 } }), /0 <= index < count, got 2\/2/);
});

Deno.test("segmentation batches carry [B, H, W] label maps; eval keeps dataset order", async () => {
  await withSynthetic(async (root) => {
    const seg = await openSynthetic(root, "train", "segmentation");
    const [b] = await collect(
      new DataLoader(seg, {
        batchSize: 5,
        transform: { kind: "segmentation", size: [12, 20] },
        seed: 0,
        shuffle: false,
      }).epoch(0),
    );
    assertEquals([b.images.shape, b.labelMaps!.shape, Array.from(b.indices)], [[5, 3, 12, 20], [5, 12, 20], [
      0,
      1,
      2,
      3,
      4,
    ]]);
    ok(b.labelMaps!.data.every((v) => v <= 6));
    const val = await openSynthetic(root, "val", "classification");
    const batches = await collect(
      new DataLoader(val, { batchSize: 4, transform: { kind: "eval", size: 16 }, seed: 0, shuffle: false }).epoch(0),
    );
    assertEquals(batches.flatMap((x) => Array.from(x.indices)), Array.from({ length: 10 }, (_, i) => i));
  });
});

Deno.test("parseDataSpec: kinds, roots and clear errors", () => {
  assertEquals(parseDataSpec("imagenet:/data/in1k"), { kind: "imagenet", root: "/data/in1k" });
  assertEquals(parseDataSpec("ade20k:/d/ADE:x"), { kind: "ade20k", root: "/d/ADE:x" });
  assertEquals(parseDataSpec("synthetic"), { kind: "synthetic", root: null });
  assertEquals(parseDataSpec("synthetic:/tmp/s"), { kind: "synthetic", root: "/tmp/s" });
  throws(() => parseDataSpec("coco:/x"), /data spec 'coco:\/x': unknown kind 'coco'; expected imagenet:ROOT/);
  throws(() => parseDataSpec("imagenet"), /imagenet needs a folder, e.g. 'imagenet:\/data\/imagenet'/);
});
