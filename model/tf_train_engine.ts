/**
 * `TfTrainEngine`: the tfjs engine of a `TrainStepSpec` (model/train_step.ts), eager.
 *
 * One iteration: the spec's loss on `TfOps` under tfjs's tape (`leanVariableGrads`: the same
 * gradients as `tf.variableGrads` at about half the peak memory; the tape records only ops that
 * depend on a trainable parameter, see model/ops/tf_ops.ts), then each optimizer in order
 * (global-norm clipping where it clips, AdamW per param group with model/adamw.ts), then the EMA
 * from the post-step parameters. Parameters and AdamW moments stay tfjs variables between steps.
 * `stepMicro` runs the same iteration over micro-batches: the spec's statistics passes eagerly,
 * then each micro-batch's gradients accumulated as tensors (`acc += (B_m/B) g_m`; plain tensors
 * replaced each micro-batch rather than variables: tfjs's `assign` swaps the data the same way),
 * then the one update. Each step reports its peak live tensor bytes (tf_peak_bytes.ts).
 *
 * `description` names what runs: `blas` asked for on a machine without OpenBLAS runs `wasm` and
 * says `fallbackFrom: "blas"`.
 *
 * @module
 */
import { backendFallback, backendVersions, tf } from "./engine.ts";
import { AdamW, clipGradNorm } from "./adamw.ts";
import { EngineEncoder, evalOnlySpec } from "./engine_encoder.ts";
import type { HostTensor } from "./fixture.ts";
import { activeBlas } from "./kernels/blas_backend.ts";
import { leanVariableGrads } from "./kernels/lean_grads.ts";
import type { EncoderForward } from "./method.ts";
import type { Ops, Tensor, Trace } from "./ops/ops.ts";
import { fromTf, TfOps, toTf } from "./ops/tf_ops.ts";
import { ParamStore } from "./params.ts";
import type {
  EngineDescription,
  EngineFactory,
  EngineState,
  OptimizerState,
  StepOptions,
  StepResult,
  TrainEngine,
} from "./train_engine.ts";
import {
  type BatchContext,
  type BatchStatsPass,
  checkStatsPass,
  type MicroBatch,
  type OptimizerSpec,
  type StepDraws,
  type StepHyper,
  type TrainStepSpec,
} from "./train_step.ts";
import { watchPeakBytes } from "./tf_peak_bytes.ts";

export interface TfTrainEngineOptions {
  /** `lean` (default): model/kernels/lean_grads.ts; `tfjs`: `tf.variableGrads` (same values, about twice the memory). */
  grads?: "lean" | "tfjs";
  /** Fused GELU/LayerNorm kernels where the backend has them (default true; `false`: tfjs compositions). */
  fused?: boolean;
}

/**
 * What the running tfjs backend is, for records: `tf.getBackend()` as the device (a fallback from
 * what was asked recorded as such: `blas` without OpenBLAS runs `wasm`), the versions of the
 * packages it computes with and, on `blas`, the BLAS library and kernel family
 * (e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64").
 */
export function tfEngineDescription(): EngineDescription {
  const device = tf.getBackend();
  const from = backendFallback();
  const versions = backendVersions();
  if (device !== "webgpu") delete versions.webgpuAdapter;
  const blas = device === "blas" ? activeBlas() : null;
  if (blas) versions.blas = blas.description;
  return { engine: "tfjs", device, ...(from ? { fallbackFrom: from } : {}), versions };
}

async function toHost(t: tf.Tensor): Promise<HostTensor<Float32Array>> {
  const d = await t.data();
  return { shape: [...t.shape], data: d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>) };
}

async function hostMap(ts: Map<string, tf.Tensor>): Promise<Map<string, HostTensor<Float32Array>>> {
  const out = new Map<string, HostTensor<Float32Array>>();
  for (const [n, t] of ts) out.set(n, await toHost(t));
  return out;
}

