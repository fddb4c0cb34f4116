/**
 * The raw-pixels baseline as a `VisionEncoder`: the normalised image itself is the feature.
 * `global` = the flattened `[3*H*W]` pixels (kNN/linear), `patches` = each patch's pixels in
 * `(c, py, px)` order (`[B, Gh, Gw, 3*p*p]`, attentive and segmentation probes).
 * A representation learner that does not beat this has learnt nothing usable by the probe.
 *
 * @module
 */
import type { EncoderFeatures, EncoderInfo, HostTensor, VisionEncoder } from "../model/encoder.ts";

export class RawPixelEncoder implements VisionEncoder {
  readonly info: EncoderInfo;

  constructor(imageSize: [number, number], patchSize: number) {
    const [h, w] = imageSize;
    if (h % patchSize || w % patchSize) {
      throw new Error(`raw_pixels: image size [${h}, ${w}] is not a multiple of patch size ${patchSize}`);
    }
    this.info = {
      arch: `raw_pixels_patch${patchSize}_${h}x${w}`,
      embedDim: 3 * patchSize * patchSize,
      patchSize,
      imageSize,
    };
  }

  encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    const [b, c, h, w] = images.shape;
    const [eh, ew] = this.info.imageSize;
    if (c !== 3 || h !== eh || w !== ew) {
      return Promise.reject(new Error(`raw_pixels: expected images [B, 3, ${eh}, ${ew}], got [${images.shape}]`));
    }
    const p = this.info.patchSize, gh = h / p, gw = w / p, d = 3 * p * p;
    // [B, 3, Gh, p, Gw, p] -> [B, Gh, Gw, 3, p, p]
    const patches = new Float32Array(b * gh * gw * d);
    let o = 0;
    for (let n = 0; n < b; n++) {
      for (let i = 0; i < gh; i++) {
        for (let j = 0; j < gw; j++) {
          for (let ch = 0; ch < 3; ch++) {
            for (let py = 0; py < p; py++) {
              const src = ((n * 3 + ch) * h + i * p + py) * w + j * p;
              patches.set(images.data.subarray(src, src + p), o);
              o += p;
            }
          }
        }
      }
    }
    return Promise.resolve({
      global: { shape: [b, 3 * h * w], data: images.data.slice() },
      patches: { shape: [b, gh, gw, d], data: patches },
      registers: null,
    });
  }

  dispose(): void {}
}
