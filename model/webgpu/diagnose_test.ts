/**
 * Known answers for the no-adapter diagnosis on made-up hosts: each missing piece is named,
 * and a complete host gets the "driver refused the device" text.
 */
import assert from "node:assert/strict";
import { findIcdManifests, findProblems, findVulkanLoader, type HostView, noAdapterMessage } from "./diagnose.ts";

/** A host given as environment variables, files, and writable folders. */
function fakeHost(env: Record<string, string>, files: string[], writable: string[] = []): HostView {
  return {
    env: (n) => env[n],
    exists: (p) => files.includes(p) || files.some((f) => f.startsWith(p + "/")),
    list: (dir) => files.filter((f) => f.startsWith(dir + "/")).map((f) => f.slice(dir.length + 1)),
    writableDir: (d) => writable.includes(d),
  };
}

const LOADER = "/usr/lib/x86_64-linux-gnu/libvulkan.so.1";
const LVP = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";
const HOME = { HOME: "/root" };

Deno.test("a host with loader, driver and runtime folder has no problems", () => {
  const host = fakeHost({ ...HOME, XDG_RUNTIME_DIR: "/run/user/0" }, [LOADER, LVP], ["/run/user/0"]);
  assert.deepEqual(findProblems(host), []);
  assert.equal(findVulkanLoader(host), LOADER);
  assert.deepEqual(findIcdManifests(host).files, [LVP]);
  assert.match(
    noAdapterMessage(host),
    /driver manifests \(\/usr\/share\/vulkan\/icd\.d\/lvp_icd\.x86_64\.json\) are present/,
  );
  assert.match(noAdapterMessage(host), /VK_LOADER_DEBUG=driver/);
});

Deno.test("a bare host is told to install the loader and a driver", () => {
  const problems = findProblems(fakeHost(HOME, []));
  assert.equal(problems.length, 2);
  assert.match(
    problems[0],
    /^no Vulkan loader: libvulkan\.so\.1 is in none of LD_LIBRARY_PATH, \/lib\/x86_64-linux-gnu/,
  );
  assert.match(
    problems[1],
    /^no Vulkan driver: no ICD manifest \(\*\.json\) in any of \/root\/\.config\/vulkan\/icd\.d/,
  );
  assert.match(problems[1], /apt-get install -y libvulkan1 mesa-vulkan-drivers/);
  const msg = noAdapterMessage(fakeHost(HOME, []));
  assert.match(
    msg,
    /^backend 'webgpu': Deno found no WebGPU adapter .*Missing: \(1\) no Vulkan loader.*\(2\) no Vulkan driver/,
  );
  assert.match(msg, /Or choose --backend wasm \(CPU\)\.$/);
});

Deno.test("a loader on LD_LIBRARY_PATH is found; an ICD override replaces the search", () => {
  const host = fakeHost(
    { ...HOME, LD_LIBRARY_PATH: "/opt/gl/lib", VK_DRIVER_FILES: "/opt/nv/nvidia_icd.json" },
    ["/opt/gl/lib/libvulkan.so.1", LVP],
  );
  assert.equal(findVulkanLoader(host), "/opt/gl/lib/libvulkan.so.1");
  assert.deepEqual(findIcdManifests(host), { files: [], override: "VK_DRIVER_FILES=/opt/nv/nvidia_icd.json" });
  const problems = findProblems(host);
  assert.equal(problems.length, 1);
  assert.match(
    problems[0],
    /^no Vulkan driver: no ICD manifest \(\*\.json\) in VK_DRIVER_FILES=\/opt\/nv\/nvidia_icd\.json /,
  );
  const dirOverride = fakeHost({ VK_ICD_FILENAMES: "/opt/nv" }, [LOADER, "/opt/nv/nvidia_icd.json", "/opt/nv/x.txt"]);
  assert.deepEqual(findIcdManifests(dirOverride).files, ["/opt/nv/nvidia_icd.json"]);
});

Deno.test("XDG data and config folders extend the manifest search", () => {
  const host = fakeHost({ XDG_DATA_DIRS: "/opt/share", XDG_CONFIG_HOME: "/cfg" }, [
    LOADER,
    "/opt/share/vulkan/icd.d/nvidia_icd.json",
  ]);
  assert.deepEqual(findIcdManifests(host).files, ["/opt/share/vulkan/icd.d/nvidia_icd.json"]);
  assert.deepEqual(findProblems(host), []);
});

Deno.test("a wrong DENO_WEBGPU_BACKEND or an unwritable XDG_RUNTIME_DIR is named", () => {
  const host = fakeHost({ ...HOME, DENO_WEBGPU_BACKEND: "metal", XDG_RUNTIME_DIR: "/nope" }, [LOADER, LVP]);
  assert.deepEqual(findProblems(host), [
    "DENO_WEBGPU_BACKEND='metal' names no Linux backend (expected a comma-separated list with vulkan or gl); " +
    "unset it or set it to vulkan",
    "XDG_RUNTIME_DIR='/nope' is not a writable folder (Mesa's Vulkan needs one): " +
    "`export XDG_RUNTIME_DIR=$(mktemp -d)` or unset it",
  ]);
  const ok = fakeHost({ ...HOME, DENO_WEBGPU_BACKEND: "Vulkan, gl" }, [LOADER, LVP]);
  assert.deepEqual(findProblems(ok), []);
});
