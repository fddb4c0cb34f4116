import assert from "node:assert/strict";
import { maeLr, simmimLr, warmupThenCosine } from "./schedules.ts";

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

Deno.test("warmupThenCosine: linspace warmup with endpoint, truncated cosine, final after the end", () => {
  const o = { baseValue: 1, finalValue: 0.1, totalIters: 20, warmupIters: 5, startWarmupValue: 0.2, truncateCos: 0.8 };
  close(warmupThenCosine(o, 0), 0.2);
  close(warmupThenCosine(o, 4), 1); // endpoint included: W points from start to base
  close(warmupThenCosine(o, 2), 0.6);
  close(warmupThenCosine(o, 5), 1); // cosine starts at base
  close(warmupThenCosine(o, 19), 0.1 + 0.45 * (1 + Math.cos(Math.PI * 0.8 * 14 / 15)));
  close(warmupThenCosine(o, 20), 0.1);
  // CAPI's default lr never reaches 0: it stops at 1e-3 * 0.5 * (1 + cos(0.8 pi)) ~ 9.55e-5.
  const lr = { baseValue: 1e-3, finalValue: 0, totalIters: 500000, warmupIters: 50000, truncateCos: 0.8 };
  close(warmupThenCosine(lr, 499999), 1e-3 * 0.5 * (1 + Math.cos(Math.PI * 0.8 * 449999 / 450000)));
  // np.linspace(a, b, 1) == [a]
  close(warmupThenCosine({ ...o, warmupIters: 1 }, 0), 0.2);
});

Deno.test("MAE half-cycle cosine and SimMIM multistep", () => {
  const m = { lr: 2.4e-3, minLr: 0, warmupEpochs: 40, epochs: 800 };
  close(maeLr(m, 20), 1.2e-3);
  close(maeLr(m, 40), 2.4e-3);
  close(maeLr(m, 420), 1.2e-3);
  close(maeLr(m, 800), 0);
  const s = { baseLr: 1e-4, warmupLr: 5e-7, warmupSteps: 10, milestones: [700], gamma: 0.1 };
  close(simmimLr(s, 0), 5e-7);
  close(simmimLr(s, 5), 5e-7 + (1e-4 - 5e-7) / 2);
  close(simmimLr(s, 699), 1e-4);
  close(simmimLr(s, 700), 1e-5);
});
