/** Known-answer tests for the metrics (values worked out by hand from sklearn's definitions). */
import { assertAlmostEquals } from "./test_assert.ts";
import assert from "node:assert/strict";
import { argmaxRows, SegMetricAccumulator, segScores, top1 } from "./metrics.ts";

Deno.test("top1 counts exact matches", () => {
  assert.equal(top1([1, 2, 3, 4], [1, 0, 3, 0]), 0.5);
  assert.throws(() => top1([1], [1, 2]), /1 predictions for 2 labels/);
  assert.throws(() => top1([], []), /no samples/);
});

Deno.test("argmaxRows takes the first maximum", () => {
  assert.deepEqual([...argmaxRows([0, 2, 2, 5, 1, 0], 2, 3)], [1, 0]);
});

Deno.test("mIoU: ignored gt pixels, a predicted ignore label and union-of-labels averaging", () => {
  const gt = [1, 1, 2, 2, 0, 255, 3, 3];
  const pred = [1, 2, 2, 2, 5, 1, 0, 3];
  const s = segScores(pred, gt);
  // scored: gt (1,1,2,2,3,3) vs pred (1,2,2,2,0,3); classes {0,1,2,3}:
  // IoU0 = 0/1, IoU1 = 1/2, IoU2 = 2/3, IoU3 = 1/2
  assert.equal(s.classes, 4);
  assert.equal(s.pixels, 6);
  assertAlmostEquals(s.miou, (0 + 0.5 + 2 / 3 + 0.5) / 4, 1e-12);
  assertAlmostEquals(s.pixelAcc, 4 / 6, 1e-12);
  assert.equal(s.perClass.get(0), 0);
});

Deno.test("mIoU: classes absent from gt and pred are not averaged; predicted-only labels are", () => {
  // Label 2 never appears: it must not count as an IoU of 0 or 1.
  const s = segScores([1, 1, 3, 3], [1, 1, 3, 3]);
  assert.equal(s.classes, 2);
  assert.equal(s.miou, 1);
  // Label 7 only predicted: a class with IoU 0.
  const t = segScores([1, 7, 3, 3], [1, 1, 3, 3]);
  assert.equal(t.classes, 3);
  assertAlmostEquals(t.miou, (0.5 + 1 + 0) / 3, 1e-12);
});

Deno.test("mIoU accumulates over images like one concatenated map", () => {
  const acc = new SegMetricAccumulator();
  acc.add([1, 2], [1, 1]);
  acc.add([2, 2], [2, 0]);
  const whole = segScores([1, 2, 2, 2], [1, 1, 2, 0]);
  assert.deepEqual(acc.scores().miou, whole.miou);
  assert.throws(() => segScores([1, 2], [0, 255]), /no scored pixels/);
});
