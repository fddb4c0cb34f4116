/**
 * `buildMicroStep`: the graphs of an accumulated training iteration (`TrainEngine.stepMicro`,
 * model/train_engine.ts), which the ORT engine runs as a one-shot batch split into micro-batches.
 *
 * Three kinds of graph, all for micro-batches of the same draw shapes:
 *
 * 1. one **statistics pass** per `spec.batchStats` entry, run on every micro-batch in turn:
 *      inputs  `param.<p>`, `draw.<d>`, `stat.<s>` (earlier passes, combined over the global
 *              batch), `saved.<s>` (what earlier passes saved for this micro-batch)
 *      outputs `partial.<s>` (this micro-batch's share, combined on the host by `sum` or `max`),
 *              `save.<s>` (kept for this micro-batch's later passes and its gradient graph)
 * 2. the **gradient graph**, run on every micro-batch in turn: the loss of the micro-batch
 *    (given the statistics), its gradients, added into the accumulated gradients:
 *      inputs  as a pass, plus `acc.<p>` (zeros for the first micro-batch) and `hyper.micro_weight`
 *              (`samples / total`, so the accumulated gradient is the one-shot batch's)
 *      outputs `new.acc.<p>` = `acc.<p> + weight * d loss / d p`, `loss`, `metric.<m>`, `trace.<t>`
 * 3. the **apply graph**, run once: steps 2 and 3 of step_graph.ts (clipping on the accumulated
 *    gradient, AdamW, EMA) with the gradients as inputs `grad.<p>`; inputs and outputs otherwise
 *    as the one-shot step graph's, so the engine feeds and commits it the same way.
 *
 * No gradient flows through statistics or saved tensors (they are graph inputs), as in the
 * official code, where the Sinkhorn input is detached and the teacher is the EMA.
 *
 * @module
 */
import { checkStatsPass, type StatCombine, type TrainStepSpec } from "../train_step.ts";
import { GraphOps } from "./graph_ops.ts";
import type { Tensor } from "./ops.ts";
import { type LoweredGraph, lowerToOnnx } from "./onnx_lower.ts";
import {
  appendUpdate,
  drawInputs,
  type DrawShape,
  lossGradients,
  paramInputs,
  traceOutputs,
  type TrainStepGraph,
  type TrainStepOptions,
  validateSpec,
} from "./step_graph.ts";

/** The input of the gradient graph that weights a micro-batch's gradient. */
export const MICRO_WEIGHT_INPUT = "hyper.micro_weight";

/** Shape of a statistic or saved tensor, as the graph that produced it declared it. */
export type Shapes = Map<string, number[]>;

export interface StatsPassGraph {
  lowered: LoweredGraph;
  /** Each statistic this pass outputs as `partial.<s>`: how partials combine, and its shape. */
  stats: Map<string, { combine: StatCombine; shape: number[] }>;
  /** Each tensor this pass saves (`save.<s>`) for the micro-batch's later graphs. */
  saved: Shapes;
}

export interface GradStepGraph {
  lowered: LoweredGraph;
  /** Parameters that get a gradient (`acc.<p>` in, `new.acc.<p>` out), in parameter order. */
  withGradient: string[];
  metrics: string[];
  traces: string[];
}

export interface MicroStepGraphs {
  passes: StatsPassGraph[];
  grad: GradStepGraph;
  apply: TrainStepGraph;
}

/** Inputs `stat.<s>` and `saved.<s>` of the shapes earlier graphs produced. */
function batchInputs(o: GraphOps, stats: Shapes, saved: Shapes) {
  const ctx = { stats: {} as Record<string, Tensor>, saved: {} as Record<string, Tensor> };
  for (const [n, shape] of stats) ctx.stats[n] = o.inputOf(`stat.${n}`, [...shape], "float32");
  for (const [n, shape] of saved) ctx.saved[n] = o.inputOf(`saved.${n}`, [...shape], "float32");
  return ctx;
}

