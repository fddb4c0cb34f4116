/**
 * The real phases' pure parts: each method's schedule is stretched to exactly the suite's
 * budget (same steps for every method), and suite overrides reach the method config.
 *
 * @module
 */
import assert from "node:assert/strict";
import { methodConfig } from "./bench_phases.ts";
import { expandSuite, Suite } from "./suite.ts";
import { FAKE_SUITE } from "./fake_phases.ts";
import { methodPreset } from "../model/methods.ts";

const cellOf = (method: "capi" | "mae" | "simmim", overrides: Record<string, unknown> = {}) => {
  const suite = Suite.parse({
    ...FAKE_SUITE,
    subjects: [{ kind: "pretrained", method }],
    models: [{ preset: "tiny", overrides }],
    pretraining: [{ ...FAKE_SUITE.pretraining[0], steps: 50 }],
  });
  return expandSuite(suite)[0];
};

Deno.test("methodConfig: every method's schedule spans exactly the suite's steps", () => {
  for (const m of ["capi", "mae", "simmim"] as const) {
    const optim = methodConfig(m, cellOf(m)).optim as Record<string, unknown>;
    assert.equal(optim.totalIters, 50, m);
    const preset = methodPreset(m, "tiny").optim as Record<string, number | number[]>;
    const total = preset.totalIters as number;
    if (typeof preset.warmupIters === "number") {
      assert.equal(optim.warmupIters, Math.round((preset.warmupIters * 50) / total), `${m} warmup`);
    }
    if (Array.isArray(preset.milestones)) {
      assert.deepEqual(optim.milestones, preset.milestones.map((x) => Math.round((x * 50) / total)), `${m} milestones`);
    }
  }
});

Deno.test("methodConfig: suite overrides are deep-merged over the preset, the budget wins", () => {
  const cfg = methodConfig("capi", cellOf("capi", { embedDim: 96, optim: { lr: 1e-4, totalIters: 7 } }));
  assert.equal(cfg.embedDim, 96);
  const optim = cfg.optim as Record<string, unknown>;
  assert.equal(optim.lr, 1e-4);
  assert.equal(optim.totalIters, 50);
  assert.equal(optim.clusteringLr, (methodPreset("capi", "tiny").optim as Record<string, unknown>).clusteringLr);
});
