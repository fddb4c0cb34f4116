/**
 * Pillow-exact image resampling on interleaved 8-bit images: bicubic (antialiased, two
 * separable passes with 8-bit rounding in between) and nearest neighbour.
 *
 * Why in JavaScript rather than libvips: torchvision's transforms on PIL images (what the
 * official CAPI/MAE/SimMIM code runs) call `Image.resize`, and reproducing Pillow's
 * fixed-point arithmetic exactly makes our crops byte-identical to the reference pipeline
 * on every platform; libvips' reducer uses other rounding and shrink-on-load. The known
 * answers in `resample_test.ts` were produced by Pillow 9.4 (`Image.resize`).
 *
 * Ported from Pillow `src/libImaging/Resample.c` (precompute_coeffs, normalize_coeffs_8bpc,
 * ImagingResampleHorizontal/Vertical_8bpc) and `Geometry.c` (ImagingScaleAffine).
 *
 * @module
 */

/** An interleaved 8-bit image: `data[(y * width + x) * channels + c]`. */
export interface Pixels {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** A rectangle in pixels: `left, top` inclusive, `width x height`. */
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

// Pillow: PRECISION_BITS = 32 - 8 - 2 (coefficients in fixed point, 22 fractional bits).
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

function bicubicFilter(x: number): number {
  const a = -0.5; // Pillow's (and Catmull-Rom's) a
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  /** [xmin, count] per output pixel. */
  bounds: Int32Array;
  /** Fixed-point weights, `ksize` per output pixel. */
  weights: Int32Array;
}

/** Pillow `precompute_coeffs` + `normalize_coeffs_8bpc` for an input span of `inSize` pixels. */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1); // antialias: widen the kernel when shrinking
  const support = 2 * filterscale; // bicubic support 2
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      k[x] = bicubicFilter((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (let x = 0; x < count; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // C `(int)(±0.5 + w * 2^22)`: truncation toward zero.
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, weights };
}

// v is an integer below 2^30 in the last branch, so the int32 shift is exact.
const clip8 = (v: number) => (v >= ONE * 256 ? 255 : v <= 0 ? 0 : v >> PRECISION_BITS);

/**
 * Crop `box` out of `src` and resize it to `outW x outH` with Pillow's BICUBIC filter,
 * i.e. `img.crop(box).resize((outW, outH), Image.BICUBIC)` (what torchvision's
 * `resized_crop` does on PIL images). Pixels outside the crop are never read.
 */
export function resizeBicubic(src: Pixels, box: Box, outW: number, outH: number): Pixels {
  checkBox(src, box, outW, outH);
  const C = src.channels;
  const needH = outW !== box.width;
  const needV = outH !== box.height;
  const vert = precomputeCoeffs(box.height, outH);
  // Rows of the crop that the vertical pass reads.
  const yFirst = needV ? vert.bounds[0] : 0;
  const yLast = needV ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : box.height;
  // Horizontal pass: [yLast - yFirst, outW, C] (or the crop itself when the width is kept).
  let tmp: Pixels;
  if (needH) {
    const hor = precomputeCoeffs(box.width, outW);
    const rows = yLast - yFirst;
    const out = new Uint8Array(rows * outW * C);
    const { bounds, weights, ksize } = hor;
    const data = src.data;
    for (let y = 0; y < rows; y++) {
      const rowBase = ((box.top + yFirst + y) * src.width + box.left) * C;
      for (let xx = 0; xx < outW; xx++) {
        const count = bounds[xx * 2 + 1], kb = xx * ksize;
        let p = rowBase + bounds[xx * 2] * C;
        const o = (y * outW + xx) * C;
        if (C === 3) {
          // All three channels per tap, as Pillow does (one pass over the weights).
          let s0 = HALF, s1 = HALF, s2 = HALF;
          for (let x = 0; x < count; x++, p += 3) {
            // int32 arithmetic: |255 * w| < 2^30 and Pillow's sums stay below 2^31 (it uses INT32).
            const w = weights[kb + x];
            s0 = (s0 + Math.imul(data[p], w)) | 0;
            s1 = (s1 + Math.imul(data[p + 1], w)) | 0;
            s2 = (s2 + Math.imul(data[p + 2], w)) | 0;
          }
          out[o] = clip8(s0);
          out[o + 1] = clip8(s1);
          out[o + 2] = clip8(s2);
        } else {
          for (let c = 0; c < C; c++) {
            let ss = HALF;
            for (let x = 0; x < count; x++) ss += data[p + x * C + c] * weights[kb + x];
            out[o + c] = clip8(ss);
          }
        }
      }
    }
    tmp = { width: outW, height: rows, channels: C, data: out };
  } else {
    tmp = cropPixels(src, { left: box.left, top: box.top + yFirst, width: box.width, height: yLast - yFirst });
  }
  if (!needV) return tmp;
  // Vertical pass on tmp (its row 0 is crop row yFirst): [outH, outW, C].
  const out = new Uint8Array(outH * outW * C);
  const rowLen = outW * C;
  // Accumulate whole rows tap by tap (sequential memory access); same sums as Pillow's loop.
  const acc = new Int32Array(rowLen);
  const src2 = tmp.data;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vert.bounds[yy * 2] - yFirst, count = vert.bounds[yy * 2 + 1], kb = yy * vert.ksize;
    acc.fill(HALF);
    for (let y = 0; y < count; y++) {
      const w = vert.weights[kb + y], base = (ymin + y) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += Math.imul(src2[base + i], w);
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]);
  }
  return { width: outW, height: outH, channels: C, data: out };
}

