/**
 * Where a number came from, as it actually ran: the engine that computed it (what
 * `model/engine.ts` initialised, a fallback recorded as the fallback), the versions of the
 * numeric and image-decoding libraries, the runtime, the machine, CI, peak memory.
 *
 * Engines are described with `EngineDescription` (model/train_engine.ts): `tfjs` with its
 * backend as the device (`blas`, `wasm`, `cpu`, `webgpu`, `tensorflow`), or `ort` with its
 * execution provider. Asking for `blas` on a machine without OpenBLAS runs `wasm`: the
 * description then says `device: "wasm", fallbackFrom: "blas"`, and so do the records and the
 * leaderboard.
 *
 * Machine facts are best-effort and never fail a run (no `nvidia-smi` gives `gpu: null`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { type Backend, tf } from "../model/engine.ts";
import type { EngineDescription } from "../model/train_engine.ts";
import { activeBlas } from "../model/kernels/blas_backend.ts";
import { webgpuAdapterSummary } from "../model/webgpu/loader.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function run(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The version in an installed npm package's package.json (what `import` loads), or null. */
async function packageVersion(name: string): Promise<string | null> {
  try {
    const text = await Deno.readTextFile(`${ROOT}node_modules/${name}/package.json`);
    return (JSON.parse(text) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

/**
 * The tfjs engine as `initBackend(asked)` left it: `tf.getBackend()` is the device, and the
 * versions are those of the packages and libraries that backend computes with.
 */
export async function tfjsEngine(asked: Backend): Promise<EngineDescription> {
  const device = tf.getBackend();
  const versions: Record<string, string> = { "@tensorflow/tfjs-core": tf.version["tfjs-core"] };
  if (device === "wasm" || device === "blas") {
    versions["@tensorflow/tfjs-backend-wasm"] = (await import("@tensorflow/tfjs-backend-wasm")).version_wasm;
  }
  if (device === "blas") {
    // e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64": the kernel family matters too.
    versions.blas = activeBlas()?.description ?? "unknown";
  }
  if (device === "webgpu") {
    versions["@tensorflow/tfjs-backend-webgpu"] = await packageVersion("@tensorflow/tfjs-backend-webgpu") ??
      "unknown";
    const a = webgpuAdapterSummary();
    if (a) versions.webgpuAdapter = `${a.vendor} ${a.architecture} ${a.device} (${a.description})`;
  }
  if (device === "tensorflow") {
    versions["@tensorflow/tfjs-node-gpu"] = await packageVersion("@tensorflow/tfjs-node-gpu") ?? "unknown";
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    if (binding?.TF_Version) versions.libtensorflow = binding.TF_Version;
  }
  return { engine: "tfjs", device, ...(device !== asked ? { fallbackFrom: asked } : {}), versions };
}

/**
 * The engine that extracts features when a cell's `encoderRuntime` is `onnx`: onnxruntime-node on
 * its CPU execution provider (model/onnx/ort_encoder.ts asks for `cpu` and nothing else).
 */
export async function ortCpuEngine(): Promise<EngineDescription> {
  return {
    engine: "ort",
    device: "cpu",
    versions: { "onnxruntime-node": await packageVersion("onnxruntime-node") ?? "unknown" },
  };
}

/** One line for logs and the leaderboard: `tfjs wasm (fallback from blas)`, `ort cuda`. */
export function engineLabel(e: EngineDescription): string {
  return `${e.engine} ${e.device}${e.fallbackFrom ? ` (fallback from ${e.fallbackFrom})` : ""}`;
}

/**
 * What makes two engines compute the same numbers: engine, device and library versions. Not
 * `fallbackFrom`: a `wasm` run that fell back from `blas` computes what a `wasm` run computes.
 */
export function engineKey(e: EngineDescription): { engine: string; device: string; versions: Record<string, string> } {
  return { engine: e.engine, device: e.device, versions: e.versions };
}

/** Versions of the image decoder (sharp and libvips decode and resize every input image). */
export async function decoderVersions(): Promise<Record<string, string>> {
  const { default: sharp } = await import("sharp");
  const v = sharp.versions as Record<string, string | undefined>;
  const out: Record<string, string> = {};
  for (const k of ["sharp", "vips", "mozjpeg", "spng", "png"]) if (v[k]) out[k] = v[k]!;
  return out;
}

/** Versions of the runtime itself (recorded; they decide nothing). */
export function runtimeVersions(): Record<string, string> {
  return { deno: Deno.version.deno, v8: Deno.version.v8, typescript: Deno.version.typescript };
}

async function cpuModel(): Promise<string> {
  try {
    const text = await Deno.readTextFile("/proc/cpuinfo");
    const m = /^model name\s*:\s*(.+)$/m.exec(text);
    if (m) return m[1].trim();
  } catch { /* not Linux */ }
  return (await run("sysctl", ["-n", "machdep.cpu.brand_string"])) ?? `${Deno.build.arch} (model unknown)`;
}

/** The machine: CPU model and cores, GPU name (nvidia-smi), memory, OS. */
export async function deviceInfo() {
  const gpu = await run("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"]);
  let memoryBytes = 0;
  try {
    memoryBytes = Deno.systemMemoryInfo().total;
  } catch { /* unavailable in some sandboxes */ }
  return {
    cpu: await cpuModel(),
    cores: navigator.hardwareConcurrency || 1,
    gpu: gpu ? gpu.split("\n")[0] : null,
    memoryBytes,
    os: `${Deno.build.os}-${Deno.build.arch}`,
  };
}

/** Whether CI produced the record (GitHub Actions and most CI systems set CI=true). */
export function isCi(): boolean {
  return (Deno.env.get("CI") ?? "").toLowerCase() === "true";
}

/** Peak resident memory of this process: VmHWM on Linux, else the current RSS. */
export function peakRssBytes(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(Deno.readTextFileSync("/proc/self/status"));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  return Deno.memoryUsage().rss;
}
