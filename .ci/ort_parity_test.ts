/**
 * The official golden fixtures of each method (model/testdata/{capi,mae,simmim}_tiny.json) on the
 * ORT engine with the WebGPU execution provider (Mesa's lavapipe here, CPU fallback disabled):
 * every tensor passes the tightened metric of model/parity.ts (1e-4 relative and 1e-2 of the
 * tensor's scale), and our float32 errors stay within 1.5x torch float32's (median over tensors),
 * as bench/parity_test.ts asks of the tfjs engine. The variants run in CI through
 * .ci/ort_parity.sh (all fixtures); here the three goldens keep `deno task test`
 * honest about the provider. Skipped, with the reason, where no WebGPU adapter exists.
 *
 * Cost: lavapipe compiles each WGSL pipeline with LLVM once per machine (Mesa's shader cache):
 * ~50 s the first time on 2 cores, ~12 s after.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { initBackend } from "../model/engine.ts";
import { checkExecutionProvider } from "../model/ops/ort_program.ts";
import { ortEngineFactory } from "../model/ops/ort_train_engine.ts";
import { runParity } from "../bench/parity.ts";

const TESTDATA = fileURLToPath(new URL("../model/testdata/", import.meta.url));
const VS_TORCH_BOUND = 1.5; // as bench/parity_test.ts; measured 0.91-1.18 on these three (2026-12-01)

for (const name of ["capi_tiny", "mae_tiny", "simmim_tiny"]) {
  Deno.test({
    name: `parity ${name} on the ORT engine, webgpu provider`,
    ignore: Deno.env.get("MIMBENCH_SKIP_WEBGPU") === "1",
    fn: async () => {
      try {
        await checkExecutionProvider("webgpu");
      } catch (e) {
        return console.log(`skipped: ${(e as Error).message}`);
      }
      await initBackend("wasm");
      const path = `${TESTDATA}${name}.json`;
      let vsTorch = NaN;
      const ok = await runParity([path], {
        engine: ortEngineFactory({ ep: "webgpu" }),
        onSummary: (_, s) => vsTorch = s.vsTorchF32,
      });
      assert.ok(ok, `${path}: parity FAILED on webgpu (rerun: deno task parity --engine ort --ep webgpu -v ${path})`);
      assert.ok(vsTorch <= VS_TORCH_BOUND, `${path}: our float32 errors are ${vsTorch.toFixed(2)}x torch float32's`);
    },
  });
}
