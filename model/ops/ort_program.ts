/**
 * `OrtProgram`: one lowered graph (onnx_lower.ts) compiled to an onnxruntime-node session, run
 * with named feeds and fetches, on the `cpu`, `webgpu` or `cuda` execution provider.
 *
 * - CPU provider: intra-op threads = cores (the MLAS thread pool), inter-op 1, graph
 *   optimisation "all" (Gemm/MatMul+Transpose fusions, Gelu, constant folding).
 * - WebGPU provider (Dawn over Vulkan): `outputLocations` asks onnxruntime to leave chosen
 *   outputs on the device (`gpu-buffer`), to be fed back as the next run's inputs, in this
 *   session or another (sessions share one device). Never read such a tensor with `getData()`:
 *   it aborts the whole process; read through an output declared `cpu` (ort_device.ts).
 * - CUDA provider: `gpu-buffer` outputs are not available there. onnxruntime-node 1.30 binds a
 *   `gpu-buffer` output to the WebGPU allocator (`WebGPU_Buf`) whatever the provider, so every
 *   output of a CUDA session comes back to the host; asking for one is an error here.
 * - WebGPU graph capture is out of reach from onnxruntime-node 1.30: the binding rejects the
 *   provider option `enableGraphCapture` ("unrecognized option"), and the WebGPU provider reads
 *   its settings when it is appended, before session-config entries (`extra`) are applied (an
 *   invalid `preferredLayout` passes through `extra` unnoticed); README.md, "The GPU providers".
 * - A provider that cannot start fails in one line naming the missing piece (ep_diagnose.ts).
 * - Feeds are checked against the graph (names, dtypes, shapes) before running, and
 *   onnxruntime's errors come back naming the recorded node (`matMul_12`) and its shapes.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import { epStartMessage } from "./ep_diagnose.ts";
import { GraphOps } from "./graph_ops.ts";
import { type LoweredGraph, type LowerTarget, lowerToOnnx } from "./onnx_lower.ts";

/** onnxruntime execution providers the engine runs on (`--ep`). */
export const EXECUTION_PROVIDERS = ["cpu", "webgpu", "cuda"] as const;
export type ExecutionProvider = typeof EXECUTION_PROVIDERS[number];
export type OutputLocation = "cpu" | "gpu-buffer";

/** The lowering target of a provider: WebGPU needs its own operator choices (onnx_emit.ts); CUDA runs the CPU's. */
export function lowerTargetOf(ep: ExecutionProvider): LowerTarget {
  return ep === "webgpu" ? "webgpu" : "cpu";
}

/** Parse an `--ep` value; one line naming the flag and the valid values otherwise. */
export function parseExecutionProvider(v: string | undefined, flag = "--ep"): ExecutionProvider {
  const ep = v ?? "cpu";
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(ep)) {
    throw new Error(`${flag}: unknown execution provider '${ep}' (expected ${EXECUTION_PROVIDERS.join(", ")})`);
  }
  return ep as ExecutionProvider;
}

export interface ProgramOptions {
  ep?: ExecutionProvider;
  /** Intra-op threads of the CPU provider (default: all cores). */
  threads?: number;
  /** Where each output is left (default `cpu`); `gpu-buffer` keeps it on the device (WebGPU only). */
  outputLocations?: Record<string, OutputLocation>;
  /**
   * Let idle pool threads spin for work (onnxruntime's default). Spinning shortens each
   * operator's start but burns CPU that other processes on a shared machine need.
   */
  spin?: boolean;
  /** Fail at creation if any node would fall back to the CPU (checks WebGPU coverage). */
  disableCpuFallback?: boolean;
  /** Write the model onnxruntime optimised to this path (inspection of fusions). */
  optimizedModelPath?: string;
  /** Record per-node timings into `<prefix>_<date>.json` until `endProfiling()` (bench/speed_ort.ts). */
  profilePrefix?: string;
}

/** A feed: a host tensor (wrapped without copying) or an onnxruntime tensor (e.g. a GPU output). */
export type Feed = HostTensor | ort.Tensor;

/** The onnxruntime-node version that runs programs (for records). */
export const ORT_VERSION: string = ort.env.versions.node ?? ort.env.versions.common;

export function defaultThreads(): number {
  return navigator.hardwareConcurrency || 1;
}

export class OrtProgram {
  readonly lowered: LoweredGraph;
  readonly ep: ExecutionProvider;
  #session: ort.InferenceSession | null;
  readonly #inputs: Map<string, { dtype: string; dims: number[] }>;

  private constructor(session: ort.InferenceSession, lowered: LoweredGraph, ep: ExecutionProvider) {
    this.#session = session;
    this.lowered = lowered;
    this.ep = ep;
    this.#inputs = new Map(lowered.inputs.map((i) => [i.name, { dtype: i.dtype, dims: i.dims as number[] }]));
  }

