/**
 * One-line errors of an execution provider that cannot start (ep_diagnose.ts): known answers on
 * made-up hosts for each missing piece (Vulkan loader or driver, a manifest naming a library that
 * is gone, Debian 12's Mesa 22.3 lavapipe, the CUDA provider library, a CUDA/cuDNN library, the
 * NVIDIA driver, a driver too old), and the real errors this machine can provoke: the WebGPU
 * provider with `VK_ICD_FILENAMES` pointing nowhere (in a child process, since a process keeps
 * its first WebGPU device), and the CUDA provider, which onnxruntime-node does not ship.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { cudaStartMessage, denoEpHost, type EpHostView, epStartMessage, webgpuStartMessage } from "./ep_diagnose.ts";
import { checkExecutionProvider, parseExecutionProvider } from "./ort_program.ts";

const BIN = "/app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64";
const LOADER = "/usr/lib/x86_64-linux-gnu/libvulkan.so.1";
const LVP = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
const LVP_LIB = "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so";

/** A host given as environment, files (path -> text) and libraries that fail to load (path -> dlerror). */
function fakeHost(env: Record<string, string>, files: Record<string, string>, loadErrors: Record<string, string> = {}) {
  const paths = Object.keys(files);
  const host: EpHostView = {
    env: (n) => env[n],
    exists: (p) => p in files || paths.some((f) => f.startsWith(p + "/")),
    list: (dir) => paths.filter((f) => f.startsWith(dir + "/")).map((f) => f.slice(dir.length + 1)),
    writableDir: () => true,
    readText: (p) => files[p],
    loadError: (lib) => loadErrors[lib] ?? null,
    ortBinDir: () => BIN,
  };
  return host;
}

const manifest = (api: string, lib: string) => JSON.stringify({ ICD: { api_version: api, library_path: lib } });
const oneLine = (m: string | null) => {
  assert.ok(m !== null && !m.includes("\n"), `one line: ${m}`);
  return m!;
};

Deno.test("webgpu: a bare host is told to install the Vulkan loader and a driver", () => {
  const m = oneLine(webgpuStartMessage(fakeHost({ HOME: "/root" }, {})));
  assert.match(
    m,
    /^onnxruntime 'webgpu' provider: Dawn found no usable WebGPU adapter\. Missing: \(1\) no Vulkan loader/,
  );
  assert.match(m, /\(2\) no Vulkan driver: no ICD manifest/);
  assert.match(m, /apt-get install -y libvulkan1 mesa-vulkan-drivers/);
  assert.match(m, /Or choose --ep cpu\.$/);
});

