/**
 * Loads tfjs's WebGPU backend under Deno, after checking that an adapter exists.
 *
 * `@tensorflow/tfjs-backend-webgpu` registers its factory only when `navigator.gpu` exists,
 * and its factory dereferences the adapter without a null check, so a host without a GPU
 * driver would fail with "Cannot read properties of null". {@link loadWebGpu} asks for an
 * adapter first (the same `powerPreference: "high-performance"` tfjs asks for) and throws
 * {@link noAdapterMessage}'s text, which names the missing piece, when there is none.
 *
 * Deno 2.9 exposes `navigator.gpu` without `--unstable-webgpu`. `DENO_WEBGPU_BACKEND=vulkan`
 * (or `gl`) restricts which wgpu backend is tried; unset, wgpu takes Vulkan or, failing that,
 * OpenGL ES through EGL (on a host with Mesa, `llvmpipe` on either).
 *
 * Called through `initBackend("webgpu")` in `../engine.ts`, never directly.
 *
 * @module
 */
import { denoHost, type HostView, noAdapterMessage } from "./diagnose.ts";

/** The adapter in use, for result records (provenance: backend and device). */
export interface WebGpuAdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  device: string;
  /** True for a CPU rasteriser (lavapipe/llvmpipe, SwiftShader): correct, ~100x slower than a GPU. */
  software: boolean;
  /** `DENO_WEBGPU_BACKEND` as set when the adapter was found (undefined: wgpu chose). */
  backendEnv?: string;
}

/** Result of {@link probeWebGpu}: an adapter, or why there is none. */
export type WebGpuProbe =
  | { ok: true; adapter: GPUAdapter; summary: WebGpuAdapterSummary }
  | { ok: false; reason: string };

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|softpipe/i;

let loaded: WebGpuAdapterSummary | undefined;

/**
 * Give Mesa's Vulkan a runtime folder when `XDG_RUNTIME_DIR` is unset (a bare container or
 * CI job): a fresh private temporary folder, which is what the variable stands for. Must run
 * before the first `requestAdapter`. Returns the folder it set, or undefined.
 */
export function ensureRuntimeDir(): string | undefined {
  if (Deno.env.get("XDG_RUNTIME_DIR")) return undefined;
  const dir = Deno.makeTempDirSync({ prefix: "xdg-runtime-" });
  Deno.chmodSync(dir, 0o700);
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  return dir;
}

/** Describe an adapter for logs and result records. */
export function summarizeAdapter(adapter: GPUAdapter): WebGpuAdapterSummary {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return {
    description: info.description,
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    software: info.isFallbackAdapter === true || SOFTWARE_NAMES.test(info.description),
    backendEnv: Deno.env.get("DENO_WEBGPU_BACKEND"),
  };
}

/** Look for an adapter without throwing (tests skip on `ok: false` and print `reason`). */
export async function probeWebGpu(host: HostView = denoHost()): Promise<WebGpuProbe> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    return {
      ok: false,
      reason: `backend 'webgpu': this Deno (${Deno.version.deno}) has no navigator.gpu; ` +
        "Deno 2.x has it by default, Deno 1.x needs --unstable-webgpu. Or choose --backend wasm.",
    };
  }
  ensureRuntimeDir();
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return { ok: false, reason: noAdapterMessage(host) };
  return { ok: true, adapter, summary: summarizeAdapter(adapter) };
}

/**
 * Check for an adapter, then register tfjs's `webgpu` backend (idempotent). Throws an error
 * naming the missing piece when there is no adapter. Warns once on a software adapter.
 */
export async function loadWebGpu(): Promise<WebGpuAdapterSummary> {
  if (loaded) return loaded;
  const probe = await probeWebGpu();
  if (!probe.ok) throw new Error(probe.reason);
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu");
  guardReadSync(WebGPUBackend.prototype as unknown as ReadSyncHost);
  loaded = probe.summary;
  if (loaded.software) {
    console.warn(
      `webgpu: software adapter '${loaded.description}' (a CPU rasteriser: right for correctness checks, ` +
        "far too slow for timings)",
    );
  }
  return loaded;
}

/** The part of tfjs's WebGPUBackend that {@link guardReadSync} touches. */
interface ReadSyncHost {
  readSync(dataId: object): unknown;
  tensorMap: { get(dataId: object): { values?: unknown; dtype?: string } | undefined };
}

/** Text of the error a synchronous read of a GPU-resident tensor throws under Deno. */
export const READ_SYNC_MESSAGE = "backend 'webgpu': dataSync()/arraySync() cannot read a GPU tensor under Deno " +
  "(tfjs reads synchronously through an OffscreenCanvas 2-D context, which Deno lacks); use `await t.data()` or " +
  "`await t.array()`, at the logging cadence";

/** True if an OffscreenCanvas gives a 2-D context (Deno 2.9 has the class, but its getContext("2d") is null). */
function canvas2dWorks(): boolean {
  const C = (globalThis as { OffscreenCanvas?: new (w: number, h: number) => { getContext(k: string): unknown } })
    .OffscreenCanvas;
  try {
    return C !== undefined && new C(1, 1).getContext("2d") != null;
  } catch {
    return false;
  }
}

/**
 * Hack, acceptable because it only replaces a crash: tfjs's WebGPU `readSync` copies through
 * an OffscreenCanvas 2-D context, which Deno 2.9 does not give, and fails with "Cannot read
 * properties of null (reading 'clearRect')". Replace that with an error that says what to
 * do. CPU-resident tensors (uploaded, never computed on) still read synchronously.
 */
function guardReadSync(proto: ReadSyncHost): void {
  if (canvas2dWorks()) return;
  const original = proto.readSync;
  proto.readSync = function (this: ReadSyncHost, dataId: object) {
    const data = this.tensorMap.get(dataId);
    if (data && data.values == null && data.dtype !== "string") throw new Error(READ_SYNC_MESSAGE);
    return original.call(this, dataId);
  };
}

/** The adapter found by {@link loadWebGpu}, or undefined before it ran. */
export function webgpuAdapterSummary(): WebGpuAdapterSummary | undefined {
  return loaded;
}
