/**
 * `deno run -A .ci/ort_parity.ts [--ep cpu|webgpu|cuda] [--verbose] FILE.json ...`
 *
 * The parity fixtures on the ORT engine (model/ops/ort_train_engine.ts) on one execution
 * provider: `runParity` of bench/parity.ts with that engine's factory, the same table, `PASS`/`FAIL`
 * lines and exit code as `deno task parity`. A stand-in until `deno task parity --engine ort --ep EP`
 * exists; .ci/ort_parity.sh calls whichever is there. The capi_probe fixture checks the probe
 * heads on tfjs (wasm) whatever the engine: it has no training step.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend } from "../model/engine.ts";
import { parseExecutionProvider } from "../model/ops/ort_program.ts";
import { ortEngineFactory } from "../model/ops/ort_train_engine.ts";
import { runParity } from "../bench/parity.ts";

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { ep: { type: "string" }, verbose: { type: "boolean", short: "v" } },
    allowPositionals: true,
  });
  let ep;
  try {
    ep = parseExecutionProvider(values.ep);
    if (positionals.length === 0) throw new Error("no fixture given (FILE.json ...)");
  } catch (e) {
    console.error(`ort_parity: ${(e as Error).message}`);
    Deno.exit(2);
  }
  await initBackend("wasm");
  const t0 = performance.now();
  const ok = await runParity(positionals, { verbose: values.verbose, engine: ortEngineFactory({ ep }) });
  console.log(
    `ort_parity: ep=${ep}, ${positionals.length} fixture(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  Deno.exit(ok ? 0 : 1);
}
