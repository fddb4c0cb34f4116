/** Which probes of a protocol share one run: online linear + attentive with equal settings and data. */
import assert from "node:assert/strict";
import { probeInput, resolveProbeConfig } from "../eval/probes.ts";
import type { EvalProtocol } from "../eval/protocols.ts";
import { probeJobs, processTempDir } from "./protocol_probes.ts";
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

Deno.test({
  name: "temporary feature stores of processes that no longer run are removed, live ones kept",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      await Deno.mkdir(`${root}/2147483646/features-x`, { recursive: true }); // no such pid
      await Deno.mkdir(`${root}/1`, { recursive: true }); // init: alive
      await Deno.mkdir(`${root}/notes`, { recursive: true }); // not a pid folder: left alone
      assert.equal(await processTempDir(root), `${root}/${Deno.pid}`);
      const left = [...Deno.readDirSync(root)].map((e) => e.name).sort();
      assert.deepEqual(left, ["1", "notes"]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
