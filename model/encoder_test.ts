import assert from "node:assert/strict";
import { assertImageBatch } from "./encoder.ts";

Deno.test("assertImageBatch names the encoder, the shape found and the one expected", () => {
  const info = { arch: "vit_x.capi", embedDim: 8, patchSize: 4, imageSize: [16, 24] as [number, number] };
  assertImageBatch(info, { shape: [2, 3, 16, 24], data: new Float32Array(2 * 3 * 16 * 24) });
  assert.throws(
    () => assertImageBatch(info, { shape: [2, 1, 16, 24], data: new Float32Array(2 * 16 * 24) }),
    { message: "vit_x.capi: images [2,1,16,24], expected [B, 3, 16, 24]" },
  );
});