/**
 * Crop `box` and resize to `outW x outH` with Pillow's NEAREST filter (the label-map
 * resize of SPEC 1.10). Pillow maps output pixel x to source `floor(x0 + (x + 0.5) * s)`
 * with the position accumulated by repeated addition; we accumulate the same way.
 */
export function resizeNearest(src: Pixels, box: Box, outW: number, outH: number): Pixels {
  checkBox(src, box, outW, outH);
  const C = src.channels;
  if (outW === box.width && outH === box.height) return cropPixels(src, box);
  const sx = box.width / outW, sy = box.height / outH;
  const xin = new Int32Array(outW);
  let xo = sx * 0.5;
  for (let x = 0; x < outW; x++, xo += sx) xin[x] = Math.min(Math.trunc(xo), box.width - 1);
  const out = new Uint8Array(outW * outH * C);
  let yo = sy * 0.5;
  for (let y = 0; y < outH; y++, yo += sy) {
    const yi = Math.min(Math.trunc(yo), box.height - 1);
    const rowBase = ((box.top + yi) * src.width + box.left) * C;
    for (let x = 0; x < outW; x++) {
      for (let c = 0; c < C; c++) out[(y * outW + x) * C + c] = src.data[rowBase + xin[x] * C + c];
    }
  }
  return { width: outW, height: outH, channels: C, data: out };
}

/** Copy of the pixels inside `box`. */
export function cropPixels(src: Pixels, box: Box): Pixels {
  checkBox(src, box, box.width, box.height);
  const C = src.channels;
  const out = new Uint8Array(box.width * box.height * C);
  for (let y = 0; y < box.height; y++) {
    const from = ((box.top + y) * src.width + box.left) * C;
    out.set(src.data.subarray(from, from + box.width * C), y * box.width * C);
  }
  return { width: box.width, height: box.height, channels: C, data: out };
}

/** Mirror left-right in place (torchvision `hflip`). */
export function flipHorizontal(img: Pixels): Pixels {
  const { width: W, height: H, channels: C, data } = img;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W >> 1; x++) {
      const a = (y * W + x) * C, b = (y * W + W - 1 - x) * C;
      for (let c = 0; c < C; c++) {
        const t = data[a + c];
        data[a + c] = data[b + c];
        data[b + c] = t;
      }
    }
  }
  return img;
}

function checkBox(src: Pixels, box: Box, outW: number, outH: number): void {
  const { left, top, width, height } = box;
  if (
    !Number.isInteger(left) || !Number.isInteger(top) || width < 1 || height < 1 || left < 0 || top < 0 ||
    left + width > src.width || top + height > src.height
  ) {
    throw new Error(
      `resample: box ${JSON.stringify(box)} is not an integer box inside the ${src.width}x${src.height} image`,
    );
  }
  if (!(outW >= 1 && outH >= 1 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new Error(`resample: output size must be positive integers, got ${outW}x${outH}`);
  }
}
