/**
 * `OrtEncoder` (external ONNX encoders through an adapter): layouts, prefix tokens, and the
 * errors naming the graph's outputs, on a toy encoder recorded with `GraphOps` and lowered to
 * ONNX; and the protobuf writer's varints.
 */
import assert from "node:assert/strict";
import { GraphOps } from "../ops/graph_ops.ts";
import { lowerToOnnx } from "../ops/onnx_lower.ts";
import { OrtEncoder } from "./ort_encoder.ts";
import { ProtoWriter } from "./protobuf.ts";

Deno.test("protobuf varints: unsigned and negative int64", () => {
  const w = new ProtoWriter();
  w.varint(300);
  w.varint(-1);
  assert.deepEqual([...w.finish()], [0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
});

/** images [1,3,4,4], patch 2 -> grid 2x2, D = 3: each patch token is the mean of its 2x2 pixels per channel; a cls-like mean first. */
function toyEncoder(): Uint8Array {
  const o = new GraphOps();
  const img = o.input("images", { shape: [1, 3, 4, 4], data: new Float32Array(48) });
  const px = o.reshape(o.transpose(o.reshape(img, [1, 3, 2, 2, 2, 2]), [0, 2, 4, 1, 3, 5]), [1, 4, 3, 4]);
  const tokens = o.mean(px, 3); // [1, 4 patches, 3 channels]
  const cls = o.mean(tokens, 1, true); // [1, 1, 3]
  o.output("seq", o.concat([cls, tokens], 1));
  return lowerToOnnx(o.graph).bytes;
}

Deno.test("OrtEncoder: layouts, prefix tokens, and errors naming the graph's outputs", async () => {
  const bytes = toyEncoder();
  const enc = await OrtEncoder.create(bytes, {
    arch: "toy",
    outputs: { patches: "seq" },
    patchLayout: "bld",
    prefixTokens: 1,
    imageSize: [4, 4],
    patchSize: 2,
    embedDim: 3,
  });
  const images = { shape: [1, 3, 4, 4], data: Float32Array.from({ length: 48 }, (_, i) => i) };
  const f = await enc.encode(images);
  assert.deepEqual(f.patches.shape, [1, 2, 2, 3]);
  // patch (0,0), channel 0: mean of pixels 0,1,4,5 = 2.5; channel 1 adds 16.
  assert.deepEqual([...f.patches.data.subarray(0, 3)], [2.5, 18.5, 34.5]);
  assert.equal(f.global, null);
  await assert.rejects(enc.encode({ shape: [1, 3, 8, 8], data: new Float32Array(192) }), /expected \[B, 3, 4, 4\]/);
  enc.dispose();
  await assert.rejects(enc.encode(images), /used after dispose/);
  await assert.rejects(
    OrtEncoder.create(bytes, {
      arch: "toy",
      outputs: { patches: "nope" },
      imageSize: [4, 4],
      patchSize: 2,
      embedDim: 3,
    }),
    /adapter names nope but the graph has inputs \[images\] and outputs \[seq\]/,
  );
});
