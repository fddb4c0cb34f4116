/**
 * Why Deno found no WebGPU adapter: names the missing piece of the host.
 *
 * Deno's WebGPU (wgpu) reaches the GPU through Vulkan on Linux, falling back to OpenGL ES
 * through EGL. An adapter needs (1) the Vulkan loader `libvulkan.so.1`, (2) at least one
 * driver manifest (ICD `*.json`: Mesa's `lvp_icd` for software lavapipe, `nvidia_icd` on
 * NVIDIA machines), found where the loader looks, and (3) `DENO_WEBGPU_BACKEND`, if set,
 * naming a backend the host has. Mesa's Vulkan also wants a writable `XDG_RUNTIME_DIR`
 * (unset, it prints `error: XDG_RUNTIME_DIR is invalid` and may fail); the loader sets one
 * when it is unset, so a diagnosis names it only when it is set but unusable.
 *
 * The checks read the host through a small {@link HostView} so tests can give known hosts.
 *
 * @module
 */

/** What the diagnosis reads from the host. */
export interface HostView {
  env(name: string): string | undefined;
  /** True if a file or folder exists at `path` (false when unreadable). */
  exists(path: string): boolean;
  /** Names in folder `dir`, [] when it is missing or unreadable. */
  list(dir: string): string[];
  /** True if `dir` is a folder this process can write. */
  writableDir(dir: string): boolean;
}

/** Folders searched for `libvulkan.so.1` besides `LD_LIBRARY_PATH` (Debian, Ubuntu, Fedora, NVIDIA images). */
export const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib",
  "/usr/local/lib",
  "/usr/local/nvidia/lib64",
];

/** Backends `DENO_WEBGPU_BACKEND` may name (a comma-separated list) that exist on Linux. */
const LINUX_BACKENDS = ["vulkan", "gl"];

const INSTALL_HINT = "on Debian/Ubuntu `apt-get install -y libvulkan1 mesa-vulkan-drivers` gives Mesa's " +
  "software Vulkan (lavapipe: correct, slow; onnxruntime's WebGPU provider needs Mesa >= 23: on Debian 12 take it " +
  "from bookworm-backports, `apt-get install -t bookworm-backports mesa-vulkan-drivers`); on a GPU machine install " +
  "the vendor's Vulkan driver";

/** Where the Vulkan loader looks for driver manifests, in its own order (Vulkan-Loader docs, LoaderInterfaceArchitecture). */
export function icdSearchDirs(host: HostView): string[] {
  const home = host.env("HOME");
  const configHome = host.env("XDG_CONFIG_HOME") ?? (home ? `${home}/.config` : undefined);
  const dataHome = host.env("XDG_DATA_HOME") ?? (home ? `${home}/.local/share` : undefined);
  const configDirs = (host.env("XDG_CONFIG_DIRS") || "/etc/xdg").split(":");
  const dataDirs = (host.env("XDG_DATA_DIRS") || "/usr/local/share:/usr/share").split(":");
  const dirs = [
    ...(configHome ? [configHome] : []),
    ...configDirs,
    "/etc",
    ...(dataHome ? [dataHome] : []),
    ...dataDirs,
  ].filter((d) => d !== "");
  return [...new Set(dirs.map((d) => `${d}/vulkan/icd.d`))];
}

/** Driver manifests the Vulkan loader would find; an override variable replaces the search. */
export function findIcdManifests(host: HostView): { files: string[]; override?: string } {
  for (const name of ["VK_DRIVER_FILES", "VK_ICD_FILENAMES"]) {
    const v = host.env(name);
    if (!v) continue;
    const files: string[] = [];
    for (const p of v.split(":").filter((s) => s !== "")) {
      if (p.endsWith(".json")) {
        if (host.exists(p)) files.push(p);
      } else {
        files.push(...host.list(p).filter((f) => f.endsWith(".json")).map((f) => `${p}/${f}`));
      }
    }
    return { files, override: `${name}=${v}` };
  }
  const files: string[] = [];
  for (const dir of icdSearchDirs(host)) {
    files.push(...host.list(dir).filter((f) => f.endsWith(".json")).map((f) => `${dir}/${f}`));
  }
  return { files };
}

