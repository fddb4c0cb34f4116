/**
 * The ORT engine's accumulated step (`stepMicro`) on the WebGPU provider (lavapipe here): it
 * follows the CPU engine's accumulated step; parameters, moments and the accumulated gradients
 * stay on the device (after the first step only the draws, the micro-batch weights and the
 * hyper-parameter scalars go up, and each micro-batch's `loss` and metrics come down, counted in
 * bytes); and CAPI, whose Sinkhorn statistics passes save the teacher's features per micro-batch
 * (kept on the device), reproduces its one-shot batch there. Skipped where no WebGPU adapter
 * exists (webgpu_test_gate.ts).
 */
import assert from "node:assert/strict";
import type { HostTensor } from "../fixture.ts";
import type { MicroBatch } from "../train_step.ts";
import { assertAgree, compareMicroToOneShot, microMethod } from "../micro_batch_check.ts";
import { OrtTrainEngine } from "./ort_train_engine.ts";
import { smallDraws, smallHyper, smallSpec } from "./small_step_spec.ts";
import { gpuTest } from "./webgpu_test_gate.ts";

const floats = (t: HostTensor) => t.data.length;

/** Step `s`'s draws as one micro-batch per sample. */
function perSample(s: number): MicroBatch[] {
  const d = smallDraws(s), [b, ...rest] = d.x.shape, n = floats(d.x) / b;
  return Array.from({ length: b }, (_, i) => ({
    draws: { x: { shape: [1, ...rest], data: d.x.data.slice(i * n, (i + 1) * n) }, idx: d.idx },
    samples: 1,
  }));
}

gpuTest("webgpu stepMicro: follows the CPU engine; state and accumulated gradients stay on the device", async () => {
  const spec = smallSpec();
  const gpu = new OrtTrainEngine(spec, { ep: "webgpu" }), cpu = new OrtTrainEngine(spec);
  try {
    const stepped = [...spec.params].filter(([n, p]) => p.trainable && n !== "unused.weight");
    const steppedFloats = stepped.reduce((a, [, p]) => a + floats(p.value), 0);
    const stateBytes = 4 * ([...spec.params.values()].reduce((a, p) => a + floats(p.value), 0) + 2 * steppedFloats);
    const scalars = 10; // AdamW's (student: 2 groups x 2 + bc2; clustering: 2 + 1) and the EMA's (m, 1 - m)
    for (let s = 0; s < 3; s++) {
      const micro = perSample(s);
      const [rg, rc] = [
        await gpu.stepMicro(micro, smallHyper(s), { grads: s === 2 }),
        await cpu.stepMicro(micro, smallHyper(s), { grads: s === 2 }),
      ];
      const [lg, lc] = [await rg.read(), await rc.read()];
      assert.ok(Math.abs(lg.loss - lc.loss) <= 1e-5 * Math.abs(lc.loss), `step ${s}: loss ${lg.loss} vs ${lc.loss}`);
      const st = gpu.deviceStats();
      assert.equal(st.liveBytes, stateBytes, "parameters and moments held on the device; the gradients freed");
      // Per micro-batch: its draws and weight up, loss and ce down; then the apply run's scalars up.
      // The first step also sends the initial state and one zero tensor per stepped parameter, once.
      const draws = micro.reduce((a, m) => a + 4 * (floats(m.draws.x) + floats(m.draws.idx) + 1), 0);
      const once = s === 0 ? stateBytes + 4 * steppedFloats : 0;
      assert.deepEqual(st.lastStep, { toDeviceBytes: draws + 4 * scalars + once, toHostBytes: micro.length * 4 * 2 });
      if (s === 2) {
        for (const [n, g] of rc.grads!) {
          const h = rg.grads!.get(n)!.data; // read back from the device through a cpu-output run
          const scale = Math.max(...Array.from(g.data, Math.abs));
          g.data.forEach((v, i) => assert.ok(Math.abs(v - h[i]) <= 1e-5 * scale, `grad ${n}[${i}]: ${h[i]} vs ${v}`));
        }
      }
    }
    const [sg, sc] = [await gpu.snapshot(), await cpu.snapshot()];
    for (const [n, t] of sc.params) {
      const g = sg.params.get(n)!.data;
      const err = Math.max(0, ...Array.from(t.data, (v, i) => Math.abs(v - g[i])));
      assert.ok(err <= 1e-6, `${n}: webgpu differs from cpu by ${err} after 3 accumulated steps`);
    }
  } finally {
    gpu.dispose();
    cpu.dispose();
  }
});

gpuTest(
  "webgpu stepMicro: CAPI's 2 micro-batches (Sinkhorn passes, teacher kept on the device) reproduce its batch",
  async () => {
    const r = await compareMicroToOneShot(
      microMethod("capi", 8, false),
      (spec) => Promise.resolve(new OrtTrainEngine(spec, { ep: "webgpu" })),
      { batch: 8, batchPerDevice: 4, imageSize: [16, 16], traces: ["teacher.targets", "teacher.head.assignments"] },
    );
    assertAgree(r.worst, r.skipped / r.total);
  },
);
