/**
 * The `VisionEncoder` contract: what every evaluation needs from a pretrained model.
 *
 * Async and backend-free: it takes a batch of normalised images as a plain typed array
 * and returns plain typed arrays with explicit shapes, so a tfjs model, an ONNX Runtime
 * session or an external checkpoint all fit (capi: `model.py` `forward` eval API).
 *
 * @module
 */
import type { HostTensor } from "./fixture.ts";

export type { HostTensor };

/** What one forward of a frozen encoder yields for a batch of B images. */
export interface EncoderFeatures {
  /**
   * The method's global representation, `[B, D]`, or `null` when it has none:
   * CAPI `global_repr` (predictor pooling), MAE the cls token after the final norm.
   */
  global: HostTensor<Float32Array> | null;
  /** Patch tokens after the final norm, `[B, Gh, Gw, D]`, row-major over the grid. */
  patches: HostTensor<Float32Array>;
  /** Register tokens after the final norm, `[B, R, D]`, or `null` without registers. */
  registers: HostTensor<Float32Array> | null;
}

/** Static facts about an encoder that probes and records need. */
export interface EncoderInfo {
  /** timm-style architecture name, e.g. `vit_tiny_patch4_32.capi`. */
  arch: string;
  embedDim: number;
  patchSize: number;
  /** Input resolution `[H, W]` the encoder expects. */
  imageSize: [number, number];
}

/** A frozen image encoder. Whoever creates it calls `dispose()`. */
export interface VisionEncoder {
  readonly info: EncoderInfo;
  /** `images`: `[B, 3, H, W]`, ImageNet-normalised, float32. */
  encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures>;
  dispose(): void;
}

/** Throw unless `images` is `[B, 3, H, W]` at the encoder's input size; the message names the encoder. */
export function assertImageBatch(info: EncoderInfo, images: HostTensor<Float32Array>): void {
  const [h, w] = info.imageSize;
  const s = images.shape;
  if (s.length !== 4 || s[1] !== 3 || s[2] !== h || s[3] !== w) {
    throw new Error(`${info.arch}: images [${s}], expected [B, 3, ${h}, ${w}]`);
  }
}
