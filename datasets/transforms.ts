/**
 * Deterministic image transforms, ported from torchvision (on PIL images, as the official
 * CAPI/MAE/SimMIM code uses them) and seeded per sample:
 *
 * - `train`: RandomResizedCrop(size, scale, ratio, bicubic) -> RandomHorizontalFlip(p) ->
 *   ToTensor -> Normalize(ImageNet mean/std) (SPEC 1.6, 2, 3);
 * - `eval`: Resize(short side, bicubic) -> CenterCrop(size) -> ToTensor -> Normalize (SPEC 1.10);
 * - `segmentation`: image Resize((H, W), bicubic), label map Resize((H, W), nearest) (SPEC 1.10).
 *
 * Randomness comes only from the `Rng` the loader passes, `Rng.from(seed, "aug", epoch,
 * index)`, so a sample's augmentation does not depend on the number of loaders or shards.
 * Output: float32 CHW `[3, H, W]` (and uint8 `[H, W]` labels) written into batch buffers.
 *
 * @module
 */
import { z } from "zod";
import type { Rng } from "../model/rng.ts";
import type { Sample } from "./dataset.ts";
import { type Box, flipHorizontal, type Pixels, resizeBicubic, resizeNearest } from "./resample.ts";

/** ImageNet channel statistics (torchvision / timm IMAGENET_DEFAULT_MEAN, _STD). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

const Size = z.union([z.number().int().positive(), z.tuple([z.number().int().positive(), z.number().int().positive()])])
  .describe("output size: N for N x N, or [H, W]");
const Range = z.tuple([z.number().positive(), z.number().positive()]);

/** Training augmentation (what each method's preset overrides). */
export const AugConfig = z.strictObject({
  size: Size.default(224).describe("crop size in pixels (224 in all three papers)"),
  scale: Range.default([0.08, 1]).describe(
    "RandomResizedCrop area fraction range; torchvision default (0.08, 1); CAPI 0.6-1, MAE 0.2-1, SimMIM 0.67-1",
  ),
  ratio: Range.default([3 / 4, 4 / 3]).describe("aspect-ratio range, sampled log-uniformly (torchvision default)"),
  hflip: z.number().min(0).max(1).default(0.5).describe("horizontal flip probability (RandomHorizontalFlip default)"),
});
export type AugConfig = z.infer<typeof AugConfig>;

/** What the loader applies to every sample. */
export type TransformSpec =
  | ({ kind: "train" } & AugConfig)
  | { kind: "eval"; size: number | [number, number]; cropPct?: number }
  | { kind: "segmentation"; size: number | [number, number] };

/** `[H, W]` of a size given as N or [H, W]. */
export function outputSize(size: number | readonly [number, number]): [number, number] {
  return typeof size === "number" ? [size, size] : [size[0], size[1]];
}

/** Python 3 `round` (half to even), which torchvision's crop arithmetic uses. */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 attempts of (area fraction uniform in
 * `scale`, aspect ratio log-uniform in `ratio`); the first box that fits is placed uniformly;
 * otherwise a center crop clamped to the ratio range.
 */
export function randomResizedCropBox(
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Pick<Rng, "uniform" | "int">,
): Box {
  const area = width * height;
  const logLo = Math.log(ratio[0]), logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = pyRound(Math.sqrt(targetArea * aspect));
    const h = pyRound(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h);
      const left = rng.int(0, width - w);
      return { top, left, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width, h = height;
  if (inRatio < Math.min(...ratio)) h = pyRound(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = pyRound(h * Math.max(...ratio));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), width: w, height: h };
}

/** torchvision `Resize(int)` output size: short side to `short`, long side `int(short * long / short_in)`. */
export function resizeShortSide(width: number, height: number, short: number): [number, number] {
  if (width <= height) return [short, Math.trunc((short * height) / width)];
  return [Math.trunc((short * width) / height), short];
}

/** torchvision `CenterCrop` box (offsets rounded half-to-even, as `int(round(x / 2.0))`). */
export function centerCropBox(width: number, height: number, cropW: number, cropH: number): Box {
  if (cropW > width || cropH > height) {
    throw new Error(`centerCrop: crop ${cropW}x${cropH} is larger than the ${width}x${height} image`);
  }
  return { top: pyRound((height - cropH) / 2), left: pyRound((width - cropW) / 2), width: cropW, height: cropH };
}

/**
 * Eval resize target for crop `size`: `floor(size / cropPct)` (timm's rule; 0.875 gives
 * 256 for 224 as in CAPI's Resize(256)+CenterCrop(224), and 36 for the 32 px default).
 */
export function evalResizeSize(size: number, cropPct = 0.875): number {
  return Math.floor(size / cropPct);
}

// ToTensor + Normalize for one byte value, in torch's float32 arithmetic:
// fround(fround(fround(u / 255) - mean) / std); float32 ops equal double ops rounded once.
const NORMALIZE_LUT: Float32Array[] = [0, 1, 2].map((c) => {
  const lut = new Float32Array(256);
  const mean = Math.fround(IMAGENET_MEAN[c]), std = Math.fround(IMAGENET_STD[c]);
  for (let u = 0; u < 256; u++) lut[u] = Math.fround(Math.fround(u / 255) - mean) / std;
  return lut;
});

/** Write RGB `[H, W, 3]` bytes as normalised float32 `[3, H, W]` at `out[offset..]`. */
export function normalizeToChw(img: Pixels, out: Float32Array, offset = 0): void {
  const n = img.width * img.height;
  if (img.channels !== 3) throw new Error(`normalizeToChw: expected 3 channels, got ${img.channels}`);
  for (let c = 0; c < 3; c++) {
    const lut = NORMALIZE_LUT[c], base = offset + c * n;
    for (let p = 0; p < n; p++) out[base + p] = lut[img.data[p * 3 + c]];
  }
}

/** Image (and label map) after the geometric part of `spec`, before normalisation. */
export function transformPixels(
  spec: TransformSpec,
  sample: Pick<Sample, "image" | "labelMap">,
  rng: Rng,
): { image: Pixels; labelMap: Pixels | null } {
  const { image } = sample;
  const full: Box = { top: 0, left: 0, width: image.width, height: image.height };
  switch (spec.kind) {
    case "train": {
      const [H, W] = outputSize(spec.size);
      const box = randomResizedCropBox(image.width, image.height, spec.scale, spec.ratio, rng.fork("crop"));
      const out = resizeBicubic(image, box, W, H);
      return { image: rng.fork("flip").float() < spec.hflip ? flipHorizontal(out) : out, labelMap: null };
    }
    case "eval": {
      const [H, W] = outputSize(spec.size);
      const [rw, rh] = resizeShortSide(image.width, image.height, evalResizeSize(Math.min(H, W), spec.cropPct));
      const resized = resizeBicubic(image, full, rw, rh);
      return { image: resizeBicubic(resized, centerCropBox(rw, rh, W, H), W, H), labelMap: null };
    }
    case "segmentation": {
      const [H, W] = outputSize(spec.size);
      if (!sample.labelMap) throw new Error("segmentation transform: the sample has no label map");
      return { image: resizeBicubic(image, full, W, H), labelMap: resizeNearest(sample.labelMap, full, W, H) };
    }
  }
}
