/**
 * `deno task parity` on the trajectory fixtures (model/testdata/trajectories/, 50 steps of CAPI with
 * drop path off and on, MAE and SimMIM from the float64 references in tools/fixtures/): each replays
 * through its method's own step spec and draw code (model/trajectory_adapters.ts) and must PASS on both
 * engines, tfjs on wasm and the one-graph onnxruntime engine on its CPU provider: every step's logged
 * scalars and the final parameters and AdamW moments at the tolerance the fixture states.
 *
 * The replay can fail: a clustering weight decay of 0 instead of torch's 0.01 (a bug the single-step
 * fixtures cannot see), or the drop-path draws fed to the wrong residual branches, fail at a named step.
 *
 * Run: `deno test -A bench/parity_trajectory_test.ts` (about 3 s per trajectory on tfjs wasm, 1 s on ort).
 *
 * @module
 */
import assert from "node:assert/strict";
import { initBackend } from "../model/engine.ts";
import { loadFixture } from "../model/fixture.ts";
import { OrtTrainEngine } from "../model/ops/ort_train_engine.ts";
import type { TrainStepSpec } from "../model/train_step.ts";
import { replayTrajectory, type TrajectoryReport } from "../model/trajectory.ts";
import { trajectoryAdapter } from "../model/trajectory_adapters.ts";
import { runParity } from "./parity.ts";

const DIR = new URL("../model/testdata/trajectories/", import.meta.url).pathname;
const NAMES = ["capi_traj", "capi_traj_droppath", "mae_traj", "simmim_traj"];
const ort = (spec: TrainStepSpec) => Promise.resolve(new OrtTrainEngine(spec, { threads: 1 }));

await initBackend("wasm");

for (const name of NAMES) {
  const path = `${DIR}${name}.json`;
  Deno.test(`trajectory ${name} (tfjs wasm)`, async () => {
    assert.ok(await runParity([path]), `${path}: FAILED (rerun: deno task parity --verbose ${path})`);
  });
  Deno.test(`trajectory ${name} (ort cpu)`, async () => {
    assert.ok(
      await runParity([path], { engine: ort }),
      `${path}: FAILED on the ort engine (rerun: deno task parity --engine ort --verbose ${path})`,
    );
  });
}

function row(report: TrajectoryReport, name: string) {
  const r = report.rows().find((x) => x.name === name);
  assert.ok(r, `no row ${name}`);
  return r;
}

Deno.test("a clustering weight decay of 0 (torch's AdamW default is 0.01) fails the CAPI replay", async () => {
  const fx = await loadFixture(`${DIR}capi_traj.json`);
  for (const h of fx.trajectory!.hyper) h.groups.clustering.all.weight_decay = 0;
  const report = await replayTrajectory(fx, trajectoryAdapter(fx), ort);
  assert.equal(report.summary().passed, false);
  const loss = row(report, "traj.loss_clustering");
  assert.equal(loss.status, "fail");
  // mutate_trajectories.py: the float64 reference with this bug leaves the tolerance at step 16.
  assert.ok(loss.firstFailStep! > 1 && loss.firstFailStep! <= 50, `first failing step ${loss.firstFailStep}`);
  assert.equal(row(report, "final.param.teacher_head.layer.weight").status, "fail");
});

Deno.test("drop-path draws on the wrong residual branches fail the CAPI replay", async () => {
  const fx = await loadFixture(`${DIR}capi_traj_droppath.json`);
  const adapter = trajectoryAdapter(fx);
  const shuffled = {
    spec: adapter.spec,
    draws(f: typeof fx, t: number) {
      // Each branch gets the next branch's subset (a rotation of the recorded order).
      const d = adapter.draws(f, t);
      const names = Object.keys(d).filter((k) => k.startsWith("drop_path.") && k.endsWith(".keep")).sort();
      assert.ok(names.length >= 2, `expected drop-path draws, got ${Object.keys(d)}`);
      const out = { ...d };
      names.forEach((k, i) => {
        const from = names[(i + 1) % names.length].slice(0, -".keep".length), to = k.slice(0, -".keep".length);
        out[`${to}.keep`] = d[`${from}.keep`];
        out[`${to}.inv`] = d[`${from}.inv`];
      });
      return out;
    },
  };
  const report = await replayTrajectory(fx, shuffled, ort);
  assert.equal(report.summary().passed, false);
  assert.equal(row(report, "traj.loss").status, "fail");
  assert.equal(row(report, "traj.loss").firstFailStep, 1, "the first step's loss already differs");
});
