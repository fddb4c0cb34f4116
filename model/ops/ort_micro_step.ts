/**
 * `OrtMicroStep`: the host side of the ORT engine's accumulated step (`TrainEngine.stepMicro`):
 * compiles the graphs of micro_step_graph.ts and runs, for a step's micro-batches,
 *
 * 1. each statistics pass over every micro-batch in order, combining the partial statistics on
 *    the host (`sum` in micro-batch order, float32 as a device all-reduce would; `max`), and
 *    keeping what a pass saves per micro-batch (CAPI: the teacher's features, `B_m x N x D`);
 * 2. the gradient graph over every micro-batch in order, accumulating `acc += (B_m/B) grad_m`.
 *
 * `OrtTrainEngine.stepMicro` then runs the apply graph (clipping, AdamW, EMA) once on the
 * accumulated gradients, fed and committed like a one-shot step. Kept apart from the engine so
 * that the engine's own state handling (host arrays now, device tensors with a GPU provider)
 * stays in one place: this class only reads parameters through `paramFeed`.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import type { StepOptions } from "../train_engine.ts";
import type { MicroBatch, StepDraws, TrainStepSpec } from "../train_step.ts";
import { buildApplyStep, buildMicroStep, MICRO_WEIGHT_INPUT, type MicroStepGraphs } from "./micro_step_graph.ts";
import { type Feed, OrtProgram, type ProgramOptions } from "./ort_program.ts";
import type { DrawShape, TrainStepGraph } from "./step_graph.ts";
import { release } from "./host_memory.ts";

interface Programs {
  graphs: MicroStepGraphs;
  passes: OrtProgram[];
  grad: OrtProgram;
}

/** What the micro-batches of one step gave: the accumulated gradients and the step's scalars. */
export interface Accumulated {
  /** `sum_m (B_m/B) grad_m` by parameter, for the parameters that have a gradient. */
  grads: Map<string, Float32Array>;
  /** Sample-weighted means of the micro-batches' `loss` and metrics (float64 on the host). */
  scalars: Record<string, number>;
  /** With `trace`: each micro-batch's traces. */
  tracedMicro?: Map<string, HostTensor<Float32Array>>[];
  /** The most bytes of statistics, saved tensors, accumulated gradients and one run's outputs held at once. */
  peakBytes: number;
}

const f32 = (t: ort.Tensor, name: string): Float32Array => {
  if (t.type !== "float32") throw new Error(`ort engine: output '${name}' is ${t.type}, expected float32`);
  return t.data as Float32Array;
};
const bytesOf = (out: Record<string, ort.Tensor>) => Object.values(out).reduce((s, t) => s + 4 * t.size, 0);

/** The draw shapes of `draws`, the key of their compiled programs. */
function drawShapes(draws: StepDraws): Record<string, DrawShape> {
  const shapes: Record<string, DrawShape> = {};
  for (const [n, d] of Object.entries(draws)) {
    shapes[n] = { shape: [...d.shape], dtype: d.data instanceof Int32Array ? "int32" : "float32" };
  }
  return shapes;
}

export class OrtMicroStep {
  readonly #spec: TrainStepSpec;
  readonly #options: ProgramOptions;
  readonly #programs = new Map<string, Promise<Programs>>();
  readonly #apply = new Map<string, Promise<{ graph: TrainStepGraph; program: OrtProgram }>>();
  /** A zero array per parameter: the first micro-batch's `acc` (never written: outputs are new arrays). */
  readonly #zeros = new Map<string, Float32Array>();

  constructor(spec: TrainStepSpec, options: ProgramOptions) {
    this.#spec = spec;
    this.#options = options;
  }

