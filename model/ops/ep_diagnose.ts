/**
 * Why an onnxruntime execution provider could not start: one line naming the missing piece and
 * how to get it, in place of onnxruntime's multi-line C++ error.
 *
 * - `webgpu` (Dawn over Vulkan): onnxruntime says only "Failed to get a WebGPU adapter" whatever
 *   the cause; Dawn prints its reason on stderr as `Warning:` lines. The host is read as
 *   model/webgpu/diagnose.ts does (Vulkan loader, driver manifests, runtime folder), and two
 *   Dawn-specific causes are added: a driver manifest naming a library that is not there (a
 *   wrong or half-installed driver), and Mesa's lavapipe older than Dawn accepts (Debian 12's
 *   Mesa 22.3 advertises Vulkan 1.1 and lacks `shaderUniform*ArrayDynamicIndexing`; Mesa 25
 *   from bookworm-backports works).
 * - `cuda`: onnxruntime-node 1.30 loads `libonnxruntime_providers_cuda.so` from its own `bin/`
 *   folder; the npm package does not ship it (its install script downloads it from nuget.org
 *   when `ONNXRUNTIME_NODE_INSTALL=cuda12`). When it is there, opening it names the first CUDA,
 *   cuDNN or driver library the loader cannot find. A driver older than the CUDA 12 runtime
 *   fails later, at session creation, with "driver version is insufficient".
 *
 * The host is read through {@link EpHostView} so the tests can give known hosts.
 *
 * @module
 */
import { createRequire } from "node:module";
import { denoHost, findIcdManifests, findProblems, type HostView, LIBRARY_DIRS } from "../webgpu/diagnose.ts";

/** The host as the diagnosis reads it: model/webgpu/diagnose.ts's view, plus files and libraries. */
export interface EpHostView extends HostView {
  /** Text of a file, undefined when missing or unreadable. */
  readText(path: string): string | undefined;
  /** Why the dynamic loader cannot open `lib` (dlerror text), or null when it can. */
  loadError(lib: string): string | null;
  /** Folder of onnxruntime-node's native binaries (`.../bin/napi-v6/linux/x64`). */
  ortBinDir(): string;
}

/** Debian 12 gets Mesa 25 this way (the suite of the same mirror; tested with 25.0.7). */
export const MESA_BACKPORTS_HINT = "add the bookworm-backports suite of your Debian mirror to the apt sources, then " +
  "`apt-get install -t bookworm-backports mesa-vulkan-drivers`";

const CUDA_INSTALL_HINT = "install it with `ONNXRUNTIME_NODE_INSTALL=cuda12 deno install " +
  "--allow-scripts=npm:onnxruntime-node` (its install script downloads Microsoft.ML.OnnxRuntime.Gpu.Linux from " +
  "nuget.org; needs network), or copy the .so files of that NuGet package's runtimes/linux-x64/native into";

/** Lowest Vulkan API version a lavapipe manifest may advertise for Dawn (Mesa 22.3's 1.1.230 fails). */
const LAVAPIPE_MIN_API = [1, 3];

/** `api_version` and `library_path` of a driver manifest, or null when it cannot be read. */
export function readIcd(host: EpHostView, path: string): { api: number[]; library: string } | null {
  try {
    const j = JSON.parse(host.readText(path) ?? "") as { ICD?: { api_version?: string; library_path?: string } };
    const library = j.ICD?.library_path;
    if (!library) return null;
    return { api: (j.ICD?.api_version ?? "0").split(".").map(Number), library };
  } catch {
    return null;
  }
}

/** Whether `library` (an absolute path, or a bare name the loader searches) exists on the host. */
function libraryExists(host: EpHostView, library: string, manifest: string): boolean {
  if (library.startsWith("/")) return host.exists(library);
  if (library.includes("/")) return host.exists(`${manifest.slice(0, manifest.lastIndexOf("/"))}/${library}`);
  const ld = (host.env("LD_LIBRARY_PATH") ?? "").split(":").filter((s) => s !== "");
  return [...ld, ...LIBRARY_DIRS].some((d) => host.exists(`${d}/${library}`));
}

const older = (a: number[], b: number[]) => (a[0] ?? 0) < b[0] || ((a[0] ?? 0) === b[0] && (a[1] ?? 0) < b[1]);

/** Dawn-specific problems of the driver manifests the Vulkan loader would use. */
export function dawnDriverProblems(host: EpHostView): string[] {
  const problems: string[] = [];
  const icds = findIcdManifests(host).files.map((f) => ({ file: f, icd: readIcd(host, f) }));
  for (const { file, icd } of icds) {
    if (icd && !libraryExists(host, icd.library, file)) {
      problems.push(
        `the driver manifest ${file} names ${icd.library}, which is not installed (a removed or half-installed ` +
          "driver: reinstall it, or point VK_DRIVER_FILES at a manifest whose library exists)",
      );
    }
  }
  // Only a lavapipe too old for Dawn is named: a host without a GPU of its own has nothing else, and on a GPU host
  // this line sits beside whatever else was found.
  const old = icds.find(({ icd, file }) =>
    icd && /lvp/.test(icd.library) && older(icd.api, LAVAPIPE_MIN_API) && libraryExists(host, icd.library, file)
  );
  if (old) {
    problems.push(
      `Mesa's lavapipe is too old for Dawn (${old.file} advertises Vulkan ${old.icd!.api.join(".")}; Debian 12's ` +
        `Mesa 22.3 lacks shaderUniform*ArrayDynamicIndexing, Mesa 25 works): ${MESA_BACKPORTS_HINT}`,
    );
  }
  return problems;
}

