/**
 * `OrtTrainEngine`: the `TrainEngine` (model/train_engine.ts) that runs each iteration as ONE
 * onnxruntime session call of the step graph (step_graph.ts), on the `cpu`, `webgpu` or `cuda`
 * execution provider.
 *
 * State between steps (parameters, AdamW moments created as zeros at an optimizer's first step as
 * torch does, per-optimizer step counts) lives in a `DeviceState` (ort_device.ts), keyed by the
 * step graph's input names (`param.<p>`, `exp_avg.<p>`, `exp_avg_sq.<p>`):
 *
 * - `cpu`: host arrays, fed without copying and replaced by the outputs. onnxruntime-node copies
 *   every output once into a fresh JS buffer (pre-allocated outputs do not avoid that copy: it
 *   copies them again); host_memory.ts keeps that copy cheap, and replaced arrays are released
 *   at once. CPU results are bit-identical run to run, so a restored state resumes exactly.
 * - `webgpu`: on the device. The step's `new.*` outputs are `gpu-buffer` tensors fed back as
 *   the next step's inputs; host values (initial parameters, zero moments, a restore) go up once
 *   in one identity run before the step that needs them. Per step the host sends the draws and
 *   the hyper-parameter scalars and receives `loss` and the metrics (`cpu` outputs); `snapshot`
 *   and parity traces/gradients come back through `cpu` outputs only (never `getData()` on a
 *   device tensor: it aborts the process). CPU fallback is disabled: a node the provider cannot
 *   run fails at compile time instead of running on the host unrecorded.
 * - `cuda`: onnxruntime-node 1.30 cannot leave outputs on a CUDA device (ort_program.ts), so the
 *   state stays on the host as on `cpu` and every step copies it up and back: parameters and
 *   both moments of each trainable parameter, and the EMA targets, in both directions.
 *
 * The accumulated step (`stepMicro`, ort_micro_step.ts) keeps its saved tensors and accumulated
 * gradients where the state lives, and its apply graph is fed and committed like a one-shot step.
 *
 * `deviceStats()` reports the bytes the last step moved each way and the device bytes held.
 * Engine calls run one at a time (a step never sees, nor frees, tensors another call is using).
 * The step graph is compiled on first use per draw shapes and per `StepOptions`; `evaluate`
 * graphs once per key and input shapes, on the same provider.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import type { Ops, Tensor } from "./ops.ts";
import { adamwScalars, type MicroBatch, type StepDraws, type StepHyper, type TrainStepSpec } from "../train_step.ts";
import type {
  EngineDescription,
  EngineFactory,
  EngineState,
  OptimizerState,
  StepOptions,
  StepResult,
  TrainEngine,
} from "../train_engine.ts";
import { buildTrainStep, type DrawShape, hyperInput, type TrainStepGraph, validateSpec } from "./step_graph.ts";
import { GraphOps } from "./graph_ops.ts";
import { lowerToOnnx } from "./onnx_lower.ts";
import {
  checkExecutionProvider,
  defaultThreads,
  type ExecutionProvider,
  type Feed,
  lowerTargetOf,
  ORT_VERSION,
  OrtProgram,
  type OutputLocation,
} from "./ort_program.ts";
import { cpuOutputBytes, DeviceState, hostFeedBytes } from "./ort_device.ts";
import { keepFreedMemory } from "./host_memory.ts";
import { OrtMicroStep } from "./ort_micro_step.ts";

export interface OrtTrainEngineOptions {
  /** Execution provider (default `cpu`). */
  ep?: ExecutionProvider;
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

/** What the engine moved between host and device, and holds there. */
export interface DeviceStats {
  ep: ExecutionProvider;
  /** Whether parameters and moments stay on the device between steps. */
  resident: boolean;
  /** Bytes of device tensors the engine holds now, and the most it held at once (state only). */
  liveBytes: number;
  peakBytes: number;
  /** The last step: bytes host -> device (feeds, uploads) and device -> host (`cpu` outputs); 0 on `cpu`. */
  lastStep: { toDeviceBytes: number; toHostBytes: number };
}

interface Compiled {
  step: TrainStepGraph;
  program: OrtProgram;
}