const toTfMap = (ts: Record<string, Tensor>) => Object.fromEntries(Object.entries(ts).map(([k, t]) => [k, toTf(t)]));
const fromTfMap = (ts: Record<string, tf.Tensor>) =>
  Object.fromEntries(Object.entries(ts).map(([k, t]) => [k, fromTf(t)]));

interface Optimizer {
  spec: OptimizerSpec;
  adamw: AdamW;
  /** Parameter name -> group id. */
  groupOf: Map<string, string>;
  vars: Map<string, tf.Variable>;
}

export class TfTrainEngine implements TrainEngine {
  readonly description: EngineDescription;
  readonly ops: TfOps;
  readonly #spec: TrainStepSpec;
  readonly #store: ParamStore;
  readonly #trainable: tf.Variable[];
  readonly #nameOf = new Map<string, string>();
  readonly #optimizers: Optimizer[];
  readonly #grads: TfTrainEngineOptions["grads"];
  readonly #get = (name: string): Tensor => fromTf(this.#store.get(name));

  /**
   * `store`: adopt variables already uploaded (checkpoint loaders stream a file into a `ParamStore`
   * one tensor at a time, so a large file never sits in host memory whole); `spec.params` then
   * lists none of them. The engine owns the store.
   */
  constructor(spec: TrainStepSpec, opts: TfTrainEngineOptions = {}, store?: ParamStore) {
    this.description = tfEngineDescription();
    this.ops = new TfOps({ fused: opts.fused });
    this.#spec = spec;
    this.#grads = opts.grads ?? "lean";
    this.#store = store ?? new ParamStore();
    for (const [name, p] of spec.params) this.#store.add(name, p.value, p.trainable);
    const trainable = this.#store.trainable();
    this.#trainable = [...trainable.values()];
    for (const [name, v] of trainable) this.#nameOf.set(v.name, name);
    const owner = new Map<string, string>();
    this.#optimizers = spec.optimizers.map((s) => {
      const groupOf = new Map<string, string>();
      for (const g of s.groups) {
        for (const n of g.params) {
          if (!trainable.has(n)) {
            throw new Error(`optimizer '${s.id}' group '${g.id}': '${n}' is not a trainable parameter`);
          }
          if (owner.has(n)) throw new Error(`'${n}' is in optimizer '${owner.get(n)}' and in '${s.id}/${g.id}'`);
          owner.set(n, `${s.id}/${g.id}`);
          groupOf.set(n, g.id);
        }
      }
      const vars = new Map([...groupOf.keys()].map((n) => [n, trainable.get(n)!]));
      return { spec: s, adamw: new AdamW({ betas: s.betas, eps: s.eps }), groupOf, vars };
    });
    const orphan = [...trainable.keys()].find((n) => !owner.has(n));
    if (orphan) throw new Error(`trainable parameter '${orphan}' is in no optimizer group`);
    for (const [e, s] of spec.ema?.pairs ?? []) {
      if (!this.#store.has(e) || !this.#store.has(s)) throw new Error(`EMA pair ['${e}', '${s}']: unknown parameter`);
    }
  }

  /** Parameter `name` as an `Ops` tensor of this engine (a tfjs variable). */
  get(name: string): Tensor {
    return this.#get(name);
  }

  #checkHyper(hyper: StepHyper): void {
    for (const { spec } of this.#optimizers) {
      for (const g of spec.groups) {
        const h = hyper.groups[spec.id]?.[g.id];
        if (!h || !Number.isFinite(h.lr) || !Number.isFinite(h.weightDecay)) {
          throw new Error(
            `hyper.groups['${spec.id}']['${g.id}']: expected finite lr and weightDecay, got ${JSON.stringify(h)}`,
          );
        }
      }
    }
    if (this.#spec.ema && !Number.isFinite(hyper.emaMomentum)) {
      throw new Error(`hyper.emaMomentum: the step has an EMA and needs a momentum, got ${hyper.emaMomentum}`);
    }
  }

  #checkStep(hyper: StepHyper): void {
    if (this.#trainable.length === 0) {
      throw new Error("TfTrainEngine.step: no parameter is trainable (an engine over evaluation weights only)");
    }
    this.#checkHyper(hyper);
  }

  /** The loss of `draws` and the gradient of every trainable parameter it reaches, by name. */
  #lossAndGrads(draws: StepDraws, traced: Map<string, tf.Tensor> | undefined, batch?: BatchContext) {
    const o = this.ops;
    const trace: Trace | undefined = traced ? (n, t) => void traced.set(n, tf.keep(toTf(t))) : undefined;
    let metrics: Record<string, tf.Tensor> = {};
    const f = () => {
      const inputs = Object.fromEntries(Object.entries(draws).map(([k, v]) => [k, o.input(k, v)]));
      const out = this.#spec.loss(o, this.#get, inputs, trace, batch);
      metrics = Object.fromEntries(Object.entries(out.metrics).map(([k, t]) => [k, tf.keep(toTf(t))]));
      return toTf(out.loss) as tf.Scalar;
    };
    const vars = this.#trainable;
    const { value, grads } = o.withGradients(
      vars,
      () => this.#grads === "tfjs" ? tf.variableGrads(f, vars) : leanVariableGrads(f, vars),
    );
    const byName = new Map(Object.entries(grads).map(([vn, g]) => [this.#nameOf.get(vn)!, g]));
    return { value, metrics, grads: byName };
  }

  /** Steps 2 and 3: each optimizer on `grads` (disposed here), then the EMA. */
  #apply(grads: Map<string, tf.Tensor>, hyper: StepHyper): void {
    for (const { spec, adamw, groupOf, vars } of this.#optimizers) {
      let g = new Map([...vars.keys()].filter((n) => grads.has(n)).map((n) => [n, grads.get(n)!]));
      if (spec.clipGradNorm !== undefined) g = clipGradNorm(g, spec.clipGradNorm);
      adamw.step(vars, g, (n) => hyper.groups[spec.id][groupOf.get(n)!]);
      if (spec.clipGradNorm !== undefined) tf.dispose([...g.values()]);
    }
    tf.dispose([...grads.values()]);
    if (this.#spec.ema) {
      const m = hyper.emaMomentum!;
      tf.tidy(() => {
        for (const [e, s] of this.#spec.ema!.pairs) {
          const ev = this.#store.get(e);
          ev.assign(tf.add(tf.mul(ev, m), tf.mul(this.#store.get(s), 1 - m)));
        }
      });
    }
  }

  async step(draws: StepDraws, hyper: StepHyper, opts: StepOptions = {}): Promise<StepResult> {
    this.#checkStep(hyper);
    const watch = watchPeakBytes();
    try {
      const traced = new Map<string, tf.Tensor>();
      const { value, metrics, grads } = this.#lossAndGrads(draws, opts.trace ? traced : undefined);
      const hostGrads = opts.grads ? await hostMap(grads) : undefined;
      this.#apply(grads, hyper);
      let hostTraced: Map<string, HostTensor<Float32Array>> | undefined;
      if (opts.trace) {
        hostTraced = await hostMap(traced);
        tf.dispose([...traced.values()].filter((t) => t !== value && !Object.values(metrics).includes(t)));
      }
      const owned = [value, ...Object.values(metrics)];
      return {
        read: async () => {
          const out: Record<string, number> = { loss: (await value.data())[0] };
          for (const [k, t] of Object.entries(metrics)) out[k] = (await t.data())[0];
          return out;
        },
        traced: hostTraced,
        grads: hostGrads,
        peakTensorBytes: watch.stop(),
        dispose: () => tf.dispose(owned),
      };
    } finally {
      watch.stop();
    }
  }

  /**
   * The accumulated step: each `batchStats` pass over every micro-batch (partials combined on the
   * device in micro-batch order, saved tensors kept per micro-batch), then every micro-batch's loss
   * and gradients given the statistics, accumulated as `acc += (B_m/B) grad_m`, then one update.
   */
  async stepMicro(micro: MicroBatch[], hyper: StepHyper, opts: StepOptions = {}): Promise<StepResult> {
    if (micro.length === 1) return this.step(micro[0].draws, hyper, opts);
    this.#checkStep(hyper);
    const total = micro.reduce((s, m) => s + m.samples, 0);
    if (!(total > 0) || micro.some((m) => !(m.samples > 0))) {
      throw new Error(`stepMicro: every micro-batch needs samples > 0, got [${micro.map((m) => m.samples)}]`);
    }
    const watch = watchPeakBytes();
    const stats: Record<string, tf.Tensor> = {};
    const saved = micro.map((): Record<string, tf.Tensor> => ({}));
    const acc = new Map<string, tf.Tensor>();
    const results: { w: number; owned: tf.Tensor[]; names: string[] }[] = [];
    const tracedMicro: Map<string, HostTensor<Float32Array>>[] = [];
    try {
      for (const [i, pass] of (this.#spec.batchStats ?? []).entries()) this.#statsPass(i, pass, micro, stats, saved);
      for (const [m, mb] of micro.entries()) {
        const traced = new Map<string, tf.Tensor>();
        const batch = { stats: fromTfMap(stats), saved: fromTfMap(saved[m]) };
        const { value, metrics, grads } = this.#lossAndGrads(mb.draws, opts.trace ? traced : undefined, batch);
        const w = mb.samples / total;
        for (const [n, g] of grads) {
          const prev = acc.get(n);
          acc.set(n, tf.tidy(() => (prev ? tf.add(prev, tf.mul(g, w)) : tf.mul(g, w))));
          tf.dispose([g, ...(prev ? [prev] : [])]);
        }
        tf.dispose(Object.values(saved[m])); // this micro-batch is done with them
        saved[m] = {};
        results.push({ w, owned: [value, ...Object.values(metrics)], names: ["loss", ...Object.keys(metrics)] });
        if (opts.trace) {
          tracedMicro.push(await hostMap(traced));
          tf.dispose([...traced.values()].filter((t) => t !== value && !Object.values(metrics).includes(t)));
        }
      }
      const hostGrads = opts.grads ? await hostMap(acc) : undefined;
      this.#apply(acc, hyper);
      acc.clear();
      return {
        read: async () => {
          const out: Record<string, number> = {};
          for (const { w, owned, names } of results) {
            for (const [k, t] of owned.entries()) out[names[k]] = (out[names[k]] ?? 0) + w * (await t.data())[0];
          }
          return out;
        },
        tracedMicro: opts.trace ? tracedMicro : undefined,
        grads: hostGrads,
        peakTensorBytes: watch.stop(),
        dispose: () => tf.dispose(results.flatMap((r) => r.owned)),
      };
    } catch (e) {
      tf.dispose(results.flatMap((r) => r.owned));
      throw e;
    } finally {
      watch.stop();
      tf.dispose([...Object.values(stats), ...saved.flatMap((s) => Object.values(s)), ...acc.values()]);
    }
  }

  /** Pass `index` over every micro-batch: its statistics combined into `stats`, its saves into `saved[m]`. */
  #statsPass(
    index: number,
    pass: BatchStatsPass,
    micro: MicroBatch[],
    stats: Record<string, tf.Tensor>,
    saved: Record<string, tf.Tensor>[],
  ): void {
    const o = this.ops;
    const combined: Record<string, tf.Tensor> = {};
    for (const [m, mb] of micro.entries()) {
      const earlier = { stats: new Set(Object.keys(stats)), saved: new Set(Object.keys(saved[m])) };
      const out = tf.tidy(() => {
        const inputs = Object.fromEntries(Object.entries(mb.draws).map(([k, v]) => [k, o.input(k, v)]));
        const r = pass.compute(o, this.#get, inputs, { stats: fromTfMap(stats), saved: fromTfMap(saved[m]) });
        return { partial: toTfMap(r.partial), save: toTfMap(r.save ?? {}) };
      });
      try {
        checkStatsPass(index, pass, out, earlier);
      } catch (e) {
        tf.dispose([...Object.values(out.partial), ...Object.values(out.save), ...Object.values(combined)]);
        throw e;
      }
      for (const [name, combine] of Object.entries(pass.combine)) {
        const prev = combined[name], part = out.partial[name];
        if (!prev) combined[name] = part;
        else {
          combined[name] = combine === "sum" ? tf.add(prev, part) : tf.maximum(prev, part);
          tf.dispose([prev, part]);
        }
      }
      Object.assign(saved[m], out.save);
    }
    Object.assign(stats, combined);
  }

  async snapshot(): Promise<EngineState> {
    const optimizers: Record<string, OptimizerState> = {};
    for (const { spec, adamw } of this.#optimizers) optimizers[spec.id] = await adamw.stateToHost();
    return { params: await this.#store.toHost(), optimizers };
  }

  // deno-lint-ignore require-await
  async restore(state: Partial<EngineState>): Promise<void> {
    if (state.params) this.#store.assign(state.params);
    for (const [id, st] of Object.entries(state.optimizers ?? {})) {
      const opt = this.#optimizers.find((x) => x.spec.id === id);
      if (!opt) {
        throw new Error(`restore: unknown optimizer '${id}' (this step has ${this.#optimizers.map((x) => x.spec.id)})`);
      }
      for (const key of st.tensors.keys()) {
        const name = key.slice(key.indexOf(".") + 1);
        if (!opt.vars.has(name)) {
          throw new Error(`restore: optimizer '${id}' state '${key}' names no parameter it trains`);
        }
      }
      opt.adamw.loadState(st.step, st.tensors);
    }
  }

  async evaluate(
    _key: string,
    fn: (o: Ops, get: (name: string) => Tensor) => Record<string, Tensor>,
  ): Promise<Record<string, HostTensor<Float32Array>>> {
    const outs = tf.tidy(() => {
      const r = fn(this.ops, this.#get);
      return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, toTf(t)]));
    });
    const host: Record<string, HostTensor<Float32Array>> = {};
    for (const [k, t] of Object.entries(outs)) host[k] = await toHost(t);
    tf.dispose(Object.values(outs).filter((t) => !(t instanceof tf.Variable)));
    return host;
  }

  dispose(): void {
    for (const { adamw } of this.#optimizers) adamw.dispose();
    this.#store.dispose();
  }
}

/** The tfjs engine as an `EngineFactory` (the default of the trainer, parity and speed). */
export const createTfTrainEngine: EngineFactory = (spec) => Promise.resolve(new TfTrainEngine(spec));

/** A factory with options (`deno task speed --grads tfjs`, `--blocks nn`). */
export function tfEngineFactory(opts: TfTrainEngineOptions = {}): EngineFactory {
  return (spec) => Promise.resolve(new TfTrainEngine(spec, opts));
}

/** A tfjs `VisionEncoder` of `forward` on `params` (all of a method's, or a checkpoint's backbone); it owns its engine. */
export function tfEncoder(forward: EncoderForward, params: Map<string, HostTensor<Float32Array>>): EngineEncoder {
  return new EngineEncoder(new TfTrainEngine(evalOnlySpec(params)), forward, true);
}

/** A tfjs `VisionEncoder` of `forward` on weights already in `store` (streamed from a file); it owns both. */
export function tfEncoderFromStore(forward: EncoderForward, store: ParamStore): EngineEncoder {
  return new EngineEncoder(new TfTrainEngine(evalOnlySpec(new Map()), {}, store), forward, true);
}
