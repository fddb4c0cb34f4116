/**
 * `buildTrainStep`: ONE graph for a whole training iteration of a `TrainStepSpec`
 * (model/train_step.ts): loss, gradients, every optimizer, the EMA.
 *
 * Inputs (names are the contract with ort_train_engine.ts):
 *   `param.<p>`                       every parameter the loss or an EMA reads
 *   `exp_avg.<p>`, `exp_avg_sq.<p>`   AdamW moments of each trainable parameter with a gradient
 *   `draw.<d>`                        the step's draws (`StepDraws`), float32 or int32
 *   `hyper.<opt>.<group>.decay`       `1 - lr*wd` (float32 scalars computed in float64 on the host,
 *   `hyper.<opt>.<group>.step_size`   `lr / (1 - b1^t)`            as torch does: `adamwScalars`)
 *   `hyper.<opt>.bc2_sqrt`            `sqrt(1 - b2^t)`
 *   `hyper.ema.momentum`, `hyper.ema.one_minus_momentum`   (`1 - m` in float64 on the host)
 * Outputs:
 *   `loss`, `metric.<m>`; `new.param.<p>`, `new.exp_avg.<p>`, `new.exp_avg_sq.<p>` for each
 *   updated parameter and `new.param.<ema>` for each EMA target; with `trace`: `trace.<name>`;
 *   with `grads`: `grad.<p>` (before clipping).
 *
 * Body, as torch (capi:train_capi.py:271-314; torch 1.13 `_single_tensor_adamw`,
 * `clip_grad_norm_`):
 *   1. `spec.loss` recorded on `GraphOps`; gradients of `loss` for every trainable parameter
 *      (autodiff.ts). A trainable parameter the loss does not reach has no gradient: torch
 *      leaves `.grad` None and AdamW skips it, so it is neither decayed nor output here.
 *   2. per optimizer, in order: optional clipping, `coef = min(max_norm / (norm + 1e-6), 1)`
 *      with `norm` the 2-norm of the per-tensor 2-norms; then per parameter
 *      `p *= decay; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g*g;
 *       p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)`.
 *   3. EMA from the post-step parameters: `ema = m * ema + (1-m) * p`.
 * Non-trainable parameters pass through: read as inputs, never output unless an EMA writes them.
 *
 * The accumulated step over micro-batches (micro_step_graph.ts) reuses the pieces: `paramInputs`,
 * `drawInputs`, `lossGradients` for its per-micro-batch gradient graph, `appendUpdate` (steps 2
 * and 3) for its apply graph.
 *
 * @module
 */
import type { DType, ParamGetter, Tensor, Trace } from "./ops.ts";
import type { TrainStepSpec } from "../train_step.ts";
import { GraphOps } from "./graph_ops.ts";
import { gradients } from "./autodiff.ts";
import { type LoweredGraph, type LowerTarget, lowerToOnnx } from "./onnx_lower.ts";

/** Shape and dtype of one draw (what a `StepDraws` entry will look like every step). */
export interface DrawShape {
  shape: number[];
  dtype: DType;
}

export interface TrainStepOptions {
  /** Output the loss's `Trace` calls as `trace.<name>` (parity). */
  trace?: boolean;
  /** Output each gradient before clipping as `grad.<param>` (parity). */
  grads?: boolean;
  target?: LowerTarget;
}

/** What one compiled step reads and writes, beyond the fixed naming scheme above. */
export interface TrainStepGraph {
  lowered: LoweredGraph;
  /** Parameters the step updates (trainable, with a gradient), by optimizer id. */
  updated: Map<string, string[]>;
  /** Trainable parameters without a gradient this step (left untouched, as torch). */
  noGradient: string[];
  /** EMA targets the step writes. */
  emaTargets: string[];
  metrics: string[];
  traces: string[];
}

/** The names of the hyper-parameter inputs of optimizer `opt`, group `group`. */
export const hyperInput = {
  decay: (opt: string, group: string) => `hyper.${opt}.${group}.decay`,
  stepSize: (opt: string, group: string) => `hyper.${opt}.${group}.step_size`,
  bc2Sqrt: (opt: string) => `hyper.${opt}.bc2_sqrt`,
  emaMomentum: "hyper.ema.momentum",
  emaOneMinus: "hyper.ema.one_minus_momentum",
};