Deno.test("webgpu: Debian 12's Mesa 22.3 lavapipe is named, with the backports install", () => {
  const m = oneLine(
    webgpuStartMessage(fakeHost({}, { [LOADER]: "", [LVP]: manifest("1.1.230", LVP_LIB), [LVP_LIB]: "" })),
  );
  assert.match(
    m,
    /Mesa's lavapipe is too old for Dawn \(\/usr\/share\/vulkan\/icd\.d\/lvp_icd\.x86_64\.json advertises Vulkan 1\.1\.230/,
  );
  assert.match(m, /`apt-get install -t bookworm-backports mesa-vulkan-drivers`/);
  // Mesa 25 (Vulkan 1.4) is fine: then the driver's own refusal is reported, pointing at Dawn's warnings.
  const ok = oneLine(
    webgpuStartMessage(fakeHost({}, { [LOADER]: "", [LVP]: manifest("1.4.305", "libvulkan_lvp.so"), [LVP_LIB]: "" })),
  );
  assert.match(ok, /are present, so the driver refused the device; Dawn's reason is in the 'Warning:' lines above/);
});

Deno.test("webgpu: a driver manifest naming a library that is not installed is a wrong driver", () => {
  const nv = "/etc/vulkan/icd.d/nvidia_icd.json";
  const m = oneLine(
    webgpuStartMessage(
      fakeHost({ VK_DRIVER_FILES: nv }, { [LOADER]: "", [nv]: manifest("1.3.277", "libGLX_nvidia.so.0") }),
    ),
  );
  assert.match(
    m,
    /the driver manifest \/etc\/vulkan\/icd\.d\/nvidia_icd\.json names libGLX_nvidia\.so\.0, which is not installed/,
  );
  // Found on LD_LIBRARY_PATH: no complaint.
  const host = fakeHost({ VK_DRIVER_FILES: nv, LD_LIBRARY_PATH: "/usr/local/nvidia/lib64" }, {
    [LOADER]: "",
    [nv]: manifest("1.3.277", "libGLX_nvidia.so.0"),
    "/usr/local/nvidia/lib64/libGLX_nvidia.so.0": "",
  });
  assert.doesNotMatch(webgpuStartMessage(host), /not installed/);
});

Deno.test("webgpu: only adapter failures are diagnosed; other errors keep onnxruntime's message", () => {
  const host = fakeHost({}, {});
  assert.match(
    epStartMessage("webgpu", new Error("... Failed to get a WebGPU adapter: No supported adapters"), host)!,
    /Dawn found no/,
  );
  assert.equal(epStartMessage("webgpu", new Error("Could not find an implementation for Foo(1) node"), host), null);
  assert.equal(epStartMessage("cpu", new Error("Failed to get a WebGPU adapter"), host), null);
});

Deno.test("cuda: the provider library, a CUDA or cuDNN library, the driver, each named with how to get it", () => {
  const load = new Error("OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library");
  const none = oneLine(cudaStartMessage(fakeHost({}, {}), load.message));
  assert.match(
    none,
    /^onnxruntime 'cuda' provider: onnxruntime-node's CUDA 12 provider is not installed \(no libonnxruntime_providers_shared\.so in \/app/,
  );
  assert.match(none, /ONNXRUNTIME_NODE_INSTALL=cuda12 deno install --allow-scripts=npm:onnxruntime-node/);
  assert.match(none, /Or choose --ep webgpu \(any Vulkan GPU, no CUDA\) or --ep cpu\.$/);
  const provider = {
    [`${BIN}/libonnxruntime_providers_shared.so`]: "",
    [`${BIN}/libonnxruntime_providers_cuda.so`]: "",
  };
  const missing = (lib: string) =>
    oneLine(cudaStartMessage(
      fakeHost({}, provider, {
        [`${BIN}/libonnxruntime_providers_cuda.so`]:
          `Could not open library: ${lib}: cannot open shared object file: No such file or directory`,
      }),
      load.message,
    ));
  assert.match(
    missing("libcublasLt.so.12"),
    /missing libcublasLt\.so\.12 of the CUDA 12 runtime: `apt-get install cuda-libraries-12-x`/,
  );
  assert.match(missing("libcudnn.so.9"), /missing libcudnn\.so\.9 of cuDNN 9 for CUDA 12/);
  assert.match(missing("libcuda.so.1"), /missing the NVIDIA driver's libcuda\.so\.1: install the NVIDIA driver/);
  assert.match(
    oneLine(
      cudaStartMessage(
        fakeHost({}, provider),
        "CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version",
      ),
    ),
    /the NVIDIA driver is older than the CUDA 12 runtime needs: update the driver to >= 525/,
  );
  assert.equal(cudaStartMessage(fakeHost({}, provider), "Type Error: Invalid graph"), null);
});

Deno.test("--ep: an unknown provider is one line naming the flag and the valid ones", () => {
  assert.equal(parseExecutionProvider(undefined), "cpu");
  assert.equal(parseExecutionProvider("webgpu"), "webgpu");
  assert.throws(
    () => parseExecutionProvider("metal"),
    /^Error: --ep: unknown execution provider 'metal' \(expected cpu, webgpu, cuda\)$/,
  );
});

Deno.test("cuda on this machine: onnxruntime-node's CUDA provider is missing, said in one line", async () => {
  const bin = denoEpHost().ortBinDir();
  try {
    Deno.statSync(`${bin}/libonnxruntime_providers_cuda.so`);
    return console.log(`skipped: the CUDA provider is installed in ${bin}`);
  } catch { /* not installed: the case under test */ }
  await assert.rejects(checkExecutionProvider("cuda"), (e: Error) => {
    oneLine(e.message);
    assert.match(
      e.message,
      /^onnxruntime 'cuda' provider: onnxruntime-node's CUDA 12 provider is not installed \(no libonnxruntime_providers_shared\.so in /,
    );
    assert.ok(e.message.includes(bin), `names the folder ${bin}`);
    return true;
  });
});

Deno.test({
  name: "webgpu with VK_ICD_FILENAMES pointing nowhere: one line naming the missing driver",
  ignore: Deno.env.get("MIMBENCH_SKIP_WEBGPU") === "1",
  fn: async () => {
    const root = fileURLToPath(new URL("../../", import.meta.url));
    const program = new URL("./ort_program.ts", import.meta.url).href;
    const code = `import { checkExecutionProvider } from "${program}";
      try { await checkExecutionProvider("webgpu"); console.log("STARTED"); } catch (e) { console.log(e.message); }`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      cwd: root,
      env: { VK_ICD_FILENAMES: "/nonexistent/icd.json", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(r.stdout).trim();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    oneLine(out);
    assert.match(
      out,
      /^onnxruntime 'webgpu' provider: Dawn found no usable WebGPU adapter\. Missing: \(1\) no Vulkan driver/,
    );
    assert.match(out, /no ICD manifest \(\*\.json\) in VK_ICD_FILENAMES=\/nonexistent\/icd\.json/);
  },
});
