/**
 * CAPI masking: replays the fixture's recorded python `random` draws and reproduces every
 * mask and index exactly; properties of the suite-Rng generator.
 */
import assert from "node:assert/strict";
import { loadFixture } from "../fixture.ts";
import { Rng } from "../rng.ts";
import { capiConfigFromFixture, capiDims } from "./config.ts";
import { blockMask, collateMasks, inverseBlockMask, type MaskDraws, sampleCapiMasks } from "./masking.ts";

const FIXTURE = new URL("../testdata/capi_tiny.json", import.meta.url).pathname;

interface Draw {
  fn: "uniform" | "randint";
  args: [number, number];
  value: number;
}

/** Returns the recorded values, checking that each call is the one python made. */
function replay(draws: Draw[], crop: number): MaskDraws & { left: () => number } {
  let i = 0;
  const take = (fn: string, lo: number, hi: number) => {
    const d = draws[i++];
    assert.ok(d, `crop ${crop}: draw ${i - 1} (${fn}) was not recorded`);
    assert.equal(d.fn, fn, `crop ${crop}: draw ${i - 1} is ${d.fn}, we called ${fn}`);
    assert.ok(
      Math.abs(d.args[0] - lo) < 1e-12 && Math.abs(d.args[1] - hi) < 1e-12,
      `crop ${crop}: draw ${i - 1} args [${d.args}] vs ours [${lo}, ${hi}]`,
    );
    return d.value;
  };
  return {
    uniform: (lo, hi) => take("uniform", lo, hi),
    randint: (lo, hi) => take("randint", lo, hi),
    left: () => draws.length - i,
  };
}

Deno.test("inverse block masking replays the fixture's python draws exactly", async () => {
  const fx = await loadFixture(FIXTURE);
  const cfg = capiConfigFromFixture(fx.config);
  const d = capiDims(cfg);
  const gen = (fx.manifest as Record<string, unknown>).mask_generation as {
    crops: { num_masking_patches_arg: number; draws: Draw[]; mask: number[][] }[];
  };
  const masks = fx.i32("input.masks");
  assert.equal(gen.crops.length, masks.shape[0]);
  gen.crops.forEach((crop, b) => {
    assert.equal(crop.num_masking_patches_arg, d.nMasked);
    const r = replay(crop.draws, b);
    const ours = inverseBlockMask(d.gridH, d.gridW, d.nMasked, r);
    assert.equal(r.left(), 0, `crop ${b}: ${r.left()} recorded draws unused`);
    assert.deepEqual([...ours], crop.mask.flat(), `crop ${b}: mask differs`);
    assert.deepEqual([...ours], [...masks.data.subarray(b * d.nTokens, (b + 1) * d.nTokens)]);
  });
});

Deno.test("collate reproduces visible and predicted absolute indices from the fixture's torch.rand", async () => {
  const fx = await loadFixture(FIXTURE);
  const d = capiDims(capiConfigFromFixture(fx.config));
  const b = fx.i32("input.masks").shape[0];
  const m = collateMasks(
    Uint8Array.from(fx.i32("input.masks").data),
    b,
    d.nTokens,
    d.nPredict,
    fx.f32("input.collate_rand").data,
  );
  assert.deepEqual([...m.visibleIndices], [...fx.i32("input.visible_indices").data]);
  assert.deepEqual([...m.predictIndices], [...fx.i32("input.predict_indices").data]);
});

Deno.test("blockMask: known answer without randomness beyond fixed draws", () => {
  // 4x4 grid, 6 cells, ar = 1: bh = bw = ceil(sqrt 6) = 3; top 1, left 1; first 6 cells; roll (1, 1).
  const fixed: MaskDraws = { uniform: () => 0, randint: (lo) => (lo === 0 ? 1 : lo) };
  const m = blockMask(4, 4, 6, fixed);
  // block rows 1-2, cols 1-3 -> rolled down 1 and right 1 (wrapping): rows 2-3, cols 2, 3, 0.
  assert.deepEqual([...m], [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1]);
});

Deno.test("sampleCapiMasks: exact counts, seeded, non-square grid", () => {
  const o = { batch: 5, gridH: 6, gridW: 10, nMasked: 39, nPredict: 9 };
  const a = sampleCapiMasks(Rng.from(3, "t"), o);
  const again = sampleCapiMasks(Rng.from(3, "t"), o);
  const other = sampleCapiMasks(Rng.from(4, "t"), o);
  assert.deepEqual(a, again);
  assert.notDeepEqual([...a.masks], [...other.masks]);
  const n = o.gridH * o.gridW;
  for (let b = 0; b < o.batch; b++) {
    const row = a.masks.subarray(b * n, (b + 1) * n);
    assert.equal(row.reduce((s, v) => s + v, 0), o.nMasked, `image ${b}`);
  }
  assert.equal(a.visibleIndices.length, o.batch * (n - o.nMasked));
  assert.equal(a.predictIndices.length, o.batch * o.nPredict);
  for (let i = 0; i < a.predictIndices.length; i++) {
    const abs = a.predictIndices[i];
    assert.equal(Math.floor(abs / n), Math.floor(i / o.nPredict), "image-major order");
    assert.equal(a.masks[abs], 1, "predicted tokens are masked");
  }
});
