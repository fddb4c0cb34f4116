/**
 * `OrtEncoder`: a `VisionEncoder` backed by an onnxruntime-node session (loaded under Deno
 * through Node-API). It runs our exported encoders (export_*.ts) and external ONNX encoders
 * (e.g. an official checkpoint exported from PyTorch) through one adapter config that names
 * the graph's input and outputs and says how the patch tokens are laid out.
 *
 * The session is released on `dispose()`; intra-op threads are configurable (default 2,
 * the CPU budget of the benchmark machine).
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { z } from "zod";
import {
  assertImageBatch,
  type EncoderFeatures,
  type EncoderInfo,
  type HostTensor,
  type VisionEncoder,
} from "../encoder.ts";

export const OnnxAdapterConfig = z.strictObject({
  arch: z.string().min(1).describe("timm-style name recorded with results, e.g. vit_large_patch14_224.capi_in22k"),
  input: z.string().default("images").describe("graph input taking [B, 3, H, W] ImageNet-normalised float32"),
  outputs: z.strictObject({
    global: z.string().nullable().default(null).describe("output holding the [B, D] global representation, or null"),
    patches: z.string().default("patches").describe("output holding the patch tokens"),
    registers: z.string().nullable().default(null).describe("output holding [B, R, D] registers, or null"),
  }).default({ global: null, patches: "patches", registers: null }),
  patchLayout: z.enum(["bhwd", "bld", "bdhw"]).default("bhwd")
    .describe(
      "patch output layout: [B,Gh,Gw,D], token sequence [B,L,D] (row-major grid), or channel-first [B,D,Gh,Gw]",
    ),
  prefixTokens: z.number().int().nonnegative().default(0)
    .describe("tokens to drop from the front of a 'bld' output (cls + registers of a full-sequence export)"),
  imageSize: z.tuple([z.number().int().positive(), z.number().int().positive()]).describe("[H, W] the graph expects"),
  patchSize: z.number().int().positive(),
  embedDim: z.number().int().positive(),
  intraOpThreads: z.number().int().positive().default(2).describe("onnxruntime intra-op threads (2-core machine)"),
});
export type OnnxAdapterConfig = z.infer<typeof OnnxAdapterConfig>;
export type OnnxAdapterInput = z.input<typeof OnnxAdapterConfig>;

function hostOf(t: ort.Tensor, name: string): HostTensor<Float32Array> {
  if (t.type !== "float32") throw new Error(`onnx encoder: output '${name}' is ${t.type}, expected float32`);
  return { shape: t.dims.map(Number), data: t.data as Float32Array };
}

export class OrtEncoder implements VisionEncoder {
  readonly info: EncoderInfo;
  readonly adapter: OnnxAdapterConfig;
  #session: ort.InferenceSession | null;

  private constructor(session: ort.InferenceSession, adapter: OnnxAdapterConfig) {
    this.#session = session;
    this.adapter = adapter;
    this.info = {
      arch: adapter.arch,
      embedDim: adapter.embedDim,
      patchSize: adapter.patchSize,
      imageSize: adapter.imageSize,
    };
  }

  /** Open a session on an ONNX file path or serialised model bytes. */
  static async create(model: string | Uint8Array, adapter: OnnxAdapterInput): Promise<OrtEncoder> {
    const a = OnnxAdapterConfig.parse(adapter);
    const opts: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: a.intraOpThreads,
      interOpNumThreads: 1,
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
    };
    const session = typeof model === "string"
      ? await ort.InferenceSession.create(model, opts)
      : await ort.InferenceSession.create(model, opts);
    const missing = [a.input].filter((n) => !session.inputNames.includes(n));
    for (const n of [a.outputs.patches, a.outputs.global, a.outputs.registers]) {
      if (n !== null && !session.outputNames.includes(n)) missing.push(n);
    }
    if (missing.length) {
      await session.release();
      throw new Error(
        `onnx encoder ${typeof model === "string" ? model : "(bytes)"}: adapter names ${missing.join(", ")} ` +
          `but the graph has inputs [${session.inputNames}] and outputs [${session.outputNames}]`,
      );
    }
    return new OrtEncoder(session, a);
  }

  async encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    if (!this.#session) throw new Error(`onnx encoder ${this.info.arch}: used after dispose()`);
    assertImageBatch(this.info, images);
    const [b, , h, w] = images.shape;
    const a = this.adapter;
    const feeds = { [a.input]: new ort.Tensor("float32", images.data, images.shape) };
    const names = [a.outputs.patches, a.outputs.global, a.outputs.registers].filter((n): n is string => n !== null);
    const out = await this.#session.run(feeds, names);
    const gh = h / this.info.patchSize, gw = w / this.info.patchSize, d = this.info.embedDim;
    return {
      global: a.outputs.global ? hostOf(out[a.outputs.global], a.outputs.global) : null,
      patches: this.#patches(hostOf(out[a.outputs.patches], a.outputs.patches), b, gh, gw, d),
      registers: a.outputs.registers ? hostOf(out[a.outputs.registers], a.outputs.registers) : null,
    };
  }

  /** Bring the patch output to `[B, Gh, Gw, D]`. */
  #patches(p: HostTensor<Float32Array>, b: number, gh: number, gw: number, d: number): HostTensor<Float32Array> {
    const n = gh * gw;
    const shape = [b, gh, gw, d];
    const bad = () =>
      new Error(
        `onnx encoder ${this.info.arch}: patches output [${p.shape}] does not fit layout ${this.adapter.patchLayout} with grid ${gh}x${gw}, D ${d}`,
      );
    switch (this.adapter.patchLayout) {
      case "bhwd":
        if (p.data.length !== b * n * d) throw bad();
        return { shape, data: p.data };
      case "bld": {
        const skip = this.adapter.prefixTokens;
        if (p.shape[1] !== skip + n || p.shape[2] !== d) throw bad();
        const out = new Float32Array(b * n * d);
        for (let i = 0; i < b; i++) {
          out.set(p.data.subarray((i * (skip + n) + skip) * d, (i + 1) * (skip + n) * d), i * n * d);
        }
        return { shape, data: out };
      }
      case "bdhw": {
        if (p.data.length !== b * n * d) throw bad();
        const out = new Float32Array(b * n * d);
        for (let i = 0; i < b; i++) {
          for (let j = 0; j < d; j++) {
            for (let t = 0; t < n; t++) out[(i * n + t) * d + j] = p.data[(i * d + j) * n + t];
          }
        }
        return { shape, data: out };
      }
    }
  }

  dispose(): void {
    const s = this.#session;
    this.#session = null;
    // release() is async in onnxruntime-node; the contract's dispose is sync, so fire and forget.
    if (s) void s.release();
  }
}
