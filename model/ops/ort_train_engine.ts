/**
 * `OrtTrainEngine`: the `TrainEngine` (model/train_engine.ts) that runs each iteration as ONE
 * onnxruntime session call of the step graph (step_graph.ts) on the CPU provider.
 *
 * State between steps lives on the host as typed arrays: parameters, AdamW moments (created as
 * zeros at an optimizer's first step, as torch) and per-optimizer step counts. Each step feeds
 * them without copying (onnxruntime wraps the arrays) and takes the new values from the outputs.
 * onnxruntime-node copies every output once into a fresh JS buffer (pre-allocated outputs do not
 * avoid that copy: it copies them again); host_memory.ts keeps that copy cheap by reusing freed
 * memory, and the replaced state arrays are released at once. Engine calls run one at a time
 * (a step never sees, nor frees, arrays another call is using). The step graph is compiled on
 * first use per draw shapes and per `StepOptions`; `evaluate` graphs once per key and input
 * shapes. CPU results are bit-identical run to run, so a restored state resumes exactly.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import type { Ops, Tensor } from "./ops.ts";
import { adamwScalars, type StepDraws, type StepHyper, type TrainStepSpec } from "../train_step.ts";
import type {
  EngineDescription,
  EngineState,
  OptimizerState,
  StepOptions,
  StepResult,
  TrainEngine,
} from "../train_engine.ts";
import { buildTrainStep, type DrawShape, hyperInput, type TrainStepGraph, validateSpec } from "./step_graph.ts";
import { GraphOps } from "./graph_ops.ts";
import { lowerToOnnx } from "./onnx_lower.ts";
import { defaultThreads, type Feed, ORT_VERSION, OrtProgram } from "./ort_program.ts";
import { keepFreedMemory, release } from "./host_memory.ts";

export interface OrtTrainEngineOptions {
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /**
   * Let idle pool threads spin for work between operators (onnxruntime's own default). Off by
   * default here: on a loaded 2-core machine spinning cost 30% more CPU per step and up to half
   * the throughput (README.md). `deno task speed --engine ort --spin` times it.
   */
  spin?: boolean;
  /**
   * Tune glibc so the buffers onnxruntime-node returns each step reuse freed memory instead of
   * page-faulting fresh memory in (host_memory.ts; default true).
   */
  keepFreedMemory?: boolean;
  /** Development: profile every step program into `<prefix>_<date>.json` (see bench/speed_ort.ts). */
  profilePrefix?: string;
}

interface Compiled {
  step: TrainStepGraph;
  program: OrtProgram;
}

const scalar = (v: number): HostTensor<Float32Array> => ({ shape: [], data: new Float32Array([v]) });
const f32Of = (t: ort.Tensor, name: string): Float32Array => {
  if (t.type !== "float32") throw new Error(`ort engine: output '${name}' is ${t.type}, expected float32`);
  return t.data as Float32Array;
};