  #compiled(draws: StepDraws, opts: StepOptions): Promise<Programs> {
    const shapes = drawShapes(draws);
    const key = JSON.stringify([opts.trace ?? false, shapes]);
    let p = this.#programs.get(key);
    if (!p) {
      p = (async () => {
        const graphs = buildMicroStep(this.#spec, shapes, { trace: opts.trace, target: this.#options.ep });
        const passes = await Promise.all(graphs.passes.map((g) => OrtProgram.create(g.lowered, this.#options)));
        return { graphs, passes, grad: await OrtProgram.create(graphs.grad.lowered, this.#options) };
      })();
      this.#programs.set(key, p);
      p.catch(() => this.#programs.delete(key));
    }
    return p;
  }

  /** The apply graph for the parameters in `withGradient` (compiled once per set). */
  apply(withGradient: string[]): Promise<{ graph: TrainStepGraph; program: OrtProgram }> {
    const key = withGradient.join("\n");
    let p = this.#apply.get(key);
    if (!p) {
      p = (async () => {
        const graph = buildApplyStep(this.#spec, withGradient, { target: this.#options.ep });
        return { graph, program: await OrtProgram.create(graph.lowered, this.#options) };
      })();
      this.#apply.set(key, p);
      p.catch(() => this.#apply.delete(key));
    }
    return p;
  }

  /** Statistics passes, then every micro-batch's gradients, accumulated. */
  async accumulate(micro: MicroBatch[], opts: StepOptions, paramFeed: (name: string) => Feed): Promise<Accumulated> {
    const total = micro.reduce((s, m) => s + m.samples, 0);
    if (!(total > 0) || micro.some((m) => !(m.samples > 0))) {
      throw new Error(`stepMicro: every micro-batch needs samples > 0, got [${micro.map((m) => m.samples)}]`);
    }
    const programs = await Promise.all(micro.map((m) => this.#compiled(m.draws, opts)));
    const stats = new Map<string, HostTensor<Float32Array>>();
    const saved = micro.map(() => new Map<string, HostTensor<Float32Array>>());
    let held = 0, peak = 0;
    const note = (transient: number) => (peak = Math.max(peak, held + transient));
    const feedsFor = (program: OrtProgram, m: number): Record<string, Feed> => {
      const feeds: Record<string, Feed> = {};
      for (const name of program.inputNames) {
        const dot = name.indexOf("."), kind = name.slice(0, dot), rest = name.slice(dot + 1);
        if (kind === "param") feeds[name] = paramFeed(rest);
        else if (kind === "draw") feeds[name] = micro[m].draws[rest];
        else if (kind === "stat") feeds[name] = stats.get(rest)!;
        else if (kind === "saved") feeds[name] = saved[m].get(rest)!;
      }
      return feeds;
    };

    // 1. Statistics of the global batch, pass after pass.
    const nPasses = programs[0].passes.length;
    for (let i = 0; i < nPasses; i++) {
      const combined = new Map<string, HostTensor<Float32Array>>();
      for (const [m, p] of programs.entries()) {
        const out = await p.passes[i].run(feedsFor(p.passes[i], m));
        note(bytesOf(out));
        for (const [name, { combine }] of p.graphs.passes[i].stats) {
          const part = out[`partial.${name}`], data = f32(part, name), prev = combined.get(name);
          if (!prev) combined.set(name, { shape: part.dims.map(Number), data });
          else if (combine === "sum") { for (let k = 0; k < data.length; k++) prev.data[k] += data[k]; }
          else for (let k = 0; k < data.length; k++) prev.data[k] = Math.max(prev.data[k], data[k]);
        }
        for (const name of p.graphs.passes[i].saved.keys()) {
          const t = out[`save.${name}`];
          saved[m].set(name, { shape: t.dims.map(Number), data: f32(t, name) });
          held += 4 * t.size;
        }
      }
      for (const [name, t] of combined) {
        stats.set(name, t);
        held += 4 * t.data.length;
      }
    }

    // 2. Gradients of every micro-batch, accumulated with weight B_m / B.
    let acc: Map<string, Float32Array> | null = null;
    const sums: Record<string, number> = {};
    const tracedMicro: Map<string, HostTensor<Float32Array>>[] = [];
    for (const [m, p] of programs.entries()) {
      const g = p.graphs.grad;
      const feeds = feedsFor(p.grad, m);
      feeds[MICRO_WEIGHT_INPUT] = { shape: [], data: new Float32Array([micro[m].samples / total]) };
      for (const name of g.withGradient) {
        feeds[`acc.${name}`] = {
          shape: this.#spec.params.get(name)!.value.shape,
          data: acc?.get(name) ?? this.#zero(name),
        };
      }
      const out = await p.grad.run(feeds);
      note(bytesOf(out));
      const next = new Map(g.withGradient.map((name) => [name, f32(out[`new.acc.${name}`], name)]));
      for (const a of acc?.values() ?? []) release(a);
      if (!acc) held += [...next.values()].reduce((s, a) => s + 4 * a.length, 0);
      acc = next;
      const w = micro[m].samples / total;
      for (const name of ["loss", ...g.metrics.map((x) => `metric.${x}`)]) {
        const key = name.replace(/^metric\./, "");
        sums[key] = (sums[key] ?? 0) + w * f32(out[name], name)[0];
      }
      if (opts.trace) {
        tracedMicro.push(
          new Map(
            g.traces.map((t) => [t, { shape: out[`trace.${t}`].dims.map(Number), data: f32(out[`trace.${t}`], t) }]),
          ),
        );
      }
      for (const s of saved[m].values()) {
        held -= 4 * s.data.length;
        release(s.data); // this micro-batch is done with them
      }
    }
    for (const s of stats.values()) release(s.data);
    return { grads: acc!, scalars: sums, tracedMicro: opts.trace ? tracedMicro : undefined, peakBytes: peak };
  }

  #zero(name: string): Float32Array {
    let z = this.#zeros.get(name);
    if (!z) this.#zeros.set(name, z = new Float32Array(this.#spec.params.get(name)!.value.data.length));
    return z;
  }

  release(): void {
    for (const p of this.#programs.values()) {
      p.then((x) => [...x.passes, x.grad].forEach((q) => q.release()), () => {});
    }
    for (const p of this.#apply.values()) p.then((x) => x.program.release(), () => {});
    this.#programs.clear();
    this.#apply.clear();
  }
}
