/**
 * Where a number came from: git state, runtime versions, device, CI flag, peak memory.
 *
 * Everything here is best-effort and never fails a run: a missing `git` gives commit
 * `unknown`, a missing `nvidia-smi` gives `gpu: null`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

async function run(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * HEAD commit and whether tracked or untracked files differ from it. `results/` is left out:
 * the harness writes its records there, which must not mark the next cell's code as dirty.
 */
export async function gitState(): Promise<{ commit: string; dirty: boolean }> {
  const commit = await run("git", ["rev-parse", "HEAD"]) ?? "unknown";
  const status = await run("git", ["status", "--porcelain", "--", ".", ":(exclude)results"]);
  return { commit, dirty: status === null ? true : status.length > 0 };
}

async function packageVersion(name: string): Promise<string | null> {
  try {
    const text = await Deno.readTextFile(`${ROOT}node_modules/${name}/package.json`);
    return (JSON.parse(text) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

/** Versions of the runtime and of the packages that compute the numbers. */
export async function runtimeVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
  };
  const pkgs: [string, string][] = [
    ["tfjs", "@tensorflow/tfjs"],
    ["tfjsBackendWasm", "@tensorflow/tfjs-backend-wasm"],
    ["tfjsNodeGpu", "@tensorflow/tfjs-node-gpu"],
    ["onnxruntime", "onnxruntime-node"],
    ["sharp", "sharp"],
    ["zod", "zod"],
  ];
  for (const [key, pkg] of pkgs) {
    const v = await packageVersion(pkg);
    if (v) out[key] = v;
  }
  return out;
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
