/**
 * `MicroBatchEncoder`: runs a `VisionEncoder` on at most `maxImages` images a call and
 * concatenates the outputs, so that a large model's activation memory is bounded whatever
 * batch the caller asks for.
 *
 * Why: the tfjs encoders run a whole forward inside one `tf.tidy`, which keeps every block's
 * intermediates alive until the end: measured ~0.69 GB an image for CAPI ViT-L/14 at 224 px
 * (24 encoder blocks + 1 predictor block), on top of 1.2 GB of float32 weights. Evaluating the
 * released ViT-L at eval's default batch 32 would need ~22 GB (and the wasm heap stops at 4 GB).
 * The estimate below is fitted to that measurement; the budget is `MIMBENCH_ENCODE_BUDGET_MB`
 * (default 768).
 *
 * @module
 */
import type { EncoderFeatures, HostTensor, VisionEncoder } from "../model/encoder.ts";

export interface ActivationShape {
  /** Transformer blocks one forward runs (CAPI: encoder depth + 1 predictor block). */
  blocks: number;
  /** Sequence length (patches + registers or cls). */
  tokens: number;
  width: number;
  heads: number;
}

/**
 * Bytes of intermediates one image leaves alive in a whole-forward `tf.tidy`: per block
 * `tokens * 4 * (12 * width + 3 * heads * tokens)` (token-wide tensors and attention maps;
 * fitted to CAPI ViT-L/14 at 224 px: 27.6 MB a block).
 */
export function activationBytesPerImage(a: ActivationShape): number {
  return a.blocks * a.tokens * 4 * (12 * a.width + 3 * a.heads * a.tokens);
}

/** Images a call so that the activations stay within `budgetBytes` (at least 1). */
export function imagesPerCall(a: ActivationShape, budgetBytes: number): number {
  return Math.max(1, Math.floor(budgetBytes / activationBytesPerImage(a)));
}

export function encodeBudgetBytes(): number {
  const mb = Number(Deno.env.get("MIMBENCH_ENCODE_BUDGET_MB") ?? 768);
  if (!(mb > 0)) throw new Error(`MIMBENCH_ENCODE_BUDGET_MB: expected a positive number of MiB, got '${mb}'`);
  return mb * 2 ** 20;
}

function concat(parts: (HostTensor<Float32Array> | null)[]): HostTensor<Float32Array> | null {
  if (parts.some((p) => p === null)) return null;
  const ts = parts as HostTensor<Float32Array>[];
  const data = new Float32Array(ts.reduce((a, t) => a + t.data.length, 0));
  let off = 0;
  for (const t of ts) {
    data.set(t.data, off);
    off += t.data.length;
  }
  return { shape: [ts.reduce((a, t) => a + t.shape[0], 0), ...ts[0].shape.slice(1)], data };
}

export class MicroBatchEncoder implements VisionEncoder {
  constructor(readonly inner: VisionEncoder, readonly maxImages: number) {}

  get info() {
    return this.inner.info;
  }

  async encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    const [b, ...rest] = images.shape;
    if (b <= this.maxImages) return await this.inner.encode(images);
    const per = rest.reduce((x, y) => x * y, 1);
    const outs: EncoderFeatures[] = [];
    for (let i = 0; i < b; i += this.maxImages) {
      const n = Math.min(this.maxImages, b - i);
      outs.push(await this.inner.encode({ shape: [n, ...rest], data: images.data.subarray(i * per, (i + n) * per) }));
    }
    return {
      global: concat(outs.map((o) => o.global)),
      patches: concat(outs.map((o) => o.patches))!,
      registers: concat(outs.map((o) => o.registers)),
    };
  }

  dispose(): void {
    this.inner.dispose();
  }
}
