/**
 * `DeviceState`: the named float32 tensors an engine keeps between onnxruntime runs (parameters,
 * AdamW moments), each either a host array or an onnxruntime tensor left on the device.
 *
 * On the WebGPU provider a run's state outputs are `gpu-buffer` tensors that the next run takes
 * as inputs, so parameters and moments never cross to the host between steps. Host values (the
 * initial parameters, zero moments, a restored checkpoint) go up once, all together, through a
 * small identity program whose outputs stay on the device ({@link DeviceState.upload}); device
 * values come back only through an identity program whose outputs are declared `cpu`
 * ({@link DeviceState.read}): `getData()` on a `gpu-buffer` tensor aborts the whole process
 * (onnxruntime-node 1.30: `terminate called after throwing an instance of 'char const*'`), so
 * nothing here ever calls it. A replaced device tensor is disposed at once (it is device memory);
 * a replaced host array is released (host_memory.ts).
 *
 * Accounting: `liveBytes` is the bytes of the device tensors held now, `peakBytes` the most held
 * at once, counted when a run's new state arrives and before the old state is disposed (both are
 * live then). onnxruntime's own buffers for a run's intermediates are not visible from here.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import type { HostTensor } from "../fixture.ts";
import { GraphOps } from "./graph_ops.ts";
import { lowerToOnnx } from "./onnx_lower.ts";
import { type ExecutionProvider, type Feed, lowerTargetOf, OrtProgram } from "./ort_program.ts";
import { release } from "./host_memory.ts";

interface Slot {
  shape: number[];
  host?: Float32Array;
  device?: ort.Tensor;
}

export interface DeviceStateOptions {
  ep: ExecutionProvider;
  threads?: number;
}

const bytesOf = (shape: number[]) => 4 * shape.reduce((a, b) => a * b, 1);

/** Bytes a run's feeds send host -> device: host arrays and `cpu` tensors (device tensors stay put). */
export function hostFeedBytes(feeds: Record<string, Feed>): number {
  let n = 0;
  for (const f of Object.values(feeds)) {
    n += "location" in f ? (f.location === "cpu" ? f.size * 4 : 0) : f.data.byteLength;
  }
  return n;
}

/** Bytes a run's outputs bring device -> host: its `cpu` outputs. */
export function cpuOutputBytes(out: Record<string, ort.Tensor>): number {
  return Object.values(out).reduce((a, t) => a + (t.location === "cpu" ? t.size * 4 : 0), 0);
}

export class DeviceState {
  readonly ep: ExecutionProvider;
  readonly #threads?: number;
  readonly #slots = new Map<string, Slot>();
  /** Identity programs by signature (`key:shape` list): uploads (gpu-buffer outputs) and reads (cpu outputs). */
  readonly #programs = new Map<string, Promise<OrtProgram>>();
  /** Slots {@link adopt} replaced, freed by {@link settle}. */
  #retired: (Slot | undefined)[] = [];
  #live = 0;
  #peak = 0;

  constructor(opts: DeviceStateOptions) {
    this.ep = opts.ep;
    this.#threads = opts.threads;
  }

  /** True when values can stay on the device between runs (WebGPU: `gpu-buffer` outputs). */
  get resident(): boolean {
    return this.ep === "webgpu";
  }

  get liveBytes(): number {
    return this.#live;
  }

  get peakBytes(): number {
    return this.#peak;
  }

  /** Bytes of every value held, on the host or the device. */
  get totalBytes(): number {
    let n = 0;
    for (const s of this.#slots.values()) n += bytesOf(s.shape);
    return n;
  }

  has(key: string): boolean {
    return this.#slots.has(key);
  }

  keys(): string[] {
    return [...this.#slots.keys()];
  }

  shape(key: string): number[] {
    return this.#get(key).shape;
  }

  /** Whether `key` is on the device now. */
  onDevice(key: string): boolean {
    return this.#get(key).device !== undefined;
  }

  #get(key: string): Slot {
    const s = this.#slots.get(key);
    if (!s) throw new Error(`DeviceState: no value '${key}'`);
    return s;
  }

  /** The value as a run's feed: the host array (wrapped, not copied) or the device tensor. */
  feed(key: string): Feed {
    const s = this.#get(key);
    return s.device ?? { shape: s.shape, data: s.host! };
  }

  /** Store a host array under `key` (taking ownership), freeing what it replaces. */
  setHost(key: string, shape: number[], data: Float32Array): void {
    this.#drop(key);
    this.#slots.set(key, { shape: [...shape], host: data });
  }

  /**
   * Store a run's output under `key`: a `gpu-buffer` tensor stays on the device, a `cpu` one
   * becomes a host array. Call {@link settle} once a run's outputs are all stored: the replaced
   * device tensors are disposed there (the peak counts old and new state together).
   */
  adopt(key: string, t: ort.Tensor): void {
    const shape = t.dims.map(Number);
    if (t.location === "gpu-buffer") {
      this.#retired.push(this.#slots.get(key));
      this.#slots.set(key, { shape, device: t });
      this.#live += bytesOf(shape);
      this.#peak = Math.max(this.#peak, this.#live);
    } else {
      if (t.type !== "float32") throw new Error(`DeviceState: output for '${key}' is ${t.type}, expected float32`);
      this.#drop(key);
      this.#slots.set(key, { shape, host: t.data as Float32Array });
    }
  }

  /** Dispose what {@link adopt} replaced. */
  settle(): void {
    for (const s of this.#retired) if (s) this.#free(s);
    this.#retired = [];
  }

  #drop(key: string): void {
    const s = this.#slots.get(key);
    if (s) this.#free(s);
    this.#slots.delete(key);
  }

  #free(s: Slot): void {
    if (s.device) {
      s.device.dispose();
      this.#live -= bytesOf(s.shape);
    } else if (s.host) release(s.host);
  }