  static async create(lowered: LoweredGraph, opts: ProgramOptions = {}): Promise<OrtProgram> {
    const ep = opts.ep ?? "cpu";
    const extra: Record<string, Record<string, string>> = { session: {} };
    if (opts.disableCpuFallback) extra.session.disable_cpu_ep_fallback = "1";
    if (opts.spin !== undefined) extra.session["intra_op.allow_spinning"] = opts.spin ? "1" : "0";
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      intraOpNumThreads: opts.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      enableCpuMemArena: true,
      enableMemPattern: true,
      extra,
    };
    if (opts.outputLocations) {
      const gpu = Object.entries(opts.outputLocations).filter(([, l]) => l === "gpu-buffer").map(([n]) => n);
      if (gpu.length && ep !== "webgpu") {
        throw new Error(
          `OrtProgram: output '${gpu[0]}' asked for 'gpu-buffer' on the ${ep} provider; onnxruntime-node binds ` +
            "gpu-buffer outputs to WebGPU memory only (leave them 'cpu')",
        );
      }
      const locs: Record<string, OutputLocation> = {};
      for (const o of lowered.outputs) locs[o.name] = opts.outputLocations[o.name] ?? "cpu";
      options.preferredOutputLocation = locs;
    }
    if (opts.optimizedModelPath) options.optimizedModelFilePath = opts.optimizedModelPath;
    if (opts.profilePrefix) {
      options.enableProfiling = true;
      options.profileFilePrefix = opts.profilePrefix;
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(lowered.bytes, options);
    } catch (e) {
      throw new Error(
        epStartMessage(ep, e) ?? `onnxruntime (${ep}) could not compile the graph: ${explain(e, lowered)}`,
      );
    }
    return new OrtProgram(session, lowered, ep);
  }

  /** Names of the graph inputs (exactly these must be fed). */
  get inputNames(): string[] {
    return [...this.#inputs.keys()];
  }

  get outputNames(): string[] {
    return this.lowered.outputs.map((o) => o.name);
  }

  /** Run with `feeds` (every graph input) and return `fetch` (default: every output). */
  async run(feeds: Record<string, Feed>, fetch: string[] = this.outputNames): Promise<Record<string, ort.Tensor>> {
    const session = this.#session;
    if (!session) throw new Error("OrtProgram.run: used after release()");
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, spec] of this.#inputs) {
      const f = feeds[name];
      if (f === undefined) {
        const missing = this.inputNames.filter((n) => feeds[n] === undefined);
        throw new Error(`OrtProgram.run: no feed for input(s) ${missing.map((n) => `'${n}'`).join(", ")}`);
      }
      ortFeeds[name] = checkFeed(name, f, spec);
    }
    for (const name of Object.keys(feeds)) {
      if (!this.#inputs.has(name)) {
        throw new Error(
          `OrtProgram.run: '${name}' is not an input of the graph (inputs: ${this.inputNames.join(", ")})`,
        );
      }
    }
    for (const name of fetch) {
      if (!this.outputNames.includes(name)) throw new Error(`OrtProgram.run: '${name}' is not an output of the graph`);
    }
    try {
      return await session.run(ortFeeds, fetch);
    } catch (e) {
      throw new Error(`onnxruntime (${this.ep}) failed: ${explain(e, this.lowered)}`);
    }
  }

  /** Stop profiling and write the profile (only with `profilePrefix`). */
  endProfiling(): void {
    this.#session?.endProfiling();
  }

  async release(): Promise<void> {
    const s = this.#session;
    this.#session = null;
    if (s) await s.release();
  }
}

function checkFeed(name: string, f: Feed, spec: { dtype: string; dims: number[] }): ort.Tensor {
  const t = f instanceof ort.Tensor ? f : null;
  const dims = t ? t.dims.map(Number) : (f as HostTensor).shape;
  const dtype = t ? t.type : (f as HostTensor).data instanceof Int32Array ? "int32" : "float32";
  if (dtype !== spec.dtype || dims.length !== spec.dims.length || dims.some((d, i) => d !== spec.dims[i])) {
    throw new Error(
      `OrtProgram.run: feed '${name}' is ${dtype}[${dims}], the graph expects ${spec.dtype}[${spec.dims}]`,
    );
  }
  if (t) return t;
  const h = f as HostTensor;
  return h.data instanceof Int32Array
    ? new ort.Tensor("int32", h.data, h.shape)
    : new ort.Tensor("float32", h.data, h.shape);
}

/** onnxruntime's message with the recorded node it names (`Name:'matMul_12/40'` -> `matMul_12: ...`). */
function explain(e: unknown, lowered: LoweredGraph): string {
  const msg = e instanceof Error ? e.message : String(e);
  const m = msg.match(/Name:'([^'/]+)(?:\/\d+)?'/) ?? msg.match(/node (?:name )?'?([A-Za-z]+_\d+[^'/\s]*)/);
  const recorded = m?.[1];
  const info = recorded ? lowered.describe.get(recorded) : undefined;
  const where = info ? ` [recorded node ${recorded}: ${info}]` : recorded ? ` [recorded node ${recorded}]` : "";
  return `${msg.split("\n")[0]}${where}`;
}

const started = new Map<ExecutionProvider, Promise<void>>();

/**
 * Start provider `ep` once per process with a one-node program, so a provider that cannot start
 * fails here, in one line naming the missing piece (ep_diagnose.ts), before any data is read.
 */
export function checkExecutionProvider(ep: ExecutionProvider): Promise<void> {
  let p = started.get(ep);
  if (!p) {
    p = (async () => {
      const o = new GraphOps();
      o.output("y", o.mul(o.inputOf("x", [1], "float32"), 2));
      const program = await OrtProgram.create(lowerToOnnx(o.graph, { target: lowerTargetOf(ep) }), { ep, threads: 1 });
      await program.release();
    })();
    started.set(ep, p);
    p.catch(() => started.delete(ep));
  }
  return p;
}