export class OrtTrainEngine implements TrainEngine {
  readonly description: EngineDescription;
  readonly #spec: TrainStepSpec;
  readonly #threads: number;
  readonly #profilePrefix?: string;
  readonly #spin: boolean;
  readonly #params = new Map<string, Float32Array>();
  readonly #moments = new Map<string, { m: Float32Array; v: Float32Array }>();
  readonly #steps = new Map<string, number>();
  readonly #programs = new Map<string, Promise<Compiled>>();
  readonly #evals = new Map<string, Promise<OrtProgram>>();
  #disposed = false;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(spec: TrainStepSpec, opts: OrtTrainEngineOptions = {}) {
    validateSpec(spec);
    this.#spec = spec;
    this.#threads = opts.threads ?? defaultThreads();
    this.#profilePrefix = opts.profilePrefix;
    this.#spin = opts.spin ?? false;
    if (opts.keepFreedMemory ?? true) keepFreedMemory();
    for (const [name, p] of spec.params) this.#params.set(name, Float32Array.from(p.value.data));
    for (const opt of spec.optimizers) this.#steps.set(opt.id, 0);
    this.description = { engine: "ort", device: "cpu", versions: { "onnxruntime-node": ORT_VERSION } };
  }

  #live(): void {
    if (this.#disposed) throw new Error("OrtTrainEngine: used after dispose()");
  }

  /** Run engine calls one after another, whatever the caller awaits. */
  #serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  /** The compiled step for these draw shapes and options (compiled once, then reused). */
  #compiled(draws: StepDraws, opts: StepOptions): Promise<Compiled> {
    const shapes: Record<string, DrawShape> = {};
    for (const [n, d] of Object.entries(draws)) {
      shapes[n] = { shape: [...d.shape], dtype: d.data instanceof Int32Array ? "int32" : "float32" };
    }
    const key = JSON.stringify([opts.trace ?? false, opts.grads ?? false, shapes]);
    let c = this.#programs.get(key);
    if (!c) {
      c = (async () => {
        const step = buildTrainStep(this.#spec, shapes, { trace: opts.trace, grads: opts.grads });
        const program = await OrtProgram.create(step.lowered, {
          threads: this.#threads,
          profilePrefix: this.#profilePrefix,
          spin: this.#spin,
        });
        return { step, program };
      })();
      this.#programs.set(key, c);
      c.catch(() => this.#programs.delete(key));
    }
    return c;
  }

  step(draws: StepDraws, hyper: StepHyper, opts: StepOptions = {}): Promise<StepResult> {
    return this.#serial(() => this.#step(draws, hyper, opts));
  }

  async #step(draws: StepDraws, hyper: StepHyper, opts: StepOptions): Promise<StepResult> {
    this.#live();
    const { step, program } = await this.#compiled(draws, opts);
    const feeds: Record<string, Feed> = {};
    const want = new Set(program.inputNames);
    for (const [name, value] of this.#params) {
      if (want.has(`param.${name}`)) {
        feeds[`param.${name}`] = { shape: this.#spec.params.get(name)!.value.shape, data: value };
      }
    }
    for (const [name, d] of Object.entries(draws)) if (want.has(`draw.${name}`)) feeds[`draw.${name}`] = d;
    for (const opt of this.#spec.optimizers) {
      const t = this.#steps.get(opt.id)! + 1;
      const groups = hyper.groups[opt.id];
      for (const group of opt.groups) {
        if (!want.has(hyperInput.decay(opt.id, group.id))) continue;
        const h = groups?.[group.id];
        if (!h) throw new Error(`StepHyper.groups['${opt.id}']['${group.id}']: no lr/weightDecay for this group`);
        const s = adamwScalars(h.lr, h.weightDecay, opt.betas, t);
        feeds[hyperInput.decay(opt.id, group.id)] = scalar(s.decay);
        feeds[hyperInput.stepSize(opt.id, group.id)] = scalar(s.stepSize);
        feeds[hyperInput.bc2Sqrt(opt.id)] = scalar(s.bc2Sqrt);
      }
      for (const p of step.updated.get(opt.id) ?? []) {
        const mom = this.#momentsOf(p);
        const shape = this.#spec.params.get(p)!.value.shape;
        feeds[`exp_avg.${p}`] = { shape, data: mom.m };
        feeds[`exp_avg_sq.${p}`] = { shape, data: mom.v };
      }
    }
    if (want.has(hyperInput.emaMomentum)) {
      const m = hyper.emaMomentum;
      if (m === undefined) throw new Error("StepHyper.emaMomentum: the method has an EMA but no momentum was given");
      feeds[hyperInput.emaMomentum] = scalar(m);
      if (want.has(hyperInput.emaOneMinus)) feeds[hyperInput.emaOneMinus] = scalar(1 - m); // float64 on the host
    }

    const out = await program.run(feeds);
    const replaced: Float32Array[] = [];
    const swap = (p: string, data: Float32Array) => {
      replaced.push(this.#params.get(p)!);
      this.#params.set(p, data);
    };
    for (const [opt, ps] of step.updated) {
      for (const p of ps) {
        swap(p, f32Of(out[`new.param.${p}`], p));
        const mom = this.#moments.get(p)!;
        replaced.push(mom.m, mom.v);
        this.#moments.set(p, { m: f32Of(out[`new.exp_avg.${p}`], p), v: f32Of(out[`new.exp_avg_sq.${p}`], p) });
      }
      if (ps.length) this.#steps.set(opt, this.#steps.get(opt)! + 1);
    }
    for (const e of step.emaTargets) swap(e, f32Of(out[`new.param.${e}`], e));
    for (const a of replaced) release(a); // only the engine holds its state arrays (snapshot copies)

    const scalars: Record<string, number> = { loss: f32Of(out.loss, "loss")[0] };
    for (const m of step.metrics) scalars[m] = f32Of(out[`metric.${m}`], m)[0];
    const host = (name: string): HostTensor<Float32Array> => ({
      shape: out[name].dims.map(Number),
      data: f32Of(out[name], name),
    });
    return {
      read: () => Promise.resolve({ ...scalars }),
      traced: opts.trace ? new Map(step.traces.map((t) => [t, host(`trace.${t}`)])) : undefined,
      grads: opts.grads ? new Map([...step.updated.values()].flat().map((p) => [p, host(`grad.${p}`)])) : undefined,
      dispose: () => {},
    };
  }

  #momentsOf(p: string): { m: Float32Array; v: Float32Array } {
    let mom = this.#moments.get(p);
    if (!mom) {
      const n = this.#spec.params.get(p)!.value.data.length;
      mom = { m: new Float32Array(n), v: new Float32Array(n) };
      this.#moments.set(p, mom);
    }
    return mom;
  }

  snapshot(): Promise<EngineState> {
    return this.#serial(() => this.#snapshot());
  }

  #snapshot(): EngineState {
    this.#live();
    const params = new Map<string, HostTensor<Float32Array>>();
    for (const [n, v] of this.#params) {
      params.set(n, { shape: [...this.#spec.params.get(n)!.value.shape], data: v.slice() });
    }
    const optimizers: Record<string, OptimizerState> = {};
    for (const opt of this.#spec.optimizers) {
      const tensors = new Map<string, HostTensor<Float32Array>>();
      for (const p of opt.groups.flatMap((g) => g.params)) {
        const mom = this.#moments.get(p);
        if (!mom) continue; // torch has no state for a parameter never stepped
        const shape = [...this.#spec.params.get(p)!.value.shape];
        tensors.set(`exp_avg.${p}`, { shape, data: mom.m.slice() });
        tensors.set(`exp_avg_sq.${p}`, { shape, data: mom.v.slice() });
      }
      optimizers[opt.id] = { step: this.#steps.get(opt.id)!, tensors };
    }
    return { params, optimizers };
  }

  restore(state: Partial<EngineState>): Promise<void> {
    return this.#serial(() => this.#restore(state));
  }

  #restore(state: Partial<EngineState>): void {
    this.#live();
    const check = (where: string, name: string, t: HostTensor<Float32Array>) => {
      const ps = this.#spec.params.get(name);
      if (!ps) throw new Error(`OrtTrainEngine.restore: ${where} '${name}' is not a parameter of this method`);
      if (t.shape.join() !== ps.value.shape.join() || t.data.length !== ps.value.data.length) {
        throw new Error(
          `OrtTrainEngine.restore: ${where} '${name}' is [${t.shape}], the method has [${ps.value.shape}]`,
        );
      }
    };
    const params = new Map<string, Float32Array>();
    for (const [n, t] of state.params ?? []) {
      check("parameter", n, t);
      params.set(n, Float32Array.from(t.data));
    }
    const moments = new Map<string, { m?: Float32Array; v?: Float32Array }>();
    const steps = new Map<string, number>();
    for (const [id, os] of Object.entries(state.optimizers ?? {})) {
      const opt = this.#spec.optimizers.find((o) => o.id === id);
      if (!opt) {
        throw new Error(
          `OrtTrainEngine.restore: unknown optimizer '${id}' (have ${this.#spec.optimizers.map((o) => o.id)})`,
        );
      }
      const mine = new Set(opt.groups.flatMap((g) => g.params));
      for (const [key, t] of os.tensors) {
        const m = key.match(/^(exp_avg|exp_avg_sq)\.(.+)$/);
        if (!m || !mine.has(m[2])) throw new Error(`OrtTrainEngine.restore: optimizer '${id}' has no state '${key}'`);
        check(`state of optimizer '${id}'`, m[2], t);
        const e = moments.get(m[2]) ?? {};
        e[m[1] === "exp_avg" ? "m" : "v"] = Float32Array.from(t.data);
        moments.set(m[2], e);
      }
      steps.set(id, os.step);
    }
    for (const [p, e] of moments) {
      if (!e.m || !e.v) throw new Error(`OrtTrainEngine.restore: parameter '${p}' has only one of exp_avg, exp_avg_sq`);
    }
    // Everything checked: apply (nothing is half-restored on a bad state).
    for (const [n, v] of params) this.#params.set(n, v);
    if (state.optimizers) {
      for (const id of steps.keys()) {
        const opt = this.#spec.optimizers.find((o) => o.id === id)!;
        for (const p of opt.groups.flatMap((g) => g.params)) this.#moments.delete(p);
      }
      for (const [p, e] of moments) this.#moments.set(p, { m: e.m!, v: e.v! });
      for (const [id, s] of steps) this.#steps.set(id, s);
    }
  }

  evaluate(
    key: string,
    fn: (o: Ops, get: (name: string) => Tensor) => Record<string, Tensor>,
  ): Promise<Record<string, HostTensor<Float32Array>>> {
    return this.#serial(() => this.#evaluate(key, fn));
  }

  async #evaluate(
    key: string,
    fn: (o: Ops, get: (name: string) => Tensor) => Record<string, Tensor>,
  ): Promise<Record<string, HostTensor<Float32Array>>> {
    this.#live();
    const o = new GraphOps();
    const read = new Set<string>();
    const get = (name: string): Tensor => {
      const ps = this.#spec.params.get(name);
      if (!ps) throw new Error(`evaluate '${key}': unknown parameter '${name}'`);
      read.add(name);
      return o.graph.inputs.get(`param.${name}`)?.value ?? o.inputOf(`param.${name}`, [...ps.value.shape], "float32");
    };
    const outs = fn(o, get);
    for (const [name, t] of Object.entries(outs)) o.output(name, t);
    const data = [...o.graph.inputs].filter(([n]) => !n.startsWith("param.") || !read.has(n.slice(6)));
    const signature = JSON.stringify([key, data.map(([n, i]) => [n, i.value.dtype, i.value.shape])]);
    let p = this.#evals.get(signature);
    if (!p) {
      const lowered = lowerToOnnx(o.graph, { graphName: `evaluate_${key}` });
      p = OrtProgram.create(lowered, { threads: this.#threads, spin: this.#spin });
      this.#evals.set(signature, p);
      p.catch(() => this.#evals.delete(signature));
    }
    const program = await p;
    const feeds: Record<string, Feed> = {};
    for (const name of program.inputNames) {
      if (name.startsWith("param.") && read.has(name.slice(6))) {
        const n = name.slice(6);
        feeds[name] = { shape: this.#spec.params.get(n)!.value.shape, data: this.#params.get(n)! };
      } else {
        const host = o.graph.inputs.get(name)?.host;
        if (!host) throw new Error(`evaluate '${key}': input '${name}' has no host value`);
        feeds[name] = host;
      }
    }
    const res = await program.run(feeds);
    const result: Record<string, HostTensor<Float32Array>> = {};
    for (const name of Object.keys(outs)) {
      result[name] = { shape: res[name].dims.map(Number), data: f32Of(res[name], name) };
    }
    return result;
  }

  /** Write the profiles of the step programs (with `profilePrefix`). */
  endProfiling(): Promise<void> {
    return this.#serial(async () => {
      for (const c of this.#programs.values()) (await c).program.endProfiling();
    });
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const c of this.#programs.values()) c.then((x) => x.program.release(), () => {});
    for (const p of this.#evals.values()) p.then((x) => x.release(), () => {});
    this.#programs.clear();
    this.#evals.clear();
  }
}