/** Check that groups, trainability and EMA pairs are consistent; one line per problem. */
export function validateSpec(spec: TrainStepSpec): void {
  const owner = new Map<string, string>();
  for (const opt of spec.optimizers) {
    for (const g of opt.groups) {
      for (const p of g.params) {
        const ps = spec.params.get(p);
        if (!ps) throw new Error(`train step: optimizer '${opt.id}' group '${g.id}' names unknown parameter '${p}'`);
        if (!ps.trainable) {
          throw new Error(`train step: parameter '${p}' is in group '${opt.id}/${g.id}' but not trainable`);
        }
        const prev = owner.get(p);
        if (prev) throw new Error(`train step: parameter '${p}' is in two groups: '${prev}' and '${opt.id}/${g.id}'`);
        owner.set(p, `${opt.id}/${g.id}`);
      }
    }
  }
  for (const [name, ps] of spec.params) {
    if (ps.trainable && !owner.has(name)) {
      throw new Error(`train step: trainable parameter '${name}' is in no optimizer group`);
    }
  }
  for (const [ema, src] of spec.ema?.pairs ?? []) {
    const e = spec.params.get(ema), s = spec.params.get(src);
    if (!e || !s) throw new Error(`train step: EMA pair ['${ema}', '${src}'] names an unknown parameter`);
    if (e.trainable) {
      throw new Error(`train step: EMA target '${ema}' is trainable; an optimizer and the EMA would both write it`);
    }
    if (e.value.shape.join() !== s.value.shape.join()) {
      throw new Error(`train step: EMA pair ['${ema}', '${src}'] has shapes [${e.value.shape}] and [${s.value.shape}]`);
    }
  }
}

/**
 * Parameters as graph inputs `param.<p>`, created on first read (a parameter nobody reads is no
 * input); `params` holds those read so far.
 */
export function paramInputs(o: GraphOps, spec: TrainStepSpec): { get: ParamGetter; params: Map<string, Tensor> } {
  const params = new Map<string, Tensor>();
  const get = (name: string): Tensor => {
    let t = params.get(name);
    if (!t) {
      const ps = spec.params.get(name);
      if (!ps) throw new Error(`train step: the loss reads parameter '${name}', which the spec does not declare`);
      t = o.inputOf(`param.${name}`, [...ps.value.shape], "float32");
      params.set(name, t);
    }
    return t;
  };
  return { get, params };
}

/** The draws as graph inputs `draw.<d>`. */
export function drawInputs(o: GraphOps, drawShapes: Record<string, DrawShape>): Record<string, Tensor> {
  const inputs: Record<string, Tensor> = {};
  for (const [name, d] of Object.entries(drawShapes)) inputs[name] = o.inputOf(`draw.${name}`, [...d.shape], d.dtype);
  return inputs;
}

/** A `Trace` that outputs each traced value as `trace.<name>`, and the names it saw. */
export function traceOutputs(o: GraphOps, on: boolean | undefined): { trace?: Trace; traces: string[] } {
  const traces: string[] = [];
  if (!on) return { traces };
  return {
    traces,
    trace: (name, t) => {
      traces.push(name);
      o.output(`trace.${name}`, t);
    },
  };
}

/** Record, differentiate and lower one training iteration of `spec` for draws of `drawShapes`. */
export function buildTrainStep(
  spec: TrainStepSpec,
  drawShapes: Record<string, DrawShape>,
  opts: TrainStepOptions = {},
): TrainStepGraph {
  validateSpec(spec);
  const o = new GraphOps();
  const { get, params } = paramInputs(o, spec);
  const inputs = drawInputs(o, drawShapes);
  const { trace, traces } = traceOutputs(o, opts.trace);
  const { loss, metrics } = spec.loss(o, get, inputs, trace);
  o.output("loss", loss);
  for (const [name, t] of Object.entries(metrics)) o.output(`metric.${name}`, t);

  // 1. Gradients of every trainable parameter the loss reads.
  const grads = lossGradients(o, spec, params, loss);
  const noGradient = [...spec.params].filter(([n, p]) => p.trainable && !grads.has(n)).map(([n]) => n);
  if (opts.grads) { for (const [n, g] of grads) o.output(`grad.${n}`, g); }

  // 2. and 3.: optimizers in order, then the EMA.
  const { updated, emaTargets } = appendUpdate(o, spec, get, grads);
  const lowered = lowerToOnnx(o.graph, { target: opts.target ?? "cpu", graphName: "train_step" });
  return { lowered, updated, noGradient, emaTargets, metrics: Object.keys(metrics), traces };
}

