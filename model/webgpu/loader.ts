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
  await import("@tensorflow/tfjs-backend-webgpu");
  loaded = probe.summary;
  if (loaded.software) {
    console.warn(
      `webgpu: software adapter '${loaded.description}' (a CPU rasteriser: right for correctness checks, ` +
        "far too slow for timings)",
    );
  }
  return loaded;
}

/** The adapter found by {@link loadWebGpu}, or undefined before it ran. */
export function webgpuAdapterSummary(): WebGpuAdapterSummary | undefined {
  return loaded;
}
