/**
 * Lowering round trips: every op case (op_cases.ts), forward and gradients, recorded into one
 * graph, lowered to ONNX and run by onnxruntime, against the float64 interpreter. On the CPU
 * provider; and on the WebGPU provider (Mesa lavapipe here) with CPU fallback disabled, so a node
 * the provider cannot run fails the test instead of silently running on the CPU. Also: error
 * messages of the runner, and what the lowering writes for products and layer norms.
 */
import assert from "node:assert/strict";
import { GraphOps } from "./graph_ops.ts";
import { type LowerTarget, lowerToOnnx } from "./onnx_lower.ts";
import type * as ort from "onnxruntime-node";
import { type Feed, OrtProgram } from "./ort_program.ts";
import { refEval } from "./ref_eval.ts";
import { OP_CASES, recordCase } from "./op_cases.ts";
import type { Tensor } from "./ops.ts";
import type { HostTensor } from "../fixture.ts";

/** All cases in one graph: outputs `<case>.y`, `<case>.grad.<input>`. */
function allCases() {
  const o = new GraphOps();
  const feeds: Record<string, HostTensor> = {};
  const expect = new Map<string, Tensor>();
  for (const c of OP_CASES) {
    const { host, y, floats, grads } = recordCase(c, o, `${c.name}.`);
    for (const [n, h] of Object.entries(host)) feeds[`${c.name}.${n}`] = h;
    o.output(`${c.name}.y`, y);
    expect.set(`${c.name}.y`, y);
    floats.forEach((n, i) => {
      o.output(`${c.name}.grad.${n}`, grads[i]!);
      expect.set(`${c.name}.grad.${n}`, grads[i]!);
    });
  }
  return { o, feeds, expect };
}

async function roundTrip(target: LowerTarget): Promise<void> {
  const { o, feeds, expect } = allCases();
  const lowered = lowerToOnnx(o.graph, { target });
  const program = await OrtProgram.create(lowered, { ep: target, disableCpuFallback: target !== "cpu" });
  try {
    const out = await program.run(feeds);
    const names = [...expect.keys()];
    const ref = refEval(o.graph, names.map((n) => expect.get(n)!));
    names.forEach((name, i) => {
      const got = out[name].data as Float32Array, want = ref[i].data;
      assert.deepEqual(out[name].dims.map(Number), ref[i].shape, `${name}: shape`);
      const scale = Math.max(1e-3, ...Array.from(want, Math.abs));
      const err = Math.max(0, ...Array.from(want, (v, j) => Math.abs(v - got[j])));
      assert.ok(err <= 2e-5 * scale, `${target}: ${name} differs from float64 by ${err} (scale ${scale})`);
    });
  } finally {
    await program.release();
  }
}

Deno.test("lowering: every op and gradient on onnxruntime CPU equals the float64 interpreter", async () => {
  await roundTrip("cpu");
});

Deno.test({
  name: "lowering: every op and gradient on the WebGPU provider, no CPU fallback",
  ignore: Deno.env.get("MIMBENCH_SKIP_WEBGPU") === "1",
  fn: async () => {
    try {
      await roundTrip("webgpu");
    } catch (e) {
      const msg = (e as Error).message;
      if (/Failed to get a WebGPU adapter|no available backend/i.test(msg)) {
        console.log(`skipped: no WebGPU adapter here (${msg.split("\n")[0]}); install mesa-vulkan-drivers`);
        return;
      }
      throw e;
    }
  },
});

Deno.test("lowering: products with a matrix right operand are single Gemms, no Transpose", () => {
  const o = new GraphOps();
  const x = o.input("x", { shape: [2, 3, 4], data: new Float32Array(24) });
  const w = o.input("w", { shape: [5, 4], data: new Float32Array(20) });
  o.output("y", o.matMul(x, w, false, true));
  const text = new TextDecoder().decode(lowerToOnnx(o.graph).bytes);
  assert.ok(text.includes("Gemm") && !text.includes("Transpose"));
});

