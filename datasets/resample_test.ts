/**
 * Known-answer tests for the Pillow-exact resamplers: every expected byte was produced by
 * Pillow 9.4 `Image.crop(box).resize(size, BICUBIC | NEAREST)` (testdata/pil_resample.py).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type Box, flipHorizontal, type Pixels, resizeBicubic, resizeNearest } from "./resample.ts";

const KA = JSON.parse(Deno.readTextFileSync(new URL("./testdata/pil_resample.json", import.meta.url))) as Record<
  string,
  number[]
>;

function rgbInput(): Pixels {
  const W = 13, H = 11, data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + x * y * 7) % 256;
    }
  }
  return { width: W, height: H, channels: 3, data };
}

function labelInput(): Pixels {
  const W = 13, H = 11, data = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[y * W + x] = (x * 3 + y * 17) % 151;
  return { width: W, height: H, channels: 1, data };
}

// PIL boxes are (left, upper, right, lower).
const box = (l: number, t: number, r: number, b: number): Box => ({ left: l, top: t, width: r - l, height: b - t });

Deno.test("resizeBicubic matches Pillow BICUBIC (down, up, crop, one axis)", () => {
  const src = rgbInput();
  const cases: [string, Box, number, number][] = [
    ["down_5x7", box(0, 0, 13, 11), 5, 7],
    ["up_20x9", box(0, 0, 13, 11), 20, 9],
    ["crop_2_3_9x6_to_4x4", box(2, 3, 11, 9), 4, 4],
    ["crop_1_0_12x11_to_12x5", box(1, 0, 13, 11), 12, 5],
  ];
  for (const [name, b, w, h] of cases) {
    const out = resizeBicubic(src, b, w, h);
    assertEquals([out.width, out.height, out.channels], [w, h, 3], name);
    assertEquals(Array.from(out.data), KA[name], name);
  }
});

Deno.test("resizeNearest matches Pillow NEAREST", () => {
  const src = labelInput();
  assertEquals(Array.from(resizeNearest(src, box(0, 0, 13, 11), 7, 5).data), KA.nearest_7x5);
  assertEquals(Array.from(resizeNearest(src, box(1, 2, 12, 10), 9, 14).data), KA.nearest_crop_up_9x14);
});

Deno.test("same size is an exact crop; flip mirrors rows", () => {
  const src = rgbInput();
  const same = resizeBicubic(src, box(0, 0, 13, 11), 13, 11);
  assertEquals(same.data, src.data);
  const tiny: Pixels = { width: 3, height: 1, channels: 2, data: new Uint8Array([1, 2, 3, 4, 5, 6]) };
  assertEquals(Array.from(flipHorizontal(tiny).data), [5, 6, 3, 4, 1, 2]);
});
