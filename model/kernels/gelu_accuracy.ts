/**
 * Accuracy of erf, exact GELU and its gradient in float32, per engine, against float64 (erf64.ts).
 *
 * `deno run -A model/kernels/gelu_accuracy.ts --backend cpu|wasm|blas|webgpu`   (tfjs)
 * `deno run -A model/kernels/gelu_accuracy.ts --ort cpu|webgpu`                 (onnxruntime-node)
 *
 * Inputs: 400,001 float32 points evenly over [-10, 10]; each result is compared with the float64 value
 * at the same float32 input. Printed per implementation: max |error| over the grid, and the max relative
 * error over x in [-5, -1.5] (the GELU tail, where `1 + erf(x / sqrt 2)` is small, so an erf accurate
 * in absolute terms can still be inaccurate there; gelu' changes sign near -0.75, hence -1.5). The
 * first row of each table is the floor: the float64 value rounded to float32. Measured numbers are in
 * model/kernels/README.md and model/ops/GELU_PRECISION.md. Takes a few seconds; nothing is written.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { initBackend, parseBackend, tf } from "../engine.ts";
import { fusedGelu, GELU_KERNEL, geluComposite as gelu } from "./fused_gelu.ts";
import { erf64, gelu64, geluGrad64 } from "./erf64.ts";
import { ProtoWriter, writeTensor, writeValueInfo } from "../onnx/protobuf.ts";

const N = 400_001;
const TAIL: [number, number] = [-5, -1.5];

export interface Accuracy {
  maxAbs: number;
  maxRelTail: number;
}

/** Max |got - ref(x)| over all x, and max relative error over x in the tail [-5, -1.5]. */
export function accuracy(xs: Float32Array, got: ArrayLike<number>, ref: (x: number) => number): Accuracy {
  let maxAbs = 0, maxRelTail = 0;
  for (let i = 0; i < xs.length; i++) {
    const r = ref(xs[i]), e = Math.abs(got[i] - r);
    if (Number.isNaN(e)) return { maxAbs: NaN, maxRelTail: NaN };
    if (e > maxAbs) maxAbs = e;
    if (xs[i] >= TAIL[0] && xs[i] <= TAIL[1] && e / Math.abs(r) > maxRelTail) maxRelTail = e / Math.abs(r);
  }
  return { maxAbs, maxRelTail };
}

/** `n` float32 points evenly over [-10, 10]. */
export function grid(n = N): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => -10 + (20 * i) / (n - 1));
}

type Results = Record<string, Float32Array | Float64Array>;

/** The float64 references: erf(x / sqrt 2) (as GELU uses it), gelu, gelu'. */
export const FUNCS = { erf: (x: number) => erf64(x * Math.SQRT1_2), gelu: gelu64, "gelu'": geluGrad64 } as const;
export type Func = keyof typeof FUNCS;

function report(title: string, xs: Float32Array, rows: [string, Func, ArrayLike<number>][]): void {
  console.log(`${title}: max |err| over [-10, 10]; max rel err over [${TAIL}]`);
  for (const f of Object.keys(FUNCS) as Func[]) {
    const floor = Float32Array.from(xs, FUNCS[f]);
    for (
      const [label, fn, got] of [
        ["float64 rounded to float32", f, floor] as const,
        ...rows.filter((r) => r[1] === f),
      ]
    ) {
      const a = accuracy(xs, got, FUNCS[fn]);
      console.log(
        `  ${fn.padEnd(6)} ${label.padEnd(44)} ${a.maxAbs.toExponential(2)}  ${a.maxRelTail.toExponential(2)}`,
      );
    }
  }
}

/** Results of the current tfjs backend on `xs`: `[label, function, values]` rows. */
export async function tfjsRows(xs: Float32Array): Promise<[string, Func, ArrayLike<number>][]> {
  const backend = tf.getBackend();
  const x = tf.tensor1d(xs);
  const read = async (t: tf.Tensor) => {
    const v = (await t.data()) as Float32Array; // data(), not dataSync(): webgpu reads back asynchronously
    t.dispose();
    return v;
  };
  const run = (f: (t: tf.Tensor) => tf.Tensor) => read(tf.tidy(() => f(x)));
  const grad = (f: (t: tf.Tensor) => tf.Tensor) => read(tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(f(t)))(x)));
  const rows: [string, Func, ArrayLike<number>][] = [
    [`tfjs ${backend}: Erf(x / sqrt 2)`, "erf", await run((t) => tf.erf(tf.mul(t, Math.SQRT1_2)))],
    [`tfjs ${backend}: composite gelu (TfOps off blas)`, "gelu", await run(gelu)],
    [`tfjs ${backend}: composite gelu, autodiff`, "gelu'", await grad(gelu)],
  ];
  if (tf.getKernel(GELU_KERNEL, backend)) {
    rows.push([`tfjs ${backend}: fusedGelu`, "gelu", await run(fusedGelu)]);
    rows.push([`tfjs ${backend}: fusedGelu gradient`, "gelu'", await grad(fusedGelu)]);
  }
  x.dispose();
  return rows;
}