  /** Remove every value whose key `drop` accepts (freed). */
  remove(drop: (key: string) => boolean): void {
    for (const k of [...this.#slots.keys()]) if (drop(k)) this.#drop(k);
  }

  /** Identity program over `keys` with outputs on `location`, compiled once per signature. */
  #identity(keys: string[], location: "cpu" | "gpu-buffer"): Promise<OrtProgram> {
    const sig = JSON.stringify([location, keys.map((k) => [k, this.#get(k).shape])]);
    let p = this.#programs.get(sig);
    if (!p) {
      const o = new GraphOps();
      // `x * 1`, not a bare Identity: every output then has a producing node on the provider, which writes it
      // straight into the location asked for (and WebGPU computes x * 1 exactly).
      keys.forEach((k, i) => o.output(`out${i}`, o.mul(o.inputOf(`in${i}`, this.#get(k).shape, "float32"), 1)));
      const lowered = lowerToOnnx(o.graph, { target: lowerTargetOf(this.ep), graphName: `state_${location}` });
      const outputLocations = Object.fromEntries(keys.map((_, i) => [`out${i}`, location]));
      p = OrtProgram.create(lowered, {
        ep: this.ep,
        threads: this.#threads,
        outputLocations: location === "gpu-buffer" ? outputLocations : undefined,
      });
      this.#programs.set(sig, p);
      p.catch(() => this.#programs.delete(sig));
    }
    return p;
  }

  /**
   * Move every host value to the device in one run (no-op unless {@link resident}). Returns the
   * bytes copied host -> device.
   */
  async upload(): Promise<number> {
    if (!this.resident) return 0;
    const keys = this.keys().filter((k) => !this.onDevice(k));
    if (keys.length === 0) return 0;
    const program = await this.#identity(keys, "gpu-buffer");
    const feeds: Record<string, Feed> = {};
    keys.forEach((k, i) => feeds[`in${i}`] = this.feed(k));
    const out = await program.run(feeds);
    keys.forEach((k, i) => this.adopt(k, out[`out${i}`]));
    this.settle();
    return keys.reduce((a, k) => a + bytesOf(this.shape(k)), 0);
  }

  /** Copies of `keys` on the host (device values through a `cpu`-output program; host values copied). */
  async read(keys: string[]): Promise<Map<string, HostTensor<Float32Array>>> {
    const out = new Map<string, HostTensor<Float32Array>>();
    const dev = keys.filter((k) => this.onDevice(k));
    for (const k of keys) {
      const s = this.#get(k);
      if (s.host) out.set(k, { shape: [...s.shape], data: s.host.slice() });
    }
    if (dev.length) {
      const program = await this.#identity(dev, "cpu");
      const feeds: Record<string, Feed> = {};
      dev.forEach((k, i) => feeds[`in${i}`] = this.feed(k));
      const res = await program.run(feeds);
      dev.forEach((k, i) => {
        const t = res[`out${i}`];
        if (t.location !== "cpu") throw new Error(`DeviceState.read: '${k}' came back on ${t.location}, not cpu`);
        out.set(k, { shape: t.dims.map(Number), data: t.data as Float32Array });
      });
    }
    return out;
  }

  /** Free every value and the identity programs (device tensors before the sessions that made them). */
  async dispose(): Promise<void> {
    this.settle();
    for (const k of this.keys()) this.#drop(k);
    const programs = [...this.#programs.values()];
    this.#programs.clear();
    for (const p of programs) await p.then((x) => x.release(), () => {});
  }
}
