/**
 * The `webgpu` backend agrees with `cpu` on forward values and gradients of the ops the
 * models use. Skipped, with the reason printed, where Deno finds no WebGPU adapter.
 *
 * Tolerances (both backends compute in float32; only the order of operations differs):
 * - data movement (transpose, gather, scatterND without duplicates): exact, bit for bit.
 * - sums of products (matMul, reductions, their gradients, scatterND with duplicates): for a
 *   sum of K products in any order, |fl(s) - s| <= gamma_K * sum|terms|, gamma_K = K u / (1 - K u),
 *   u = 2^-24 (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.5), so two
 *   orders differ by at most 2 gamma_K * (|A||B|)_i, the same case evaluated on |inputs|.
 *   This bound is rigorous yet still fails a GPU that rounds operands to tf32 or fp16.
 * - everything else (exp, log, erf, sin/cos, rsqrt, softmax): 1e-5 * max(1, |cpu|). WGSL lets
 *   exp be off by 3 + 2|x| ulp and log and inverseSqrt by 3 and 2 ulp (1 ulp = 6e-8 relative);
 *   erf is A&S 7.1.26 on both backends (one exp and a degree-5 polynomial), and the longest sum
 *   here (softmax over 64) adds 64 u = 4e-6. The parity tolerance, 1e-4, is 10x looser.
 *
 * Expected runtime: ~10 s on 2 cores with lavapipe (Mesa's software Vulkan).
 *
 * @module
 */
import assert from "node:assert/strict";
import { initBackend, swapLastAxes, tf } from "../engine.ts";
import { Rng } from "../rng.ts";
import { probeWebGpu, READ_SYNC_MESSAGE } from "./loader.ts";

/** How a case's outputs may differ between backends (see the header). */
type Agreement = { kind: "exact" } | { kind: "sum"; terms: number } | { kind: "elementwise" };

interface Case {
  name: string;
  shapes: number[][];
  f: (...xs: tf.Tensor[]) => tf.Tensor;
  agree: Agreement;
  /** Also compare gradients of sum(f(x) * w) (w fixed random): the training path. */
  grads?: boolean;
  /** Input scale (default 1: standard normal). */
  scale?: number;
}

const U = 2 ** -24;
const ELEMENTWISE_TOL = 1e-5;
const gamma = (k: number) => (k * U) / (1 - k * U);

const int = (xs: number[]) => tf.tensor1d(xs, "int32");

const CASES: Case[] = [
  // K = 768: the ViT-B width, the longest reduction in the reference models.
  { name: "matMul 2-D K=768", shapes: [[48, 768], [768, 40]], f: (a, b) => tf.matMul(a, b), agree: sumOf(768) },
  {
    name: "matMul 4-D attention (q k^T)",
    shapes: [[2, 3, 17, 32], [2, 3, 17, 32]],
    f: (q, k) => tf.matMul(q, swapLastAxes(k)),
    agree: sumOf(32),
    grads: true,
  },
  {
    name: "matMul broadcast",
    shapes: [[2, 17, 64], [64, 48]],
    f: (a, b) => tf.matMul(a, b),
    agree: sumOf(64),
    grads: true,
  },
  { name: "transpose 4-D heads", shapes: [[2, 17, 3, 16]], f: (a) => tf.transpose(a, [0, 2, 1, 3]), agree: exact() },
  { name: "swapLastAxes 5-D", shapes: [[2, 2, 3, 4, 5]], f: (a) => swapLastAxes(a), agree: exact() },
  { name: "sum over 4096", shapes: [[3, 4096]], f: (a) => tf.sum(a, 1), agree: sumOf(4096), grads: true },
  { name: "mean over axis 0", shapes: [[257, 24]], f: (a) => tf.mean(a, 0), agree: sumOf(257) },
  { name: "max", shapes: [[5, 300]], f: (a) => tf.max(a, 1), agree: exact() },
  {
    name: "softmax over 64",
    shapes: [[2, 3, 17, 64]],
    f: (a) => tf.softmax(tf.mul(a, 3), -1),
    agree: ew(),
    grads: true,
  },
  { name: "logSoftmax", shapes: [[6, 40]], f: (a) => tf.logSoftmax(a, -1), agree: ew(), grads: true },
  { name: "erf", shapes: [[4000]], f: (a) => tf.erf(a), agree: ew(), grads: true, scale: 2 },
  {
    name: "gelu (erf)",
    shapes: [[64, 48]],
    f: (a) => tf.mul(tf.mul(a, 0.5), tf.add(1, tf.erf(tf.mul(a, Math.SQRT1_2)))),
    agree: ew(),
    grads: true,
  },
  { name: "exp", shapes: [[4000]], f: (a) => tf.exp(a), agree: ew(), scale: 4 },
  { name: "log", shapes: [[4000]], f: (a) => tf.log(tf.add(tf.abs(a), 1e-3)), agree: ew(), scale: 10 },
  { name: "sin cos, |x| <= ~4 pi", shapes: [[4000]], f: (a) => tf.add(tf.sin(a), tf.cos(a)), agree: ew(), scale: 4 },
  // RoPE-style angles: positions up to ~64 times frequency 1.
  { name: "sin cos, |x| <= ~64", shapes: [[4000]], f: (a) => tf.mul(tf.sin(a), tf.cos(a)), agree: ew(), scale: 20 },
  {
    name: "rsqrt (rms norm)",
    shapes: [[33, 64]],
    f: (a) => tf.mul(a, tf.rsqrt(tf.add(tf.mean(tf.square(a), -1, true), 1e-6))),
    agree: ew(),
    grads: true,
  },
  { name: "gather axis 0", shapes: [[9, 16]], f: (a) => tf.gather(a, int([8, 0, 3, 3, 5]), 0), agree: exact() },
  {
    // The engine's GatherV2 gradient is a scatterND; index 3 repeats, so the gradient sums 2 terms.
    name: "gather axis 1 (+ scatterND gradient)",
    shapes: [[2, 7, 16]],
    f: (a) => tf.gather(a, int([1, 4, 4, 0, 6]), 1),
    agree: sumOf(2),
    grads: true,
  },
  {
    name: "scatterND, duplicate rows",
    shapes: [[6, 16]],
    f: (v) => tf.scatterND(tf.tensor2d([[2], [0], [2], [5], [2], [1]], [6, 1], "int32"), v, [7, 16]),
    agree: sumOf(3),
  },
];