/** Record and lower pass `index` of `spec.batchStats`. */
function buildStatsPass(
  spec: TrainStepSpec,
  index: number,
  drawShapes: Record<string, DrawShape>,
  stats: Shapes,
  saved: Shapes,
  opts: TrainStepOptions,
): StatsPassGraph {
  const pass = spec.batchStats![index];
  const o = new GraphOps();
  const { get } = paramInputs(o, spec);
  const inputs = drawInputs(o, drawShapes);
  const out = pass.compute(o, get, inputs, batchInputs(o, stats, saved));
  checkStatsPass(index, pass, out, { stats: new Set(stats.keys()), saved: new Set(saved.keys()) });
  const made = new Map<string, { combine: StatCombine; shape: number[] }>();
  for (const [name, combine] of Object.entries(pass.combine)) {
    o.output(`partial.${name}`, out.partial[name]);
    made.set(name, { combine, shape: [...out.partial[name].shape] });
  }
  const savedHere: Shapes = new Map();
  for (const [name, t] of Object.entries(out.save ?? {})) {
    o.output(`save.${name}`, t);
    savedHere.set(name, [...t.shape]);
  }
  const lowered = lowerToOnnx(o.graph, { target: opts.target ?? "cpu", graphName: `batch_stats_${index}` });
  return { lowered, stats: made, saved: savedHere };
}

/** Record and lower the gradient graph of one micro-batch. */
function buildGradStep(
  spec: TrainStepSpec,
  drawShapes: Record<string, DrawShape>,
  stats: Shapes,
  saved: Shapes,
  opts: TrainStepOptions,
): GradStepGraph {
  const o = new GraphOps();
  const { get, params } = paramInputs(o, spec);
  const inputs = drawInputs(o, drawShapes);
  const batch = spec.batchStats?.length ? batchInputs(o, stats, saved) : undefined;
  const { trace, traces } = traceOutputs(o, opts.trace);
  const { loss, metrics } = spec.loss(o, get, inputs, trace, batch);
  o.output("loss", loss);
  for (const [name, t] of Object.entries(metrics)) o.output(`metric.${name}`, t);
  const grads = lossGradients(o, spec, params, loss);
  const weight = o.inputOf(MICRO_WEIGHT_INPUT, [], "float32");
  const withGradient = [...spec.params.keys()].filter((n) => grads.has(n));
  for (const p of withGradient) {
    const acc = o.inputOf(`acc.${p}`, [...spec.params.get(p)!.value.shape], "float32");
    o.output(`new.acc.${p}`, o.add(acc, o.mul(grads.get(p)!, weight)));
  }
  const lowered = lowerToOnnx(o.graph, { target: opts.target ?? "cpu", graphName: "micro_grad" });
  return { lowered, withGradient, metrics: Object.keys(metrics), traces };
}

/** Record and lower the apply graph: the update of the parameters in `withGradient` from inputs `grad.<p>`. */
export function buildApplyStep(
  spec: TrainStepSpec,
  withGradient: string[],
  opts: TrainStepOptions = {},
): TrainStepGraph {
  validateSpec(spec);
  const o = new GraphOps();
  const { get } = paramInputs(o, spec);
  const grads = new Map<string, Tensor>();
  for (const p of withGradient) grads.set(p, o.inputOf(`grad.${p}`, [...spec.params.get(p)!.value.shape], "float32"));
  const { updated, emaTargets } = appendUpdate(o, spec, get, grads);
  const noGradient = [...spec.params].filter(([n, p]) => p.trainable && !grads.has(n)).map(([n]) => n);
  const lowered = lowerToOnnx(o.graph, { target: opts.target ?? "cpu", graphName: "apply_step" });
  return { lowered, updated, noGradient, emaTargets, metrics: [], traces: [] };
}

/** Every graph of an accumulated iteration of `spec` for micro-batches with draws of `drawShapes`. */
export function buildMicroStep(
  spec: TrainStepSpec,
  drawShapes: Record<string, DrawShape>,
  opts: TrainStepOptions = {},
): MicroStepGraphs {
  validateSpec(spec);
  const stats: Shapes = new Map(), saved: Shapes = new Map();
  const passes: StatsPassGraph[] = [];
  for (let i = 0; i < (spec.batchStats?.length ?? 0); i++) {
    const pass = buildStatsPass(spec, i, drawShapes, stats, saved, opts);
    for (const [n, s] of pass.stats) stats.set(n, s.shape);
    for (const [n, s] of pass.saved) saved.set(n, s);
    passes.push(pass);
  }
  const grad = buildGradStep(spec, drawShapes, stats, saved, opts);
  return { passes, grad, apply: buildApplyStep(spec, grad.withGradient, opts) };
}
