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
 * that the engine's own state handling (ort_device.ts) stays in one place: this class only reads
 * parameters through `paramFeed`.
 *
 * On a resident provider (WebGPU) what the passes save and the accumulated gradients stay on the
 * device (`gpu-buffer` outputs fed back as inputs, disposed once used); the first micro-batch's
 * `acc` is a zero tensor per parameter uploaded once and kept (device memory: one more copy of
 * the trainable parameters). The host sends the draws, the combined statistics and the weights,
 * and receives the partial statistics, `loss`, metrics and traces (`cpu` outputs).
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import type { StepOptions } from "../train_engine.ts";
import type { MicroBatch, StepDraws, TrainStepSpec } from "../train_step.ts";
import { buildApplyStep, buildMicroStep, MICRO_WEIGHT_INPUT, type MicroStepGraphs } from "./micro_step_graph.ts";
import type { LoweredGraph } from "./onnx_lower.ts";
import { type ExecutionProvider, type Feed, lowerTargetOf, OrtProgram, type ProgramOptions } from "./ort_program.ts";
import type { DrawShape, TrainStepGraph } from "./step_graph.ts";
import { cpuOutputBytes, DeviceState, hostFeedBytes } from "./ort_device.ts";
import { release } from "./host_memory.ts";

interface Programs {
  graphs: MicroStepGraphs;
  passes: OrtProgram[];
  grad: OrtProgram;
}

/** What the micro-batches of one step gave: the accumulated gradients and the step's scalars. */
export interface Accumulated {
  /**
   * `sum_m (B_m/B) grad_m` by parameter, for the parameters that have a gradient: host arrays, or
   * device tensors on a resident provider. Held until {@link OrtMicroStep.clearGrads}.
   */
  grads: DeviceState;
  /** The parameters in `grads`, in parameter order. */
  withGradient: string[];
  /** Sample-weighted means of the micro-batches' `loss` and metrics (float64 on the host). */
  scalars: Record<string, number>;
  /** With `trace`: each micro-batch's traces. */
  tracedMicro?: Map<string, HostTensor<Float32Array>>[];
  /** The most bytes of statistics, saved tensors, accumulated gradients and one run's outputs held at once. */
  peakBytes: number;
  /** Bytes the runs moved host -> device (feeds, the zeros' one upload) and device -> host (`cpu` outputs). */
  toDeviceBytes: number;
  toHostBytes: number;
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
  readonly #ep: ExecutionProvider;
  readonly #programs = new Map<string, Promise<Programs>>();
  readonly #apply = new Map<string, Promise<{ graph: TrainStepGraph; program: OrtProgram }>>();
  /** A zero tensor per parameter: the first micro-batch's `acc` (never written: outputs are new tensors). */
  readonly #zeros: DeviceState;
  /** The accumulated gradients, between `accumulate` and `clearGrads`. */
  readonly #acc: DeviceState;
  /** A step's combined statistics (on a resident provider uploaded once per pass, fed to every micro-batch). */
  readonly #stats: DeviceState;

  constructor(spec: TrainStepSpec, options: ProgramOptions) {
    this.#spec = spec;
    this.#options = options;
    this.#ep = options.ep ?? "cpu";
    this.#zeros = new DeviceState({ ep: this.#ep, threads: options.threads });
    this.#acc = new DeviceState({ ep: this.#ep, threads: options.threads });
    this.#stats = new DeviceState({ ep: this.#ep, threads: options.threads });
  }

