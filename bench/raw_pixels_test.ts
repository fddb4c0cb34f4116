/**
 * Known answers for the raw-pixels baseline's patch layout.
 *
 * @module
 */
import assert from "node:assert/strict";
import { RawPixelEncoder } from "./raw_pixels.ts";

Deno.test("RawPixelEncoder: global is the flat image, patches are (c, py, px) per grid cell", async () => {
  const [b, h, w, p] = [2, 4, 6, 2];
  const data = Float32Array.from({ length: b * 3 * h * w }, (_, i) => i);
  const enc = new RawPixelEncoder([h, w], p);
  const out = await enc.encode({ shape: [b, 3, h, w], data });
  assert.deepEqual(out.global!.shape, [b, 3 * h * w]);
  assert.deepEqual([...out.global!.data], [...data]);
  assert.deepEqual(out.patches.shape, [b, 2, 3, 12]);
  // Image 1, grid cell (1, 2): rows 2-3, cols 4-5 of each channel.
  const at = (n: number, c: number, y: number, x: number) => ((n * 3 + c) * h + y) * w + x;
  const want = [0, 1, 2].flatMap((c) => [at(1, c, 2, 4), at(1, c, 2, 5), at(1, c, 3, 4), at(1, c, 3, 5)]);
  const off = ((1 * 2 + 1) * 3 + 2) * 12;
  assert.deepEqual([...out.patches.data.subarray(off, off + 12)], want);
  assert.throws(() => new RawPixelEncoder([5, 6], 2), /not a multiple of patch size 2/);
  await assert.rejects(
    enc.encode({ shape: [1, 3, 4, 4], data: new Float32Array(48) }),
    /expected images \[B, 3, 4, 6\]/,
  );
});