/** The one-line error for a WebGPU provider that found no adapter. */
export function webgpuStartMessage(host: EpHostView): string {
  const problems = [...findProblems(host), ...dawnDriverProblems(host)];
  const head = "onnxruntime 'webgpu' provider: Dawn found no usable WebGPU adapter";
  const tail = "Or choose --ep cpu.";
  if (problems.length === 0) {
    const icds = findIcdManifests(host).files.join(", ");
    return `${head}: the Vulkan loader and driver manifests (${icds}) are present, so the driver refused the ` +
      "device; Dawn's reason is in the 'Warning:' lines above (VK_LOADER_DEBUG=driver shows the loader's view). " +
      tail;
  }
  return `${head}. Missing: ${problems.map((p, i) => `(${i + 1}) ${p}`).join("; ")}. ${tail}`;
}

/** What a missing library means for the CUDA provider, and how to get it. */
function cudaLibraryHint(lib: string): string {
  if (/^libcuda\.so/.test(lib)) {
    return "the NVIDIA driver's libcuda.so.1: install the NVIDIA driver (>= 525 for CUDA 12), or run where the " +
      "GPU and its driver are mounted";
  }
  if (/^libcudnn/.test(lib)) {
    return `${lib} of cuDNN 9 for CUDA 12: \`apt-get install libcudnn9-cuda-12\` from NVIDIA's CUDA repository, ` +
      "or put its lib folder on LD_LIBRARY_PATH";
  }
  if (/^lib(cudart|cublas|cublasLt|cufft|curand|nvrtc)\.so/.test(lib)) {
    return `${lib} of the CUDA 12 runtime: \`apt-get install cuda-libraries-12-x\` (any 12.x) from NVIDIA's CUDA ` +
      "repository, or put its lib64 folder on LD_LIBRARY_PATH";
  }
  return `${lib}: install it or put its folder on LD_LIBRARY_PATH`;
}

/** The one-line error for a CUDA provider that could not start, or null when the error is something else. */
export function cudaStartMessage(host: EpHostView, error: string): string | null {
  const head = "onnxruntime 'cuda' provider";
  const tail = "Or choose --ep webgpu (any Vulkan GPU, no CUDA) or --ep cpu.";
  if (/driver version is insufficient|CUDA_ERROR_INSUFFICIENT_DRIVER|cudaErrorInsufficientDriver/i.test(error)) {
    return `${head}: the NVIDIA driver is older than the CUDA 12 runtime needs: update the driver to >= 525. ${tail}`;
  }
  if (/no CUDA-capable device|cudaErrorNoDevice|CUDA_ERROR_NO_DEVICE/i.test(error)) {
    return `${head}: the CUDA runtime sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES). ${tail}`;
  }
  if (!/Failed to load shared library|Failed to load library|providers_cuda|providers_shared/i.test(error)) return null;
  const dir = host.ortBinDir();
  for (const lib of ["libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"]) {
    if (!host.exists(`${dir}/${lib}`)) {
      return `${head}: onnxruntime-node's CUDA 12 provider is not installed (no ${lib} in ${dir}): ` +
        `${CUDA_INSTALL_HINT} ${dir}. ${tail}`;
    }
  }
  const why = host.loadError(`${dir}/libonnxruntime_providers_cuda.so`);
  const missing = why?.match(/([\w.+-]+\.so[\w.]*): cannot open shared object file/)?.[1];
  if (missing && !missing.startsWith("libonnxruntime_providers")) {
    return `${head}: libonnxruntime_providers_cuda.so cannot load: missing ${cudaLibraryHint(missing)}. ${tail}`;
  }
  return `${head}: libonnxruntime_providers_cuda.so in ${dir} does not load (${
    why ?? "onnxruntime could not load it"
  }); it must be the build for onnxruntime-node 1.30 and CUDA 12. ${tail}`;
}

/**
 * The one-line error for provider `ep` failing to start with `error`, or null when the error is
 * not about starting the provider (a graph problem keeps onnxruntime's own message).
 */
export function epStartMessage(ep: string, error: unknown, host: EpHostView = denoEpHost()): string | null {
  const msg = error instanceof Error ? error.message : String(error);
  if (ep === "webgpu" && /Failed to get a WebGPU adapter|No supported adapters|RequestAdapter/i.test(msg)) {
    return webgpuStartMessage(host);
  }
  if (ep === "cuda") return cudaStartMessage(host, msg);
  return null;
}

/** The real host (needs --allow-env, --allow-read and, for the CUDA library check, --allow-ffi). */
export function denoEpHost(): EpHostView {
  return {
    ...denoHost(),
    readText(path) {
      try {
        return Deno.readTextFileSync(path);
      } catch {
        return undefined;
      }
    },
    loadError(lib) {
      try {
        Deno.dlopen(lib, {}).close();
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    },
    ortBinDir() {
      const index = createRequire(import.meta.url).resolve("onnxruntime-node"); // <pkg>/dist/index.js
      const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
      return `${index.slice(0, index.lastIndexOf("/dist/"))}/bin/napi-v6/${Deno.build.os}/${arch}`;
    },
  };
}
