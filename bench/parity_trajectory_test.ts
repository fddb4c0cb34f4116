/**
 * `deno task parity` on trajectory fixtures: the kind is told from the manifest's format, and until a
 * method's `TrajectoryAdapter` and an engine are registered the fixture FAILs with what is missing
 * (never a silent pass). The replay itself is tested in model/trajectory_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { runParity, TRAJECTORY_ADAPTERS } from "./parity.ts";

const CAPI = new URL("../model/testdata/trajectories/capi_traj.json", import.meta.url).pathname;

Deno.test("a trajectory fixture without a registered adapter and engine fails, naming both", async () => {
  await initBackend("wasm");
  assert.equal(TRAJECTORY_ADAPTERS.capi, undefined, "wired: replace this test by a PASS test");
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => lines.push(s);
  try {
    assert.equal(await runParity([CAPI]), false);
  } finally {
    console.log = log;
  }
  assert.match(
    lines.at(-1)!,
    /^FAIL .*capi_traj\.json error: trajectory replay of 'capi' on the tfjs engine is not wired/,
  );
  assert.match(lines.at(-1)!, /TrajectoryAdapter for 'capi'.* and a tfjs TrainEngine/);
});
