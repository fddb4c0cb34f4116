/**
 * ONNX writer + graph builder self-test: a graph using every builder op, run by
 * onnxruntime-node, against the same computation in tfjs (model/nn) at 1e-4 relative; and
 * the `OrtEncoder` adapter layouts and error messages.
 */
import assert from "node:assert/strict";
import { initBackend, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { maxRelErr } from "../parity.ts";
import { linear } from "../nn/linear.ts";
import { mergeHeads, scaledDotProductAttention, splitHeads } from "../nn/attention.ts";
import { TfOps, toTf } from "../ops/tf_ops.ts";
import { normal } from "../init.ts";
import { OnnxGraph } from "./graph.ts";
import { OrtEncoder } from "./ort_encoder.ts";
import { ProtoWriter } from "./protobuf.ts";

await initBackend("cpu");

Deno.test("protobuf varints: unsigned and negative int64", () => {
  const w = new ProtoWriter();
  w.varint(300);
  w.varint(-1);
  assert.deepEqual([...w.finish()], [0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
});

Deno.test("every builder op matches tfjs through onnxruntime", async () => {
  const rng = Rng.from(5, "onnx-selftest");
  const [b, l, d, heads] = [3, 5, 8, 2];
  const W = normal(rng.fork("w"), [d, d], 0.3), bias = normal(rng.fork("b"), [d], 0.1);
  const lnW = normal(rng.fork("lnw"), [d], 1), lnB = normal(rng.fork("lnb"), [d], 0.1);
  const rmsW = normal(rng.fork("rmsw"), [d], 1);
  const xIn = normal(rng.fork("x"), [b, l, d], 1);

  const g = new OnnxGraph("selftest");
  const x = g.input("x", ["batch", l, d]);
  const h = g.gelu(g.linear(x, W, bias));
  const n1 = g.layerNorm(h, lnW, lnB, 1e-6);
  const n2 = g.rmsNorm(n1, rmsW, 1e-5);
  const q = g.splitHeads(n2, l, heads, d / heads);
  const att = g.mergeHeads(g.attention(q, q, q, 0.5), l, d);
  const picked = g.concat([g.slice(att, [0], [2], [1]), g.gather(att, g.intTensor([2], [4, 0]), 1)], 1); // [B, 4, D]
  const trig = g.sub(g.sin(picked), g.cos(picked));
  g.output(g.reduceMean(trig, [1], false), "pooled", ["batch", d]);
  g.output(att, "att", ["batch", l, d]);

  // Run the session directly: the encoder wrapper insists on image-shaped inputs.
  const ort = await import("onnxruntime-node");
  const session = await ort.InferenceSession.create(g.toModel());
  const out = await session.run({ x: new ort.Tensor("float32", xIn.data, xIn.shape) });
  await session.release();

  const [refAtt, refPooled] = tf.tidy(() => {
    const o = new TfOps();
    const t = (v: { shape: number[]; data: Float32Array }) => o.constant(v);
    const hh = o.gelu(linear(o, t(xIn), t(W), t(bias)));
    const nn2 = o.rmsNorm(o.layerNorm(hh, t(lnW), t(lnB), 1e-6), t(rmsW), 1e-5);
    const qq = splitHeads(o, nn2, heads);
    const a = toTf(mergeHeads(o, scaledDotProductAttention(o, qq, qq, qq, { scale: 0.5 })));
    const p = tf.concat([tf.slice(a, [0, 0, 0], [-1, 2, -1]), tf.gather(a, [4, 0], 1)], 1);
    return [a, tf.mean(tf.sub(tf.sin(p), tf.cos(p)), 1)];
  });
  assert.ok(maxRelErr(out.att.data as Float32Array, refAtt.dataSync()) < 1e-4, "attention output");
  assert.ok(maxRelErr(out.pooled.data as Float32Array, refPooled.dataSync()) < 1e-4, "pooled output");
  assert.deepEqual(out.pooled.dims.map(Number), [b, d]);
  refAtt.dispose();
  refPooled.dispose();
});

Deno.test("OrtEncoder: layouts, prefix tokens, and errors naming the graph's outputs", async () => {
  // images [B,3,4,4], patch 2 -> grid 2x2, D = 3: patches = the 2x2 top-left pixel of each patch per channel.
  const g = new OnnxGraph("toy");
  const img = g.input("images", ["batch", 3, 4, 4]);
  const px = g.reshape(g.transpose(g.reshape(img, [-1, 3, 2, 2, 2, 2]), [0, 2, 4, 1, 3, 5]), [-1, 4, 3, 4]);
  const tokens = g.reduceMean(px, [3], false); // [B, 4 patches, 3 channels] mean over the 2x2 pixels
  const cls = g.reduceMean(tokens, [1], true); // [B, 1, 3]
  g.output(g.concat([cls, tokens], 1), "seq", ["batch", 5, 3]);
  const bytes = g.toModel();
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
