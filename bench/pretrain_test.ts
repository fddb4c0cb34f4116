/** `deno task pretrain` data hook-up: a source restarted at step k yields exactly batches k, k+1, ... */
import assert from "node:assert/strict";
import type { HostTensor } from "../model/fixture.ts";
import { openPretrainData, syntheticBatch } from "./pretrain.ts";

async function collect(src: AsyncIterable<HostTensor<Float32Array>>): Promise<HostTensor<Float32Array>[]> {
  const out = [];
  for await (const b of src) out.push(b);
  return out;
}

Deno.test("procedural data: seeded, restartable at any step, [B, 3, H, W]", async () => {
  const o = { method: "capi" as const, seed: 4, batch: 2, imageSize: [8, 12] as [number, number], steps: 5 };
  const { source, skipped } = await openPretrainData("procedural", o);
  assert.deepEqual(skipped, []);
  assert.equal(typeof source, "function");
  const open = source as (start: number) => AsyncIterable<HostTensor<Float32Array>>;
  const all = await collect(open(0));
  const tail = await collect(open(3));
  assert.equal(all.length, 5);
  assert.deepEqual(tail, all.slice(3));
  assert.deepEqual(all[0].shape, [2, 3, 8, 12]);
  assert.deepEqual(all[1], syntheticBatch(4, 1, 2, 8, 12));
  assert.notDeepEqual(all[0].data, all[1].data);
  await assert.rejects(openPretrainData("nope:/x", o), /unknown kind 'nope'/);
});
