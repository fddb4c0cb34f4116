/** Stratified, seeded `--limit` samples: known class quotas, seed-dependent members, uniform for segmentation. */
import assert from "node:assert/strict";
import { stratifiedSubset } from "./splits.ts";

Deno.test("stratifiedSubset: a class-sorted split gives every class its share", () => {
  // ImageNet folders are class-sorted: the first 50 of 1000 would be class 0 only.
  const labels = Int32Array.from({ length: 1000 }, (_, i) => Math.floor(i / 100));
  const s = stratifiedSubset(labels, 50, 0);
  assert.equal(s.length, 50);
  const perClass = new Array(10).fill(0);
  for (const i of s) perClass[labels[i]]++;
  assert.deepEqual(perClass, new Array(10).fill(5));
  assert.deepEqual([...s], [...s].sort((a, b) => a - b), "ascending");
  assert.equal(new Set(s).size, 50);
  assert.deepEqual(stratifiedSubset(labels, 50, 0), s, "same seed, same sample");
  assert.notDeepEqual(stratifiedSubset(labels, 50, 1), s, "another seed, other members");
});

Deno.test("stratifiedSubset: largest remainders, ties to the larger class then the smaller id", () => {
  // Counts 6, 3, 1 of 10; 5 samples: exact shares 3, 1.5, 0.5 -> 3 + 1 + 0, one left for the
  // remainders .5 and .5: class 1 (3 samples) beats class 2 (1 sample).
  const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1, 2]);
  const s = stratifiedSubset(labels, 5, 3);
  assert.deepEqual([...s].map((i) => labels[i]).sort(), [0, 0, 0, 1, 1]);
  // Equal counts and remainders: the smaller class id gets the extra sample.
  assert.deepEqual([...stratifiedSubset(Int32Array.from([0, 0, 1, 1]), 1, 0)].map((i) => [0, 0, 1, 1][i]), [0]);
});

Deno.test("stratifiedSubset: no labels (segmentation) is a seeded uniform sample; all when asked for more", () => {
  const none = new Int32Array(20).fill(-1);
  const s = stratifiedSubset(none, 7, 0);
  assert.equal(s.length, 7);
  assert.equal(new Set(s).size, 7);
  assert.deepEqual([...stratifiedSubset(none, 30, 0)], Array.from({ length: 20 }, (_, i) => i));
  assert.throws(() => stratifiedSubset(none, 0, 0), /count must be >= 1/);
});
