/**
 * Image file decoding and encoding through `npm:sharp` (libvips; needs `--allow-ffi`).
 *
 * Decoding is strict: a corrupt or truncated file throws a `BadSampleError` that names the
 * file, never a silently grey image (libvips' `failOn: "truncated"` level: warnings that
 * ImageNet's few odd JPEGs raise, e.g. CMYK or extraneous bytes, still decode, as in PIL).
 * Images are converted to 8-bit sRGB; EXIF orientation is ignored, as PIL does.
 *
 * @module
 */
import sharp from "sharp";
import type { Pixels } from "./resample.ts";

/** A sample that cannot be used; the message names the file and what was wrong. */
export class BadSampleError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
    this.name = "BadSampleError";
  }
}

function describe(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  if (/no such file|ENOENT|Input file is missing/i.test(msg)) return "file not found";
  return `unreadable or truncated image (${msg.split("\n")[0]})`;
}

/** Decode an image file to interleaved RGB `[H, W, 3]` bytes. */
export async function decodeRgb(path: string): Promise<Pixels> {
  try {
    const { data, info } = await sharp(path, { failOn: "truncated" })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return {
      width: info.width,
      height: info.height,
      channels: 3,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    throw new BadSampleError(path, describe(e));
  }
}

/**
 * Decode a label map (8-bit single-channel PNG, ADE20K's format) to `[H, W]` bytes.
 * A palette or RGB annotation is an error: its colours are not label values.
 */
export async function decodeLabels(path: string): Promise<Pixels> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(path, { failOn: "truncated" }).metadata();
  } catch (e) {
    throw new BadSampleError(path, describe(e));
  }
  if (meta.channels !== 1 || meta.depth !== "uchar" || meta.isPalette) {
    throw new BadSampleError(
      path,
      `annotation must be an 8-bit single-channel image, found ${meta.channels} channel(s) of ${meta.depth}` +
        (meta.isPalette ? " (palette)" : ""),
    );
  }
  try {
    const { data, info } = await sharp(path, { failOn: "truncated" }).extractChannel(0).raw()
      .toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      channels: 1,
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
    };
  } catch (e) {
    throw new BadSampleError(path, describe(e));
  }
}

/** Encode RGB pixels as baseline JPEG (deterministic for fixed input and quality). */
export async function encodeJpeg(img: Pixels, quality = 90): Promise<Uint8Array> {
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels as 3 } })
    .jpeg({ quality })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** Encode a single-channel label map as an 8-bit grayscale PNG (lossless). */
export async function encodePng(img: Pixels): Promise<Uint8Array> {
  if (img.channels !== 1) throw new Error(`encodePng: expected 1 channel, got ${img.channels}`);
  const buf = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } })
    .toColourspace("b-w")
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false })
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}
