/**
 * Where a number came from, as it actually ran: the engine that computed it (what
 * `model/engine.ts` initialised, a fallback recorded as the fallback), the versions of the
 * numeric and image-decoding libraries, the runtime, the machine, CI, peak memory.
 *
 * Engines are described with `EngineDescription` (model/train_engine.ts), by the engines
 * themselves (`tfEngineDescription`, `OrtTrainEngine.description`; model/engine_choice.ts starts
 * them): `tfjs` with its backend as the device (`blas`, `wasm`, `cpu`, `webgpu`, `tensorflow`), or
 * `ort` with its execution provider. Asking for `blas` on a machine without OpenBLAS runs `wasm`:
 * the description then says `device: "wasm", fallbackFrom: "blas"`, and so do the records and
 * the leaderboard.
 *
 * Machine facts are best-effort and never fail a run (no `nvidia-smi` gives `gpu: null`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { EngineDescription } from "../model/train_engine.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function run(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
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