/** Path of the first `libvulkan.so.1` on the loader's library path, or undefined. */
export function findVulkanLoader(host: HostView, name = "libvulkan.so.1"): string | undefined {
  const ld = (host.env("LD_LIBRARY_PATH") ?? "").split(":").filter((s) => s !== "");
  for (const dir of [...ld, ...LIBRARY_DIRS]) {
    if (host.exists(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/** The problems found, one line each, most fundamental first; [] when none is visible. */
export function findProblems(host: HostView): string[] {
  const problems: string[] = [];
  const forced = host.env("DENO_WEBGPU_BACKEND");
  if (forced !== undefined) {
    const names = forced.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s !== "");
    if (!names.some((n) => LINUX_BACKENDS.includes(n))) {
      problems.push(
        `DENO_WEBGPU_BACKEND='${forced}' names no Linux backend (expected a comma-separated list ` +
          `with ${LINUX_BACKENDS.join(" or ")}); unset it or set it to vulkan`,
      );
    }
  }
  const loader = findVulkanLoader(host);
  if (!loader) {
    problems.push(
      `no Vulkan loader: libvulkan.so.1 is in none of LD_LIBRARY_PATH, ${LIBRARY_DIRS.join(", ")} (${INSTALL_HINT})`,
    );
  }
  const icd = findIcdManifests(host);
  if (icd.files.length === 0) {
    const where = icd.override ?? `any of ${icdSearchDirs(host).join(", ")}`;
    problems.push(
      `no Vulkan driver: no ICD manifest (*.json) in ${where} (${INSTALL_HINT}; with the NVIDIA driver mounted, ` +
        `point VK_DRIVER_FILES at its nvidia_icd.json)`,
    );
  }
  const xdg = host.env("XDG_RUNTIME_DIR");
  if (xdg !== undefined && !host.writableDir(xdg)) {
    problems.push(
      `XDG_RUNTIME_DIR='${xdg}' is not a writable folder (Mesa's Vulkan needs one): ` +
        `\`export XDG_RUNTIME_DIR=$(mktemp -d)\` or unset it`,
    );
  }
  return problems;
}

/** The full error text for "requestAdapter() returned null", naming what is missing and what to do. */
export function noAdapterMessage(host: HostView): string {
  const problems = findProblems(host);
  const head = "backend 'webgpu': Deno found no WebGPU adapter (navigator.gpu.requestAdapter() returned null; " +
    `wgpu tried ${host.env("DENO_WEBGPU_BACKEND") ?? "Vulkan, then OpenGL ES through EGL"})`;
  const tail = "Or choose --backend wasm (CPU).";
  if (problems.length === 0) {
    const icd = findIcdManifests(host).files.join(", ");
    return `${head}. The Vulkan loader (${findVulkanLoader(host)}) and driver manifests (${icd}) are present, ` +
      `so the driver refused this device: run with VK_LOADER_DEBUG=driver to see why. ${tail}`;
  }
  return `${head}. Missing: ${problems.map((p, i) => `(${i + 1}) ${p}`).join("; ")}. ${tail}`;
}

/** The real host, read through Deno's file system and environment (needs --allow-env and --allow-read). */
export function denoHost(): HostView {
  return {
    env: (name) => Deno.env.get(name),
    exists(path) {
      try {
        Deno.statSync(path);
        return true;
      } catch {
        return false;
      }
    },
    list(dir) {
      try {
        return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      } catch {
        return [];
      }
    },
    writableDir(dir) {
      try {
        if (!Deno.statSync(dir).isDirectory) return false;
        const probe = Deno.makeTempFileSync({ dir, prefix: ".webgpu-probe-" });
        Deno.removeSync(probe);
        return true;
      } catch {
        return false;
      }
    },
  };
}