// ---- onnxruntime: tiny single-purpose graphs written directly (the ops lowering emits whole graphs).

interface Node {
  op: string;
  inputs: string[];
  output: string;
  domain?: string;
}

function model(nodes: Node[], consts: Record<string, number>, outputs: string[]): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, 8); // IR version 8, opset 17 (as model/ops/onnx_lower.ts)
  w.string(2, "gelu_accuracy");
  w.message(7, (g) => {
    nodes.forEach((n, i) =>
      g.message(1, (m) => {
        for (const inp of n.inputs) m.string(1, inp);
        m.string(2, n.output);
        m.string(3, `n${i}`);
        m.string(4, n.op);
        if (n.domain) m.string(7, n.domain);
      })
    );
    g.string(2, "g");
    for (const [name, v] of Object.entries(consts)) {
      g.message(5, (m) => writeTensor(m, { name, dtype: "float32", dims: [], data: new Float32Array([v]) }));
    }
    g.message(11, (m) => writeValueInfo(m, "x", "float32", [N]));
    for (const o of outputs) g.message(12, (m) => writeValueInfo(m, o, "float32", [N]));
  });
  w.message(8, (op) => {
    op.string(1, "");
    op.int(2, 17);
  });
  w.message(8, (op) => {
    op.string(1, "com.microsoft");
    op.int(2, 1);
  });
  return w.finish();
}

const CONSTS = { half: 0.5, one: 1, rsqrt2: Math.SQRT1_2, neghalf: -0.5, rsqrt2pi: 1 / Math.sqrt(2 * Math.PI) };

/** `0.5 x (1 + erf(x / sqrt 2))` and `0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)` as plain ONNX ops. */
const COMPOSED: Node[] = [
  { op: "Mul", inputs: ["x", "rsqrt2"], output: "xs" },
  { op: "Erf", inputs: ["xs"], output: "erf" },
  { op: "Add", inputs: ["erf", "one"], output: "e1" },
  { op: "Mul", inputs: ["x", "half"], output: "xh" },
  { op: "Mul", inputs: ["xh", "e1"], output: "gelu" },
  { op: "Mul", inputs: ["e1", "half"], output: "cdf" },
  { op: "Mul", inputs: ["x", "x"], output: "x2" },
  { op: "Mul", inputs: ["x2", "neghalf"], output: "a" },
  { op: "Exp", inputs: ["a"], output: "ea" },
  { op: "Mul", inputs: ["ea", "rsqrt2pi"], output: "pdf" },
  { op: "Mul", inputs: ["x", "pdf"], output: "xpdf" },
  { op: "Add", inputs: ["cdf", "xpdf"], output: "dgelu" },
];

async function ortRun(ep: string, bytes: Uint8Array, opt: "disabled" | "all", xs: Float32Array) {
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: [ep],
    graphOptimizationLevel: opt,
    intraOpNumThreads: 1,
  });
  try {
    const out = await session.run({ x: new ort.Tensor("float32", xs, [N]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, (v.data as Float32Array).slice()])) as Results;
  } finally {
    await session.release();
  }
}

async function ortRows(ep: string, xs: Float32Array): Promise<[string, Func, ArrayLike<number>][]> {
  const rows: [string, Func, ArrayLike<number>][] = [];
  for (const opt of ["disabled", "all"] as const) {
    const r = await ortRun(ep, model(COMPOSED, CONSTS, ["erf", "gelu", "dgelu"]), opt, xs);
    rows.push([`ort ${ep} (${opt}): Erf(x / sqrt 2)`, "erf", r.erf]);
    rows.push([`ort ${ep} (${opt}): 0.5 x (1 + Erf(x / sqrt 2))`, "gelu", r.gelu]);
    rows.push([`ort ${ep} (${opt}): Phi + x phi, Phi by Erf`, "gelu'", r.dgelu]);
  }
  try {
    const r = await ortRun(
      ep,
      model([{ op: "Gelu", inputs: ["x"], output: "gelu", domain: "com.microsoft" }], {}, ["gelu"]),
      "disabled",
      xs,
    );
    rows.push([`ort ${ep}: com.microsoft Gelu`, "gelu", r.gelu]);
  } catch (e) {
    console.log(`ort ${ep}: com.microsoft Gelu unavailable: ${(e as Error).message.split("\n")[0]}`);
  }
  return rows;
}

if (import.meta.main) {
  const { values } = parseArgs({ args: Deno.args, options: { backend: { type: "string" }, ort: { type: "string" } } });
  const xs = grid();
  if (values.ort) {
    if (!["cpu", "webgpu"].includes(values.ort)) throw new Error(`--ort: expected cpu or webgpu, got '${values.ort}'`);
    report(`onnxruntime-node ${ort.env.versions.common}, ${values.ort} EP`, xs, await ortRows(values.ort, xs));
  } else {
    await initBackend(parseBackend(values.backend));
    report(`tfjs ${tf.getBackend()}`, xs, await tfjsRows(xs));
  }
}