Deno.test("OrtProgram: feeds are checked by name, dtype and shape before running", async () => {
  const o = new GraphOps();
  const x = o.input("x", { shape: [2, 3], data: new Float32Array(6) });
  o.output("y", o.exp(x));
  const p = await OrtProgram.create(lowerToOnnx(o.graph));
  try {
    await assert.rejects(p.run({}), /no feed for input\(s\) 'x'/);
    await assert.rejects(
      p.run({ x: { shape: [3, 2], data: new Float32Array(6) } }),
      /feed 'x' is float32\[3,2\], the graph expects float32\[2,3\]/,
    );
    await assert.rejects(
      p.run({ x: { shape: [2, 3], data: new Float32Array(6) }, z: { shape: [1], data: new Float32Array(1) } }),
      /'z' is not an input of the graph/,
    );
    const out = await p.run({ x: { shape: [2, 3], data: new Float32Array([0, 1, 2, 3, 4, 5]) } });
    assert.ok(Math.abs((out.y.data as Float32Array)[1] - Math.E) < 1e-6);
  } finally {
    await p.release();
  }
});

Deno.test("OrtProgram: onnxruntime's runtime errors name the recorded node", async () => {
  const o = new GraphOps();
  const x = o.input("x", { shape: [4, 2], data: new Float32Array(8) });
  const i = o.input("i", { shape: [2], data: new Int32Array([0, 1]) });
  o.output("y", o.gather(x, i));
  const p = await OrtProgram.create(lowerToOnnx(o.graph));
  try {
    await assert.rejects(
      p.run({ x: { shape: [4, 2], data: new Float32Array(8) }, i: { shape: [2], data: new Int32Array([0, 9]) } }),
      /recorded node gather_2: gather\(float32\[4,2\], int32\[2\]\) -> float32\[2,2\]/,
    );
  } finally {
    await p.release();
  }
});

Deno.test({
  name: "OrtProgram on WebGPU: gpu-buffer outputs fed back as inputs stay on the device and match the CPU",
  ignore: Deno.env.get("MIMBENCH_SKIP_WEBGPU") === "1",
  fn: async () => {
    // w <- w - 0.1 * d/dw mean((x w)^2): the state never leaves the device; only `loss` is read.
    const o = new GraphOps();
    const x = o.input("x", { shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)) });
    const w = o.input("w", { shape: [3, 2], data: new Float32Array([0.5, -0.2, 0.1, 0.3, -0.4, 0.2]) });
    const loss = o.mean(o.square(o.matMul(x, w)), [0, 1]);
    const [g] = (await import("./autodiff.ts")).gradients(o, loss, [w]);
    o.output("w_new", o.sub(w, o.mul(g!, 0.1)));
    o.output("loss", loss);
    const feedsOf = (wv: Feed): Record<string, Feed> => ({ x: o.graph.inputs.get("x")!.host!, w: wv });
    let gpu: OrtProgram;
    try {
      gpu = await OrtProgram.create(lowerToOnnx(o.graph, { target: "webgpu" }), {
        ep: "webgpu",
        disableCpuFallback: true,
        outputLocations: { w_new: "gpu-buffer" },
      });
    } catch (e) {
      if (/WebGPU adapter/i.test((e as Error).message)) return console.log("skipped: no WebGPU adapter here");
      throw e;
    }
    const cpu = await OrtProgram.create(lowerToOnnx(o.graph));
    try {
      let wg: Feed = o.graph.inputs.get("w")!.host!, wc: Feed = wg;
      for (let i = 0; i < 3; i++) {
        const rg: Record<string, ort.Tensor> = await gpu.run(feedsOf(wg));
        const rc: Record<string, ort.Tensor> = await cpu.run(feedsOf(wc));
        assert.equal(rg.w_new.location, "gpu-buffer");
        assert.ok(Math.abs((rg.loss.data as Float32Array)[0] - (rc.loss.data as Float32Array)[0]) < 1e-6, `step ${i}`);
        if (i > 0) (wg as ort.Tensor).dispose();
        wg = rg.w_new;
        wc = rc.w_new;
      }
      (wg as ort.Tensor).dispose();
    } finally {
      await gpu.release();
      await cpu.release();
    }
  },
});
