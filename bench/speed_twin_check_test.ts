/**
 * The PyTorch twins of `deno task speed --vs-torch` compute what both engines compute: on small models of the
 * same code (bench/speed_twin_check.ts `TWIN_CHECKS`), the first two steps' losses and every parameter's
 * update agree with the twins' results committed in bench/testdata/speed_twins.json (no Python needed).
 * Also: the comparison fails on a wrong loss, a wrong update and a missing parameter.
 */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { OrtTrainEngine } from "../model/ops/ort_train_engine.ts";
import { createTfTrainEngine } from "../model/tf_train_engine.ts";
import type { EngineFactory } from "../model/train_engine.ts";
import { timeRound } from "./speed_round.ts";
import { speedSubject } from "./speed_subject.ts";
import { compareTwin, TWIN_CHECKS, TWINS_FILE, type TwinsFile } from "./speed_twin_check.ts";

const file = JSON.parse(Deno.readTextFileSync(TWINS_FILE)) as TwinsFile;
const REGENERATE = `if a method's initialisation or draws changed on purpose, regenerate: ${file.generatedBy}`;
/** Observed at most 1.2e-6 (losses) and 2.3e-4 (updates): float32 noise; room for other CPUs' kernels. A 20% error
 * in weight decay moves the updates by 7.7e-3 (SimMIM) to 1e-1 (CAPI). */
const TOL = { loss: 2e-5, update: 2e-3 };

const ENGINES: [string, EngineFactory][] = [
  ["ort", (spec) => Promise.resolve(new OrtTrainEngine(spec))],
  ["tfjs", createTfTrainEngine],
];

for (const [name, engine] of ENGINES) {
  Deno.test(`the torch twins compute what the ${name} engine computes (${TWIN_CHECKS.map((c) => c.method)})`, async () => {
    await initBackend("wasm");
    assert.deepEqual(file.checks.map(({ method, batch, options }) => ({ method, batch, options })), TWIN_CHECKS);
    for (const c of file.checks) {
      const subject = speedSubject(c.method, c.batch, c.options);
      const r = await timeRound(subject, engine, { steps: 1, warmup: 2, checkSteps: 2 });
      const cmp = compareTwin(r, c, TOL);
      console.log(`${c.method} (${name}): ${cmp.summary}`);
      assert.ok(cmp.ok, `${c.method} on ${name}: ${cmp.summary}; ${REGENERATE}`);
    }
  });
}

Deno.test("compareTwin fails on a different loss, a different update, a missing or extra parameter", () => {
  const ours = {
    checkLosses: [1, 0.9],
    checkUpdates: new Map<string, [number, number]>([["w", [0.01, -1e-4]], ["b", [0, 0]]]),
  };
  const twin = {
    checkLosses: [1, 0.9],
    checkUpdates: { w: [0.01, -1e-4], b: [0, 0] } as Record<string, [number, number]>,
  };
  assert.ok(compareTwin(ours, twin).ok);
  assert.match(compareTwin(ours, { ...twin, checkLosses: [1, 0.91] }).summary, /DIFFERENT: losses differ by 1\.1e-2/);
  assert.match(
    compareTwin(ours, { ...twin, checkUpdates: { w: [0.011, -1e-4], b: [0, 0] } }).summary,
    /'w' moved 9\.1e-2/,
  );
  // Weight decay: the same norm, another projection.
  assert.match(
    compareTwin(ours, { ...twin, checkUpdates: { w: [0.01, -3e-4], b: [0, 0] } }).summary,
    /'w' moved 2\.0e-2/,
  );
  assert.match(
    compareTwin(ours, { ...twin, checkUpdates: { w: [0.01, -1e-4] } }).summary,
    /the twin has no parameter 'b'/,
  );
  assert.match(
    compareTwin(ours, { ...twin, checkUpdates: { w: [0.01, -1e-4], b: [0, 0], c: [1, 0] } }).summary,
    /parameters we do not: c/,
  );
  assert.match(compareTwin(ours, { ...twin, checkLosses: [1] }).summary, /2 check steps here, 1 in the twin/);
});
