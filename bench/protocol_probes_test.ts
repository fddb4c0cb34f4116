/** Which probes of a protocol share one run: online linear + attentive with equal settings and data. */
import assert from "node:assert/strict";
import { probeInput, resolveProbeConfig } from "../eval/probes.ts";
import type { EvalProtocol } from "../eval/protocols.ts";
import { probeJobs } from "./protocol_probes.ts";
import { loadSuite } from "./suites/mod.ts";

const plansOf = (suite: string, protocol: EvalProtocol) =>
  loadSuite(suite).protocol.probes.map((spec) => {
    const cfg = resolveProbeConfig(spec.probe, protocol, { ...spec.config, seed: 0 });
    return { spec, cfg, input: probeInput(spec.probe, cfg) };
  });

Deno.test("paper: linear and attentive train in one pass through the encoder; cpu: separate runs", () => {
  const paper = probeJobs(plansOf("in1k_vit_l14", "paper")).map((g) => g.map((p) => p.spec.probe));
  assert.deepEqual(paper, [["knn"], ["linear", "attentive"]]);
  const cpu = probeJobs(plansOf("default", "cpu")).map((g) => g.map((p) => p.spec.probe));
  assert.deepEqual(cpu, [["knn"], ["linear"], ["attentive"], ["seg_knn"], ["seg_logreg"]]);
});

Deno.test("the big suites run the paper protocol, the default suite the cpu one", () => {
  for (const s of ["in1k_vit_s", "in1k_vit_l14", "ade20k"]) {
    assert.equal(loadSuite(s).protocol.evalProtocol, "paper", s);
  }
  assert.equal(loadSuite("default").protocol.evalProtocol, "cpu");
});