  /** Compile `lowered`, leaving the outputs named `keep` accepts on the device on a resident provider. */
  #create(lowered: LoweredGraph, keep: (output: string) => boolean): Promise<OrtProgram> {
    const gpu = this.#acc.resident ? lowered.outputs.filter((o) => keep(o.name)) : [];
    return OrtProgram.create(lowered, {
      ...this.#options,
      outputLocations: gpu.length ? Object.fromEntries(gpu.map((o) => [o.name, "gpu-buffer" as const])) : undefined,
    });
  }

  #compiled(draws: StepDraws, opts: StepOptions): Promise<Programs> {
    const shapes = drawShapes(draws);
    const key = JSON.stringify([opts.trace ?? false, shapes]);
    let p = this.#programs.get(key);
    if (!p) {
      p = (async () => {
        const graphs = buildMicroStep(this.#spec, shapes, { trace: opts.trace, target: lowerTargetOf(this.#ep) });
        const passes = await Promise.all(
          graphs.passes.map((g) => this.#create(g.lowered, (n) => n.startsWith("save."))),
        );
        return { graphs, passes, grad: await this.#create(graphs.grad.lowered, (n) => n.startsWith("new.acc.")) };
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
        const graph = buildApplyStep(this.#spec, withGradient, { target: lowerTargetOf(this.#ep) });
        return { graph, program: await this.#create(graph.lowered, (n) => n.startsWith("new.")) };
      })();
      this.#apply.set(key, p);
      p.catch(() => this.#apply.delete(key));
    }
    return p;
  }

  /**
   * Statistics passes, then every micro-batch's gradients, accumulated into {@link Accumulated.grads}
   * (call {@link clearGrads} once they are applied).
   */
  async accumulate(micro: MicroBatch[], opts: StepOptions, paramFeed: (name: string) => Feed): Promise<Accumulated> {
    const total = micro.reduce((s, m) => s + m.samples, 0);
    if (!(total > 0) || micro.some((m) => !(m.samples > 0))) {
      throw new Error(`stepMicro: every micro-batch needs samples > 0, got [${micro.map((m) => m.samples)}]`);
    }
    const programs = await Promise.all(micro.map((m) => this.#compiled(m.draws, opts)));
    this.clearGrads(); // what a failed step left
    this.#stats.remove(() => true);
    const stats = this.#stats;
    const saved = micro.map(() => new Map<string, ort.Tensor>());
    let held = 0, peak = 0, toDeviceBytes = 0, toHostBytes = 0;
    const note = (transient: number) => (peak = Math.max(peak, held + transient));
    const run = async (program: OrtProgram, feeds: Record<string, Feed>) => {
      const out = await program.run(feeds);
      toDeviceBytes += hostFeedBytes(feeds);
      toHostBytes += cpuOutputBytes(out);
      note(bytesOf(out));
      return out;
    };
    const feedsFor = (program: OrtProgram, m: number): Record<string, Feed> => {
      const feeds: Record<string, Feed> = {};
      for (const name of program.inputNames) {
        const dot = name.indexOf("."), kind = name.slice(0, dot), rest = name.slice(dot + 1);
        if (kind === "param") feeds[name] = paramFeed(rest);
        else if (kind === "draw") feeds[name] = micro[m].draws[rest];
        else if (kind === "stat") feeds[name] = stats.feed(rest);
        else if (kind === "saved") feeds[name] = saved[m].get(rest)!;
      }
      return feeds;
    };

    // 1. Statistics of the global batch, pass after pass.
    const nPasses = programs[0].passes.length;
    for (let i = 0; i < nPasses; i++) {
      const combined = new Map<string, HostTensor<Float32Array>>();
      for (const [m, p] of programs.entries()) {
        const out = await run(p.passes[i], feedsFor(p.passes[i], m));
        for (const [name, { combine }] of p.graphs.passes[i].stats) {
          const part = out[`partial.${name}`], data = f32(part, name), prev = combined.get(name);
          if (!prev) combined.set(name, { shape: part.dims.map(Number), data });
          else if (combine === "sum") { for (let k = 0; k < data.length; k++) prev.data[k] += data[k]; }
          else for (let k = 0; k < data.length; k++) prev.data[k] = Math.max(prev.data[k], data[k]);
        }
        for (const name of p.graphs.passes[i].saved.keys()) {
          const t = out[`save.${name}`]; // on the device on a resident provider
          saved[m].set(name, t);
          held += 4 * t.size;
        }
      }
      for (const [name, t] of combined) {
        stats.setHost(name, t.shape, t.data);
        held += 4 * t.data.length;
      }
      toDeviceBytes += await stats.upload(); // resident providers: once, for every micro-batch's runs
    }

    // 2. Gradients of every micro-batch, accumulated with weight B_m / B.
    const sums: Record<string, number> = {};
    const tracedMicro: Map<string, HostTensor<Float32Array>>[] = [];
    for (const [m, p] of programs.entries()) {
      const g = p.graphs.grad;
      const feeds = feedsFor(p.grad, m);
      feeds[MICRO_WEIGHT_INPUT] = { shape: [], data: new Float32Array([micro[m].samples / total]) };
      for (const name of g.withGradient) {
        if (m > 0) feeds[`acc.${name}`] = this.#acc.feed(name);
        else {
          if (!this.#zeros.has(name)) {
            this.#zeros.setHost(name, [...this.#spec.params.get(name)!.value.shape], this.#zero(name));
          }
          toDeviceBytes += await this.#zeros.upload(); // resident providers: once, kept
          feeds[`acc.${name}`] = this.#zeros.feed(name);
        }
      }
      const out = await run(p.grad, feeds);
      for (const name of g.withGradient) this.#acc.adopt(name, out[`new.acc.${name}`]);
      this.#acc.settle(); // the previous accumulation freed
      if (m === 0) held += this.#acc.totalBytes;
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
      for (const t of saved[m].values()) {
        held -= 4 * t.size;
        free(t); // this micro-batch is done with them
      }
    }
    stats.remove(() => true);
    return {
      grads: this.#acc,
      withGradient: programs.at(-1)!.graphs.grad.withGradient,
      scalars: sums,
      tracedMicro: opts.trace ? tracedMicro : undefined,
      peakBytes: peak,
      toDeviceBytes,
      toHostBytes,
    };
  }

  /** Free the accumulated gradients. */
  clearGrads(): void {
    this.#acc.remove(() => true);
  }

  #zero(name: string): Float32Array {
    return new Float32Array(this.#spec.params.get(name)!.value.data.length);
  }

  /** Free the zeros and gradients (device tensors first), then the programs. */
  async release(): Promise<void> {
    await this.#stats.dispose();
    await this.#acc.dispose();
    await this.#zeros.dispose();
    const programs = [...this.#programs.values()], apply = [...this.#apply.values()];
    this.#programs.clear();
    this.#apply.clear();
    for (const p of programs) await p.then((x) => Promise.all([...x.passes, x.grad].map((q) => q.release())), () => {});
    for (const p of apply) await p.then((x) => x.program.release(), () => {});
  }
}

/** Free a run's output: dispose a device tensor, release a host array. */
function free(t: ort.Tensor): void {
  if (t.location === "gpu-buffer") t.dispose();
  else release(t.data as Float32Array);
}
