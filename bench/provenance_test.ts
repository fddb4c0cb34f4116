/**
 * Engines are recorded as they ran: asking for `blas` where no BLAS library loads runs `wasm`,
 * and the description says so (a subprocess with `BLAS_LIB` pointing nowhere, as on a fresh
 * machine without OpenBLAS); the fallback does not change what counts as the same computation.
 *
 * @module
 */
import assert from "node:assert/strict";
import { version_wasm } from "@tensorflow/tfjs-backend-wasm";
import { tf } from "../model/engine.ts";
import { REPO_ROOT } from "./run_task.ts";
import { engineKey, engineLabel } from "./provenance.ts";
import { EngineRecord } from "./run_record.ts";

Deno.test("without a BLAS library, a blas run is described as wasm with fallbackFrom blas", async () => {
  const script = `
    import { initBackend } from "${REPO_ROOT}model/engine.ts";
    import { tfEngineDescription } from "${REPO_ROOT}model/tf_train_engine.ts";
    await initBackend("blas");
    console.log(JSON.stringify(tfEngineDescription()));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", `${REPO_ROOT}deno.json`, script],
    env: { BLAS_LIB: "/nonexistent/libopenblas.so.0", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  assert.match(stderr, /backend 'blas': falling back to the wasm kernels/);
  const engine = EngineRecord.parse(JSON.parse(new TextDecoder().decode(out.stdout)));
  assert.deepEqual(engine, {
    engine: "tfjs",
    device: "wasm",
    fallbackFrom: "blas",
    versions: { "@tensorflow/tfjs-core": tf.version["tfjs-core"], "@tensorflow/tfjs-backend-wasm": version_wasm },
  });
  assert.equal(engineLabel(engine), "tfjs wasm (fallback from blas)");
  const asked = { engine: "tfjs" as const, device: "wasm", versions: engine.versions };
  assert.deepEqual(engineKey(engine), engineKey(asked));
});