const scalar = (v: number): HostTensor<Float32Array> => ({ shape: [], data: new Float32Array([v]) });
const f32Of = (t: ort.Tensor, name: string): Float32Array => {
  if (t.type !== "float32") throw new Error(`ort engine: output '${name}' is ${t.type}, expected float32`);
  if (t.location !== "cpu") {
    throw new Error(`ort engine: output '${name}' is on ${t.location}; read it as a cpu output`);
  }
  return t.data as Float32Array;
};

export class OrtTrainEngine implements TrainEngine {
  readonly description: EngineDescription;
  readonly ep: ExecutionProvider;
  readonly #spec: TrainStepSpec;
  readonly #threads: number;
  readonly #profilePrefix?: string;
  readonly #spin: boolean;
  readonly #state: DeviceState;
  readonly #steps = new Map<string, number>();
  readonly #programs = new Map<string, Promise<Compiled>>();
  readonly #evals = new Map<string, Promise<OrtProgram>>();
  readonly #micro: OrtMicroStep;
  #lastStep = { toDeviceBytes: 0, toHostBytes: 0 };
  #disposed = false;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(spec: TrainStepSpec, opts: OrtTrainEngineOptions = {}) {
    validateSpec(spec);
    this.#spec = spec;
    this.ep = opts.ep ?? "cpu";
    this.#threads = opts.threads ?? defaultThreads();
    this.#profilePrefix = opts.profilePrefix;
    this.#spin = opts.spin ?? false;
    if (opts.keepFreedMemory ?? true) keepFreedMemory();
    this.#state = new DeviceState({ ep: this.ep, threads: this.#threads });
    for (const [name, p] of spec.params) {
      this.#state.setHost(`param.${name}`, [...p.value.shape], Float32Array.from(p.value.data));
    }
    for (const opt of spec.optimizers) this.#steps.set(opt.id, 0);
    this.description = { engine: "ort", device: this.ep, versions: { "onnxruntime-node": ORT_VERSION } };
    this.#micro = new OrtMicroStep(spec, this.#programOptions());
  }

  /** Bytes moved by the last step and device bytes held (see {@link DeviceStats}). */
  deviceStats(): DeviceStats {
    return {
      ep: this.ep,
      resident: this.#state.resident,
      liveBytes: this.#state.liveBytes,
      peakBytes: this.#state.peakBytes,
      lastStep: { ...this.#lastStep },
    };
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

  #programOptions(outputLocations?: Record<string, OutputLocation>) {
    return {
      ep: this.ep,
      threads: this.#threads,
      spin: this.#spin,
      disableCpuFallback: this.ep === "webgpu",
      outputLocations,
    };
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
        const target = lowerTargetOf(this.ep);
        const step = buildTrainStep(this.#spec, shapes, { trace: opts.trace, grads: opts.grads, target });
        // On a resident provider the new state stays on the device; everything read on the host is `cpu`.
        const locations = this.#state.resident
          ? Object.fromEntries(
            step.lowered.outputs.filter((o) => o.name.startsWith("new.")).map((o) => [o.name, "gpu-buffer" as const]),
          )
          : undefined;
        const program = await OrtProgram.create(step.lowered, {
          ...this.#programOptions(locations),
          profilePrefix: this.#profilePrefix,
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
    const { feeds, uploaded } = await this.#stateFeeds(program, step, hyper);
    const want = new Set(program.inputNames);
    for (const [name, d] of Object.entries(draws)) if (want.has(`draw.${name}`)) feeds[`draw.${name}`] = d;
    const out = await program.run(feeds);
    this.#moved(uploaded + hostFeedBytes(feeds), cpuOutputBytes(out));
    const peakTensorBytes = this.#state.totalBytes + Object.values(out).reduce((s, t) => s + 4 * t.size, 0);
    this.#commit(step, out);

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
      peakTensorBytes, // the state beside the program's outputs (onnxruntime's own arena is not visible)
      dispose: () => {},
    };
  }

  #moved(toDeviceBytes: number, toHostBytes: number): void {
    this.#lastStep = this.ep === "cpu" ? { toDeviceBytes: 0, toHostBytes: 0 } : { toDeviceBytes, toHostBytes };
  }

  /**
   * Feeds of the engine's state that `program` reads (parameters, AdamW moments, created as zeros
   * at an optimizer's first step) and its scalars (AdamW's, the EMA momentum). On a resident
   * provider host values go up first, in one run; `uploaded` is the bytes that run sent.
   */
  async #stateFeeds(
    program: OrtProgram,
    step: TrainStepGraph,
    hyper: StepHyper,
  ): Promise<{ feeds: Record<string, Feed>; uploaded: number }> {
    const feeds: Record<string, Feed> = {};
    const want = new Set(program.inputNames);
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
        const shape = [...this.#spec.params.get(p)!.value.shape];
        for (const k of [`exp_avg.${p}`, `exp_avg_sq.${p}`]) {
          if (!this.#state.has(k)) this.#state.setHost(k, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)));
        }
      }
    }
    if (want.has(hyperInput.emaMomentum)) {
      const m = hyper.emaMomentum;
      if (m === undefined) throw new Error("StepHyper.emaMomentum: the method has an EMA but no momentum was given");
      feeds[hyperInput.emaMomentum] = scalar(m);
      if (want.has(hyperInput.emaOneMinus)) feeds[hyperInput.emaOneMinus] = scalar(1 - m); // float64 on the host
    }
    const uploaded = await this.#state.upload();
    for (const name of want) if (!(name in feeds) && this.#state.has(name)) feeds[name] = this.#state.feed(name);
    return { feeds, uploaded };
  }

  /** Adopt the parameters, moments and EMA targets a step program returned (replaced state freed). */
  #commit(step: TrainStepGraph, out: Record<string, ort.Tensor>): void {
    const adopt = (key: string) => {
      this.#state.adopt(key, out[`new.${key}`]);
      delete out[`new.${key}`];
    };
    for (const [opt, ps] of step.updated) {
      for (const p of ps) for (const k of [`param.${p}`, `exp_avg.${p}`, `exp_avg_sq.${p}`]) adopt(k);
      if (ps.length) this.#steps.set(opt, this.#steps.get(opt)! + 1);
    }
    for (const e of step.emaTargets) adopt(`param.${e}`);
    this.#state.settle(); // replaced state freed: host arrays released, device tensors disposed
    for (const t of Object.values(out)) if (t.location === "gpu-buffer") t.dispose(); // none expected: never leak one
  }

  /**
   * The accumulated step (ort_micro_step.ts): statistics passes and each micro-batch's gradients,
   * then one apply program (clipping, AdamW, EMA) fed and committed like a one-shot step.
   */
  stepMicro(micro: MicroBatch[], hyper: StepHyper, opts: StepOptions = {}): Promise<StepResult> {
    if (micro.length === 1) return this.step(micro[0].draws, hyper, opts);
    return this.#serial(async () => {
      this.#live();
      const first = await this.#state.upload(); // the passes read the parameters where they live
      try {
        const acc = await this.#micro.accumulate(micro, opts, (n) => this.#state.feed(`param.${n}`));
        const { graph, program } = await this.#micro.apply(acc.withGradient);
        const { feeds, uploaded } = await this.#stateFeeds(program, graph, hyper);
        for (const p of acc.withGradient) feeds[`grad.${p}`] = acc.grads.feed(p);
        const stateBytes = this.#state.totalBytes, gradBytes = acc.grads.totalBytes;
        // Held at once: the state beside the passes' and gradients' tensors, then old and new state beside the gradients.
        const peakTensorBytes = Math.max(stateBytes + acc.peakBytes, 2 * stateBytes + gradBytes);
        const out = await program.run(feeds);
        this.#moved(
          first + acc.toDeviceBytes + uploaded + hostFeedBytes(feeds),
          acc.toHostBytes + cpuOutputBytes(out),
        );
        this.#commit(graph, out);
        const grads = opts.grads ? await acc.grads.read(acc.withGradient) : undefined;
        return {
          read: () => Promise.resolve({ ...acc.scalars }),
          tracedMicro: acc.tracedMicro,
          grads,
          peakTensorBytes,
          dispose: () => {},
        };
      } finally {
        this.#micro.clearGrads();
      }
    });
  }

  snapshot(): Promise<EngineState> {
    return this.#serial(() => this.#snapshot());
  }

  async #snapshot(): Promise<EngineState> {
    this.#live();
    const all = await this.#state.read(this.#state.keys()); // device values through cpu outputs, in one run
    const params = new Map<string, HostTensor<Float32Array>>();
    for (const n of this.#spec.params.keys()) params.set(n, all.get(`param.${n}`)!);
    const optimizers: Record<string, OptimizerState> = {};
    for (const opt of this.#spec.optimizers) {
      const tensors = new Map<string, HostTensor<Float32Array>>();
      for (const p of opt.groups.flatMap((g) => g.params)) {
        if (!all.has(`exp_avg.${p}`)) continue; // torch has no state for a parameter never stepped
        for (const k of [`exp_avg.${p}`, `exp_avg_sq.${p}`]) tensors.set(k, all.get(k)!);
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
    // Everything checked: apply (nothing is half-restored on a bad state). Host values go to the
    // device (on a resident provider) in one run before the next step or evaluation.
    const shape = (p: string) => [...this.#spec.params.get(p)!.value.shape];
    for (const [n, v] of params) this.#state.setHost(`param.${n}`, shape(n), v);
    if (state.optimizers) {
      for (const id of steps.keys()) {
        const mine = new Set(this.#spec.optimizers.find((o) => o.id === id)!.groups.flatMap((g) => g.params));
        this.#state.remove((k) => k.startsWith("exp_avg") && mine.has(k.slice(k.indexOf(".") + 1)));
      }
      for (const [p, e] of moments) {
        this.#state.setHost(`exp_avg.${p}`, shape(p), e.m!);
        this.#state.setHost(`exp_avg_sq.${p}`, shape(p), e.v!);
      }
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
    // Graph outputs under `out.<name>`: a result may share its name with an input (a method's
    // `encode` reads input `patches` and returns `patches`), and ONNX names each value once.
    for (const [name, t] of Object.entries(outs)) o.output(`out.${name}`, t);
    const data = [...o.graph.inputs].filter(([n]) => !n.startsWith("param.") || !read.has(n.slice(6)));
    const signature = JSON.stringify([key, data.map(([n, i]) => [n, i.value.dtype, i.value.shape])]);
    let p = this.#evals.get(signature);
    if (!p) {
      const lowered = lowerToOnnx(o.graph, { graphName: `evaluate_${key}`, target: lowerTargetOf(this.ep) });
      p = OrtProgram.create(lowered, this.#programOptions());
      this.#evals.set(signature, p);
      p.catch(() => this.#evals.delete(signature));
    }
    const program = await p;
    await this.#state.upload(); // parameters are read where they live; on WebGPU they go up once
    const feeds: Record<string, Feed> = {};
    for (const name of program.inputNames) {
      if (name.startsWith("param.") && read.has(name.slice(6))) feeds[name] = this.#state.feed(name);
      else {
        const host = o.graph.inputs.get(name)?.host;
        if (!host) throw new Error(`evaluate '${key}': input '${name}' has no host value`);
        feeds[name] = host;
      }
    }
    const res = await program.run(feeds);
    const result: Record<string, HostTensor<Float32Array>> = {};
    for (const name of Object.keys(outs)) {
      const t = res[`out.${name}`];
      result[name] = { shape: t.dims.map(Number), data: f32Of(t, name) };
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
    const programs = [...this.#programs.values()], evals = [...this.#evals.values()];
    this.#programs.clear();
    this.#evals.clear();
    // After any call in flight; device tensors before the sessions whose providers allocated them.
    this.#tail = this.#tail.then(async () => {
      await this.#micro.release();
      await this.#state.dispose();
      for (const c of programs) await c.then((x) => x.program.release(), () => {});
      for (const p of evals) await p.then((x) => x.release(), () => {});
    });
  }
}

/** An `EngineFactory` for the ORT engine on `opts.ep` (default `cpu`): the provider is started (checked) first. */
export function ortEngineFactory(opts: OrtTrainEngineOptions = {}): EngineFactory {
  return async (spec) => {
    await checkExecutionProvider(opts.ep ?? "cpu");
    return new OrtTrainEngine(spec, opts);
  };
}
