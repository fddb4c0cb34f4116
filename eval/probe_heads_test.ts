/** Grid heads: classifier k of a G-stack computes exactly what it computes alone; heads count rule. */
import assert from "node:assert/strict";
import { initBackend, tf } from "../model/engine.ts";
import { Rng } from "../model/rng.ts";
import { maxRelErr } from "../model/parity.ts";
import {
  attnGridLogits,
  attnPoolHeads,
  type GridParams,
  initAttnGrid,
  initLinearGrid,
  linearGridLogits,
} from "./probe_heads.ts";

await initBackend("cpu");

const t = (h: { shape: number[]; data: Float32Array }) => tf.tensor(h.data, h.shape);

/** Classifier k of an attentive grid as a G = 1 grid (slices of each stacked parameter). */
function pickAttn(p: GridParams, k: number): GridParams {
  const [g, d] = p.query.shape, c = p.w.shape[2];
  const kvW = new Float32Array(d * 2 * d);
  for (let i = 0; i < d; i++) {
    kvW.set(p.kvW.data.subarray(i * g * 2 * d + k * 2 * d, i * g * 2 * d + (k + 1) * 2 * d), i * 2 * d);
  }
  return {
    query: { shape: [1, d], data: p.query.data.slice(k * d, (k + 1) * d) },
    kvW: { shape: [d, 2 * d], data: kvW },
    kvB: { shape: [2 * d], data: p.kvB.data.slice(k * 2 * d, (k + 1) * 2 * d) },
    w: { shape: [1, d, c], data: p.w.data.slice(k * d * c, (k + 1) * d * c) },
    b: { shape: [1, 1, c], data: p.b.data.slice(k * c, (k + 1) * c) },
  };
}

Deno.test("attentive grid: each stacked classifier equals the same classifier alone (2 heads, biases set)", () => {
  const rng = Rng.from(9, "grid");
  const [g, d, c, b, n] = [3, 128, 4, 2, 5];
  const p = initAttnGrid(rng, d, c, g);
  // Non-zero biases and a larger query so that the attention is far from uniform.
  rng.fork("kvB").fillNormal(p.kvB.data, 0, 0.5);
  rng.fork("b").fillNormal(p.b.data, 0, 0.5);
  rng.fork("q").fillNormal(p.query.data, 0, 2);
  rng.fork("kv").fillNormal(p.kvW.data, 0, 0.2);
  const x = { shape: [b, n, d], data: rng.fork("x").fillNormal(new Float32Array(b * n * d)) };
  const all = tf.tidy(() =>
    attnGridLogits(t(x), Object.fromEntries(Object.entries(p).map(([k, v]) => [k, t(v)])) as never)
  );
  const allData = all.dataSync();
  for (let k = 0; k < g; k++) {
    const one = tf.tidy(() =>
      attnGridLogits(t(x), Object.fromEntries(Object.entries(pickAttn(p, k)).map(([kk, v]) => [kk, t(v)])) as never)
    );
    const mine = Float32Array.from({ length: b * c }, (_, i) => allData[(Math.floor(i / c) * g + k) * c + (i % c)]);
    assert.ok(maxRelErr(mine, one.dataSync()) < 1e-5, `classifier ${k}`);
    one.dispose();
  }
  all.dispose();
});

Deno.test("linear grid layout: column block k is classifier k", () => {
  const p = initLinearGrid(Rng.from(1), 3, 2, 4);
  const x = tf.tensor2d([[1, 0, 0]]);
  const y = linearGridLogits(x, t(p.w), t(p.b), 2); // [1, 4, 2]
  assert.deepEqual(y.shape, [1, 4, 2]);
  assert.deepEqual([...y.dataSync()], [...p.w.data.subarray(0, 8)]);
  tf.dispose([x, y]);
});

Deno.test("attentive heads: D/64, at least one", () => {
  assert.equal(attnPoolHeads(1024), 16);
  assert.equal(attnPoolHeads(192), 3);
  assert.equal(attnPoolHeads(32), 1);
  assert.throws(() => attnPoolHeads(200), /width 200 is not divisible by 3 heads/);
});
