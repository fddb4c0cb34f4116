/**
 * The engine choice on onnxruntime's GPU providers: `--ep webgpu` starts the ORT engine on the
 * WebGPU provider (its engines keep their state on the device and describe themselves as
 * `webgpu`); `--ep cuda` without onnxruntime-node's CUDA provider fails in `startEngine`, before
 * any data is read, with the one line of ep_diagnose.ts; a wrong `--ep` names the flag.
 */
import assert from "node:assert/strict";
import { parseEngineChoice, startEngine } from "./engine_choice.ts";
import { denoEpHost } from "./ops/ep_diagnose.ts";
import { OrtTrainEngine } from "./ops/ort_train_engine.ts";
import { smallSpec } from "./ops/small_step_spec.ts";
import { gpuTest } from "./ops/webgpu_test_gate.ts";

Deno.test("parseEngineChoice: --ep webgpu and cuda choose the ort engine's providers; others name the flag", () => {
  for (const ep of ["webgpu", "cuda"] as const) {
    assert.deepEqual(parseEngineChoice({ engine: "ort", ep, backend: "cpu" }), { engine: "ort", ep, backend: "cpu" });
  }
  assert.throws(
    () => parseEngineChoice({ engine: "ort", ep: "metal" }),
    /^Error: --ep: expected one of cpu, webgpu, cuda, got 'metal'$/,
  );
});

gpuTest("startEngine: --engine ort --ep webgpu builds engines on the WebGPU provider", async () => {
  const started = await startEngine(parseEngineChoice({ engine: "ort", ep: "webgpu", backend: "cpu" }));
  assert.equal(started.description.device, "webgpu");
  const engine = await started.factory(smallSpec());
  try {
    assert.ok(engine instanceof OrtTrainEngine);
    assert.equal(engine.description.device, "webgpu");
    assert.equal(engine.deviceStats().resident, true);
  } finally {
    engine.dispose();
  }
});

Deno.test("startEngine: --ep cuda without onnxruntime-node's CUDA provider fails in one line saying how to install it", async () => {
  const bin = denoEpHost().ortBinDir();
  try {
    Deno.statSync(`${bin}/libonnxruntime_providers_cuda.so`);
    return console.log(`skipped: the CUDA provider is installed in ${bin}`);
  } catch { /* not installed: the case under test */ }
  await assert.rejects(startEngine(parseEngineChoice({ engine: "ort", ep: "cuda", backend: "cpu" })), (e: Error) => {
    assert.ok(!e.message.includes("\n"), `one line: ${e.message}`);
    assert.match(e.message, /^onnxruntime 'cuda' provider: onnxruntime-node's CUDA 12 provider is not installed/);
    assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=cuda12/);
    return true;
  });
});
