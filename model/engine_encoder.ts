/**
 * `EngineEncoder`: a `VisionEncoder` (model/encoder.ts) over any `TrainEngine` and an
 * `EncoderForward` (a method's `encode`, written against `Ops`), so evaluation runs on whichever
 * engine holds the weights: `encode` goes through `engine.evaluate`.
 *
 * @module
 */
import type { EncoderFeatures, EncoderInfo, VisionEncoder } from "./encoder.ts";
import { assertImageBatch } from "./encoder.ts";
import type { HostTensor } from "./fixture.ts";
import type { EncoderForward } from "./method.ts";
import type { Tensor } from "./ops/ops.ts";
import type { TrainEngine } from "./train_engine.ts";
import type { ParamSpec, TrainStepSpec } from "./train_step.ts";

export class EngineEncoder implements VisionEncoder {
  readonly info: EncoderInfo;

  /** `owned`: `dispose()` disposes the engine too (an encoder opened from a checkpoint). */
  constructor(readonly engine: TrainEngine, readonly forward: EncoderForward, readonly owned = false) {
    this.info = forward.encoderInfo;
  }

  async encode(images: HostTensor<Float32Array>): Promise<EncoderFeatures> {
    assertImageBatch(this.info, images);
    const out = await this.engine.evaluate(`encode.${images.shape[0]}`, (o, get) => {
      const r = this.forward.encode(o, get, images);
      const named: Record<string, Tensor> = { patches: r.patches };
      if (r.global) named.global = r.global;
      if (r.registers) named.registers = r.registers;
      return named;
    });
    return { global: out.global ?? null, patches: out.patches, registers: out.registers ?? null };
  }

  dispose(): void {
    if (this.owned) this.engine.dispose();
  }
}

/**
 * A step spec that only holds `params` (none trainable, no optimizer, no loss): what an engine
 * needs to evaluate weights loaded from a checkpoint.
 */
export function evalOnlySpec(params: Map<string, HostTensor<Float32Array>>): TrainStepSpec {
  return {
    params: new Map([...params].map(([n, value]): [string, ParamSpec] => [n, { value, trainable: false }])),
    optimizers: [],
    ema: null,
    loss: () => {
      throw new Error("evalOnlySpec: this engine holds evaluation weights only; it has no training step");
    },
  };
}
