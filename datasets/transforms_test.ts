/**
 * Known-answer tests for the transforms: crop-box arithmetic against hand-worked torchvision
 * cases, pixels against Pillow (testdata/pil_transforms.py), normalisation against numpy
 * float32, and seeding (same (seed, epoch, index) -> same bytes).
 */
import { deepStrictEqual as assertEquals, notDeepStrictEqual } from "node:assert/strict";
import { Rng } from "../model/rng.ts";
import { flipHorizontal, type Pixels, resizeBicubic } from "./resample.ts";
import {
  centerCropBox,
  evalResizeSize,
  normalizeToChw,
  pyRound,
  randomResizedCropBox,
  resizeShortSide,
  transformPixels,
} from "./transforms.ts";

const KA = JSON.parse(Deno.readTextFileSync(new URL("./testdata/pil_transforms.json", import.meta.url)));

function rgbInput(): Pixels {
  const W = 13, H = 11, data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = (x * 37 + y * 91 + c * 53 + x * y * 7) % 256;
    }
  }
  return { width: W, height: H, channels: 3, data };
}

/** Replays fixed draws, in the order torchvision makes them. */
function scripted(uniforms: number[], ints: number[]) {
  return {
    uniform: (lo: number, hi: number) => {
      const v = uniforms.shift()!;
      if (v < lo || v > hi) throw new Error(`scripted uniform ${v} outside [${lo}, ${hi}]`);
      return v;
    },
    int: (lo: number, hi: number) => {
      const v = ints.shift()!;
      if (v < lo || v > hi) throw new Error(`scripted int ${v} outside [${lo}, ${hi}]`);
      return v;
    },
  };
}

Deno.test("pyRound rounds half to even like Python 3", () => {
  assertEquals([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 58.5].map(pyRound), [0, 2, 2, -0, -2, 2, 3, 58]);
});

Deno.test("randomResizedCropBox: first fitting attempt, placed by randint", () => {
  // 100x80, area fraction 0.25 -> 2000 px, log-ratio 0 -> square: w = h = round(44.72) = 45.
  const box = randomResizedCropBox(100, 80, [0.08, 1], [3 / 4, 4 / 3], scripted([0.25, 0], [3, 7]));
  assertEquals(box, { top: 3, left: 7, width: 45, height: 45 });
});

Deno.test("randomResizedCropBox: retries, then falls back to a ratio-clamped center crop", () => {
  // 100x50 (ratio 2): area 1.0 at ratio 4/3 needs h = round(61.2) = 61 > 50, ten times.
  const draws = Array.from({ length: 10 }, () => [1.0, Math.log(4 / 3)]).flat();
  const box = randomResizedCropBox(100, 50, [0.08, 1], [3 / 4, 4 / 3], scripted(draws, []));
  // in_ratio 2 > 4/3: h = 50, w = round(50 * 4/3) = 67, left = (100 - 67) // 2 = 16.
  assertEquals(box, { top: 0, left: 16, width: 67, height: 50 });
  // A tall image falls back to w = width, h = round(w / (3/4)).
  const tall = Array.from({ length: 10 }, () => [1.0, Math.log(3 / 4)]).flat();
  assertEquals(randomResizedCropBox(30, 90, [0.08, 1], [3 / 4, 4 / 3], scripted(tall, [])), {
    top: 25,
    left: 0,
    width: 30,
    height: 40,
  });
});

Deno.test("eval geometry: Resize(256) + CenterCrop(224) on 500x375, half-to-even offsets", () => {
  assertEquals(evalResizeSize(224), 256);
  assertEquals(evalResizeSize(32), 36);
  assertEquals(resizeShortSide(500, 375, 256), [341, 256]);
  assertEquals(resizeShortSide(375, 500, 256), [256, 341]);
  // left = round(117 / 2) = round(58.5) = 58 (Python), not 59.
  assertEquals(centerCropBox(341, 256, 224, 224), { top: 16, left: 58, width: 224, height: 224 });
});

Deno.test("eval transform matches Pillow Resize + CenterCrop", () => {
  // size 8 with cropPct 8/9 -> resize short side to 9 -> 10x9, crop left round(1.0) = 1.
  const { image } = transformPixels({ kind: "eval", size: 8, cropPct: 8 / 9 }, {
    image: rgbInput(),
    labelMap: null,
  }, Rng.from(0));
  assertEquals(Array.from(image.data), KA.eval_8);
});

Deno.test("crop + resize + flip matches Pillow", () => {
  const out = flipHorizontal(resizeBicubic(rgbInput(), { top: 2, left: 3, width: 9, height: 7 }, 6, 4));
  assertEquals(Array.from(out.data), KA.rrc_flip_6x4);
});

Deno.test("normalizeToChw equals ToTensor + Normalize in float32", () => {
  const values = [0, 1, 128, 254, 255];
  const img: Pixels = { width: 5, height: 1, channels: 3, data: new Uint8Array(values.flatMap((v) => [v, v, v])) };
  const out = new Float32Array(16);
  normalizeToChw(img, out, 1);
  assertEquals(out[0], 0);
  for (let c = 0; c < 3; c++) assertEquals(Array.from(out.subarray(1 + c * 5, 1 + c * 5 + 5)), KA.normalize[c]);
});

Deno.test("train transform is seeded per (seed, epoch, index)", () => {
  const spec = {
    kind: "train" as const,
    size: 8,
    scale: [0.2, 1] as [number, number],
    ratio: [3 / 4, 4 / 3] as [number, number],
    hflip: 0.5,
  };
  const run = (...path: number[]) =>
    Array.from(transformPixels(spec, { image: rgbInput(), labelMap: null }, Rng.from(7, "aug", ...path)).image.data);
  assertEquals(run(0, 5), run(0, 5));
  notDeepStrictEqual(run(0, 5), run(1, 5));
  notDeepStrictEqual(run(0, 5), run(0, 6));
});

Deno.test("segmentation transform: bicubic image, nearest labels, same size", () => {
  const labels: Pixels = { width: 13, height: 11, channels: 1, data: new Uint8Array(143).map((_, i) => i % 7) };
  const out = transformPixels(
    { kind: "segmentation", size: [5, 6] },
    { image: rgbInput(), labelMap: labels },
    Rng.from(0),
  );
  assertEquals([out.image.width, out.image.height, out.labelMap!.width, out.labelMap!.height], [6, 5, 6, 5]);
  // Nearest never invents values.
  for (const v of out.labelMap!.data) assertEquals(v < 7, true);
});
