/**
 * `deno run -A model/webgpu/check_adapter.ts [--require-hardware]`
 *
 * Prints the WebGPU adapter Deno finds as one JSON line and exits 0, or prints why there is
 * none (naming the missing Vulkan piece) and exits 3. With `--require-hardware`, a software
 * adapter (lavapipe/llvmpipe) exits 4: a GPU machine that falls back to the CPU rasteriser
 * would otherwise time the wrong device. Used by `.ci/webgpu_parity.sh` and `bench/gpu_check.sh`.
 *
 * @module
 */
import { probeWebGpu } from "./loader.ts";

if (import.meta.main) {
  const requireHardware = Deno.args.includes("--require-hardware");
  const probe = await probeWebGpu();
  if (!probe.ok) {
    console.log(`no adapter: ${probe.reason}`);
    Deno.exit(3);
  }
  const limits = probe.adapter.limits;
  console.log(JSON.stringify({
    ...probe.summary,
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    features: [...probe.adapter.features].sort(),
  }));
  if (requireHardware && probe.summary.software) {
    console.log(
      `software adapter '${probe.summary.description}' where a GPU was required: set ` +
        "DENO_WEBGPU_BACKEND=vulkan and point VK_DRIVER_FILES at the GPU driver's ICD manifest",
    );
    Deno.exit(4);
  }
}