/** Gradients of `loss` for every trainable parameter read so far that it reaches. */
export function lossGradients(
  o: GraphOps,
  spec: TrainStepSpec,
  params: Map<string, Tensor>,
  loss: Tensor,
): Map<string, Tensor> {
  const trainable = [...params.keys()].filter((n) => spec.params.get(n)!.trainable);
  const gradList = gradients(o, loss, trainable.map((n) => params.get(n)!));
  const grads = new Map<string, Tensor>();
  trainable.forEach((n, i) => gradList[i] && grads.set(n, gradList[i]!));
  return grads;
}

/**
 * Steps 2 and 3 of the iteration on gradients `grads` (parameters without one are left alone):
 * each optimizer in order (clipping, AdamW per group), then the EMA from the post-step values.
 * Outputs `new.param.<p>`, `new.exp_avg.<p>`, `new.exp_avg_sq.<p>` and `new.param.<ema>`.
 */
export function appendUpdate(
  o: GraphOps,
  spec: TrainStepSpec,
  get: ParamGetter,
  grads: Map<string, Tensor>,
): { updated: Map<string, string[]>; emaTargets: string[] } {
  const stepped = new Map<string, Tensor>();
  const updated = new Map<string, string[]>();
  for (const opt of spec.optimizers) {
    const mine = opt.groups.flatMap((g) => g.params).filter((p) => grads.has(p));
    updated.set(opt.id, mine);
    if (mine.length === 0) continue;
    let coef: Tensor | null = null;
    if (opt.clipGradNorm !== undefined) {
      const norms = mine.map((p) => o.reshape(o.sqrt(o.sumSquares(grads.get(p)!, allAxes(grads.get(p)!))), [1]));
      const total = o.sqrt(o.sumSquares(o.concat(norms, 0), 0));
      coef = o.minimum(o.div(opt.clipGradNorm, o.add(total, 1e-6)), 1);
    }
    const [b1, b2] = opt.betas;
    const bc2Sqrt = o.inputOf(hyperInput.bc2Sqrt(opt.id), [], "float32");
    for (const group of opt.groups) {
      const members = group.params.filter((p) => grads.has(p));
      if (members.length === 0) continue;
      const decay = o.inputOf(hyperInput.decay(opt.id, group.id), [], "float32");
      const stepSize = o.inputOf(hyperInput.stepSize(opt.id, group.id), [], "float32");
      for (const p of members) {
        const g = coef ? o.mul(grads.get(p)!, coef) : grads.get(p)!;
        const shape = [...spec.params.get(p)!.value.shape];
        const m = o.inputOf(`exp_avg.${p}`, shape, "float32"), v = o.inputOf(`exp_avg_sq.${p}`, shape, "float32");
        const decayed = o.mul(get(p), decay);
        const m1 = o.add(o.mul(m, b1), o.mul(g, 1 - b1));
        const v1 = o.add(o.mul(v, b2), o.mul(o.mul(g, g), 1 - b2));
        const denom = o.add(o.div(o.sqrt(v1), bc2Sqrt), opt.eps);
        const p1 = o.sub(decayed, o.mul(o.div(m1, denom), stepSize));
        o.output(`new.param.${p}`, p1);
        o.output(`new.exp_avg.${p}`, m1);
        o.output(`new.exp_avg_sq.${p}`, v1);
        stepped.set(p, p1);
      }
    }
  }

  const emaTargets: string[] = [];
  if (spec.ema && spec.ema.pairs.length) {
    const mom = o.inputOf(hyperInput.emaMomentum, [], "float32");
    const rest = o.inputOf(hyperInput.emaOneMinus, [], "float32");
    for (const [ema, src] of spec.ema.pairs) {
      const source = stepped.get(src) ?? get(src);
      o.output(`new.param.${ema}`, o.add(o.mul(get(ema), mom), o.mul(source, rest)));
      emaTargets.push(ema);
    }
  }
  return { updated, emaTargets };
}

function allAxes(t: Tensor): number[] {
  return t.shape.map((_, i) => i);
}