function exact(): Agreement {
  return { kind: "exact" };
}
function sumOf(terms: number): Agreement {
  return { kind: "sum", terms };
}
function ew(): Agreement {
  return { kind: "elementwise" };
}

function hostInputs(c: Case, seed: number): Float32Array[] {
  const rng = Rng.from(seed, "webgpu_ops_test", c.name);
  return c.shapes.map((s) => rng.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1)), 0, c.scale ?? 1));
}

/** Forward value (and gradients) on the current backend; `abs` evaluates on |x| and |w|. */
async function evaluate(c: Case, seed: number, abs = false): Promise<Float32Array[]> {
  const host = hostInputs(c, seed).map((d) => abs ? d.map(Math.abs) : d);
  const outs = tf.tidy(() => {
    const xs = host.map((d, i) => tf.tensor(d, c.shapes[i]));
    const y = c.f(...xs);
    if (!c.grads) return [y];
    const wHost = Rng.from(seed, "w", c.name).fillNormal(new Float32Array(y.size));
    const w = tf.tensor(abs ? wHost.map(Math.abs) : wHost, y.shape);
    return [y, ...tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(c.f(...a), w)))(xs)];
  });
  const data = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return data;
}

/** Largest |got - ref| / bound over the elements (<= 1 passes); throws naming the first element past it. */
function check(c: Case, part: string, got: Float32Array, ref: Float32Array, mag?: Float32Array): number {
  assert.equal(got.length, ref.length, `${c.name} ${part}: ${got.length} elements vs cpu ${ref.length}`);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const diff = Math.abs(got[i] - ref[i]);
    let bound: number;
    if (c.agree.kind === "exact") bound = 0;
    else if (c.agree.kind === "sum") bound = 2 * gamma(c.agree.terms) * mag![i];
    else bound = ELEMENTWISE_TOL * Math.max(1, Math.abs(ref[i]));
    const ratio = diff === 0 ? 0 : diff / bound;
    assert.ok(
      ratio <= 1,
      `${c.name} ${part}[${i}]: webgpu ${got[i]} vs cpu ${ref[i]} (|diff| ${diff.toExponential(2)} > ` +
        `bound ${bound.toExponential(2)}, agreement ${c.agree.kind})`,
    );
    worst = Math.max(worst, ratio);
  }
  return worst;
}

const probe = await probeWebGpu();
if (!probe.ok) console.log(`SKIP model/webgpu/ops_test.ts: ${probe.reason}`);
else console.log(`webgpu adapter: ${probe.summary.description} (software: ${probe.summary.software})`);

Deno.test({
  name: "webgpu and cpu agree on forward values and gradients of the models' ops",
  ignore: !probe.ok,
  sanitizeResources: false,
  async fn() {
    await initBackend("cpu");
    const ref: Float32Array[][] = [];
    const mag: (Float32Array[] | undefined)[] = [];
    for (const [i, c] of CASES.entries()) {
      ref.push(await evaluate(c, 100 + i));
      mag.push(c.agree.kind === "sum" ? await evaluate(c, 100 + i, true) : undefined);
    }
    await initBackend("webgpu");
    assert.equal(tf.getBackend(), "webgpu");
    // tfjs runs gather, transpose, slice, concat and cast of small host-resident inputs on the
    // CPU (WEBGPU_CPU_FORWARD): off, so that every case here runs its GPU kernel.
    tf.env().set("WEBGPU_CPU_FORWARD", false);
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    for (const [i, c] of CASES.entries()) {
      const got = await evaluate(c, 100 + i);
      const worst = got.map((g, j) => check(c, j === 0 ? "forward" : `grad ${j - 1}`, g, ref[i][j], mag[i]?.[j]));
      lines.push(`  ${Math.max(...worst).toFixed(3).padStart(6)} of bound  ${c.name} (${c.agree.kind})`);
    }
    assert.equal(tf.memory().numTensors, before, "webgpu evaluation leaked tensors");
    console.log(lines.join("\n"));
    tf.env().set("WEBGPU_CPU_FORWARD", true);
    await initBackend("cpu");
  },
});

Deno.test({
  name: "webgpu dataSync of a GPU tensor throws an error that says to await data()",
  ignore: !probe.ok,
  sanitizeResources: false,
  async fn() {
    await initBackend("webgpu");
    const [a, b] = [tf.ones([40, 40]), tf.ones([40, 40])];
    const y = tf.matMul(a, b); // 1600 elements: past tfjs's CPU-forward threshold (1000), so it runs on the GPU
    assert.throws(() => y.dataSync(), { message: READ_SYNC_MESSAGE });
    assert.equal((await y.data())[0], 40);
    tf.dispose([a, b, y]);
    await initBackend("cpu");
  },
});
