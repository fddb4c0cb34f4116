/**
 * Test-only: `gpuTest`, a `Deno.test` that runs on onnxruntime's WebGPU provider when it starts
 * here (Mesa's lavapipe on the dev machine and in CI) and is skipped, with the one line
 * ep_diagnose.ts writes printed, where it cannot (no Vulkan driver, no adapter), or with
 * `MIMBENCH_SKIP_WEBGPU=1`. Any other error fails the test.
 *
 * @module
 */
import { checkExecutionProvider } from "./ort_program.ts";

/** Why the WebGPU tests cannot run here, or null when they can. */
export async function noWebGpu(): Promise<string | null> {
  if (Deno.env.get("MIMBENCH_SKIP_WEBGPU") === "1") return "MIMBENCH_SKIP_WEBGPU=1";
  try {
    await checkExecutionProvider("webgpu");
    return null;
  } catch (e) {
    const msg = (e as Error).message;
    if (msg.startsWith("onnxruntime 'webgpu' provider")) return msg;
    throw e;
  }
}

/** A test on the WebGPU provider, skipped (reason printed) where the provider cannot start. */
export function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test(name, async () => {
    const why = await noWebGpu();
    if (why) return console.log(`skipped: ${why}`);
    await fn();
  });
}
