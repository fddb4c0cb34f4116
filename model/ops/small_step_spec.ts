/**
 * Test-only: a small `TrainStepSpec` with everything the methods use (two optimizers, parameter
 * groups with different lr and weight decay, clipping on one optimizer, an EMA teacher, a frozen
 * parameter, a trainable parameter the loss never reads, gather with duplicate indices, layer
 * norm, GELU, softmax attention, a log-softmax loss), its per-step draws and hyper-parameters.
 * Shared by the engine tests and the WebGPU step test.
 *
 * @module
 */
import type { HostTensor } from "../fixture.ts";
import { Rng } from "../rng.ts";
import type { Ops, ParamGetter, Tensor } from "./ops.ts";
import type { StepHyper, TrainStepSpec } from "../train_step.ts";

export const B = 3, T = 5, IN = 6, D = 8, H = 4, C = 3;

export function normal(rng: Rng, shape: number[], std: number): HostTensor<Float32Array> {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return { shape, data };
}

/** A small model: embed -> gather tokens -> LN -> attention-like mixing -> MLP -> head -> CE vs the teacher. */
export function smallSpec(opts: { withMax?: boolean } = {}): TrainStepSpec {
  const rng = Rng.from(11, "small-spec");
  const p = (shape: number[], std: number, trainable = true) => ({
    value: normal(rng.fork(shape.join("x"), std), shape, std),
    trainable,
  });
  const params = new Map([
    ["embed.weight", p([D, IN], 0.4)],
    ["embed.bias", p([D], 0.1)],
    ["norm.weight", { value: { shape: [D], data: new Float32Array(D).fill(1.1) }, trainable: true }],
    ["norm.bias", p([D], 0.05)],
    ["fc.weight", p([H, D], 0.5)],
    ["fc.bias", p([H], 0.1)],
    ["head.weight", p([C, H], 0.6)],
    ["frozen.scale", p([D], 1, false)],
    ["unused.weight", p([2, 2], 1)],
    ["teacher.embed.weight", p([D, IN], 0.4, false)],
    ["teacher.embed.bias", p([D], 0.1, false)],
  ]);
  return {
    params,
    optimizers: [
      {
        id: "student",
        groups: [
          { id: "decay", params: ["embed.weight", "fc.weight", "unused.weight"] },
          { id: "no_decay", params: ["embed.bias", "norm.weight", "norm.bias", "fc.bias"] },
        ],
        betas: [0.9, 0.95],
        eps: 1e-8,
        clipGradNorm: 0.3,
      },
      { id: "clustering", groups: [{ id: "head", params: ["head.weight"] }], betas: [0.8, 0.99], eps: 1e-6 },
    ],
    ema: { pairs: [["teacher.embed.weight", "embed.weight"], ["teacher.embed.bias", "embed.bias"]] },
    loss(o: Ops, get: ParamGetter, inputs: Record<string, Tensor>, trace) {
      const lin = (x: Tensor, w: string, b?: string) => {
        const y = o.matMul(x, get(w), false, true);
        return b ? o.add(y, get(b)) : y;
      };
      const tokens = o.gather(lin(inputs.x, "embed.weight", "embed.bias"), inputs.idx, 1); // [B, 4, D]
      const h = o.mul(o.layerNorm(tokens, get("norm.weight"), get("norm.bias"), 1e-6), get("frozen.scale"));
      trace?.("h", h);
      const att = o.softmax(o.mul(o.matMul(h, h, false, true), 1 / Math.sqrt(D)), -1); // [B, 4, 4]
      let mixed = o.add(h, o.matMul(att, h));
      if (opts.withMax) mixed = o.sub(mixed, o.max(mixed, -1, true));
      const logits = o.matMul(o.gelu(lin(mixed, "fc.weight", "fc.bias")), get("head.weight"), false, true); // [B, 4, C]
      const teacher = o.stopGradient(
        o.softmax(o.slice(lin(inputs.x, "teacher.embed.weight", "teacher.embed.bias"), [0, 0, 0], [-1, 4, C]), -1),
      );
      const ce = o.neg(o.mean(o.sum(o.mul(teacher, o.logSoftmax(logits, -1)), -1), [0, 1]));
      return { loss: o.add(ce, o.mul(o.mean(o.square(o.reshape(get("fc.weight"), [-1])), 0), 0.1)), metrics: { ce } };
    },
  };
}

export function smallDraws(step: number) {
  const rng = Rng.from(5, "draws", step);
  return {
    x: normal(rng, [B, T, IN], 1),
    idx: { shape: [4], data: Int32Array.from([rng.int(0, T - 1), 2, 2, rng.int(0, T - 1)]) },
  };
}

export function smallHyper(step: number): StepHyper {
  return {
    groups: {
      student: {
        decay: { lr: 0.01 / (1 + step), weightDecay: 0.05 },
        no_decay: { lr: 0.01 / (1 + step), weightDecay: 0 },
      },
      clustering: { head: { lr: 0.02, weightDecay: 0.2 } },
    },
    emaMomentum: 0.9 + 0.01 * step,
  };
}
