/**
 * The WebGPU backend under Deno: adapter checks and the tfjs backend loader.
 *
 * Reading order: `diagnose.ts` (what a host needs and how a missing piece is named),
 * `loader.ts` (adapter check, then tfjs-backend-webgpu), `ops_test.ts` (op agreement with
 * the CPU backend and its tolerances). Select it with `initBackend("webgpu")` or
 * `--backend webgpu`; `bench/gpu_check.sh` runs it on a lent GPU machine.
 *
 * @module
 */
export {
  denoHost,
  findIcdManifests,
  findProblems,
  findVulkanLoader,
  type HostView,
  icdSearchDirs,
  noAdapterMessage,
} from "./diagnose.ts";
export {
  ensureRuntimeDir,
  loadWebGpu,
  probeWebGpu,
  READ_SYNC_MESSAGE,
  summarizeAdapter,
  type WebGpuAdapterSummary,
  webgpuAdapterSummary,
  type WebGpuProbe,
} from "./loader.ts";
