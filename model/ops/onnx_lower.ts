/**
 * `lowerToOnnx`: a recorded graph (graph_ir.ts) -> ONNX ModelProto bytes for onnxruntime.
 *
 * Opset 17 (with IR version 8): the oldest that has everything the step graph needs, chosen
 * for the widest execution-provider coverage: `ScatterND` with `reduction="add"` (the gradient
 * of `gather`; reductions arrived in 16) and `LayerNormalization` (17), while `ReduceMean`,
 * `ReduceMax` and `ReduceSumSquare` still take their axes as an attribute. onnxruntime's
 * `com.microsoft` domain adds `Gelu` and `SimplifiedLayerNormalization` (RMSNorm with its
 * inverse RMS as a second output), both implemented by the CPU and WebGPU providers.
 *
 * Choices made for speed on onnxruntime's CPU provider (MLAS) and its WebGPU provider:
 * - a product with a rank-2 right operand (every linear layer, and their weight gradients)
 *   becomes one `Gemm` on the folded leading axes with native `transA`/`transB`: no Transpose;
 *   a row bias added to it alone becomes the Gemm's `C` (no separate Add pass);
 * - other transposed products are `Transpose` + `MatMul`, which the CPU provider fuses into
 *   `FusedMatMul` at graph optimisation level "all";
 * - `layerNorm` is one `LayerNormalization` whose mean and inverse-std outputs the backward
 *   reuses; `rmsNorm` likewise with `SimplifiedLayerNormalization`;
 * - only nodes that some requested output needs are written; outputs are named where they are
 *   produced (no Identity copies) unless an output is an input or shared. Internal value names
 *   start with `%` (`%matMul_12`), so they never meet the caller's input and output names.
 * The `webgpu` target works around what that provider lacks or gets wrong (`Sign`, `LogSoftmax`,
 * int64 `Cast`, RMSNorm's inverse-RMS output; onnx_emit.ts), checked with CPU fallback disabled
 * in onnx_lower_test.ts, so issue 13 needs no new lowering.
 *
 * @module
 */
import { type OnnxDtype, type OnnxIo, writeModel } from "../onnx/protobuf.ts";
import type { Graph, Node, Value } from "./graph_ir.ts";
import { Emitter, isGemm, lowerMatMul, lowerNode, type LowerTarget } from "./onnx_emit.ts";

export type { LowerTarget };

/** Opset 17 of the ONNX domain (see the header); com.microsoft opset 1. */
export const LOWER_OPSET = 17;
export const LOWER_IR_VERSION = 8;

export interface LowerOptions {
  /** Execution provider the graph is for (default `cpu`). */
  target?: LowerTarget;
  /** Outputs to write (default: every output of the graph). */
  outputs?: ReadonlyMap<string, Value>;
  graphName?: string;
}

export interface LoweredGraph {
  bytes: Uint8Array;
  /** Graph inputs the outputs depend on (feed exactly these). */
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  /** ONNX node count (after expansion of composites). */
  nodeCount: number;
  /** Recorded node name -> `op(input shapes) -> output shapes`, for error messages. */
  describe: Map<string, string>;
}

function dtypeOf(v: Value): OnnxDtype {
  return v.dtype;
}

/** Lower the part of `graph` that `opts.outputs` (default: all graph outputs) needs. */
export function lowerToOnnx(graph: Graph, opts: LowerOptions = {}): LoweredGraph {
  const target = opts.target ?? "cpu";
  const outputs = opts.outputs ?? graph.outputs;
  if (outputs.size === 0) throw new Error("lowerToOnnx: no outputs requested");
  const e = new Emitter(target);

  // Which nodes are needed, and which of their outputs are read (by nodes or as graph outputs).
  const needed = new Set<number>(), used = new Set<number>();
  const stack = [...outputs.values()].map((v) => v.node);
  for (const v of outputs.values()) used.add(v.id);
  while (stack.length) {
    const n = stack.pop()!;
    if (needed.has(n.id)) continue;
    needed.add(n.id);
    for (const i of n.inputs) {
      used.add(i.id);
      stack.push(i.node);
    }
  }
  // `add(matMul(x, W), bias)` with a row bias -> one Gemm with C (the linear layers' forward).
  const uses = new Map<number, number>();
  for (const n of graph.nodes) {
    if (needed.has(n.id)) { for (const i of n.inputs) uses.set(i.id, (uses.get(i.id) ?? 0) + 1); }
  }
  for (const v of outputs.values()) uses.set(v.id, (uses.get(v.id) ?? 0) + 2);
  const biasOf = new Map<number, { mm: Node & { op: "matMul" }; bias: Value }>();
  const folded = new Set<number>();
  for (const n of graph.nodes) {
    if (!needed.has(n.id) || n.op !== "add") continue;
    for (const side of [0, 1]) {
      const prod = n.inputs[side], bias = n.inputs[1 - side], mm = prod.node;
      const cols = prod.shape[prod.shape.length - 1];
      const rowBias = bias.size === cols && bias.shape.length <= 2 && bias.shape[bias.shape.length - 1] === cols;
      if (isGemm(mm) && uses.get(prod.id) === 1 && rowBias && !folded.has(mm.id)) {
        biasOf.set(n.id, { mm, bias });
        folded.add(mm.id);
        break;
      }
    }
  }

  // Output names claimed by the producing node directly, when that is unambiguous.
  const claimed = new Map<number, string>();
  for (const [name, v] of outputs) {
    if (!claimed.has(v.id) && v.node.op !== "input" && v.node.op !== "constant") claimed.set(v.id, name);
  }

  const inputs: OnnxIo[] = [];
  const describe = new Map<string, string>();
  for (const n of graph.nodes) {
    if (!needed.has(n.id)) continue;
    describe.set(n.name, `${n.op}(${n.inputs.join(", ")}) -> ${n.outputs.join(", ")}`);
    if (n.op === "input") {
      e.setName(n.outputs[0], n.attrs.name);
      inputs.push({ name: n.attrs.name, dtype: dtypeOf(n.outputs[0]), dims: n.outputs[0].shape });
      continue;
    }
    if (n.op === "constant") {
      const v = n.outputs[0], name = `%${n.name}`;
      const data = n.attrs.value.data;
      e.inits.push({ name, dtype: dtypeOf(v), dims: v.shape, data: data instanceof Int32Array ? data : data });
      e.setName(v, name);
      continue;
    }
    if (folded.has(n.id)) continue; // written by the add that consumes it
    const outs = n.outputs.map((v, i) =>
      claimed.get(v.id) ?? (used.has(v.id) ? (n.outputs.length === 1 ? `%${n.name}` : `%${n.name}:${i}`) : "")
    );
    const gemm = biasOf.get(n.id);
    if (gemm) lowerMatMul(e, gemm.mm, gemm.mm.inputs.map((v) => e.name(v)), outs[0], e.name(gemm.bias));
    else lowerNode(e, n, outs);
    n.outputs.forEach((v, i) => outs[i] && e.setName(v, outs[i]));
  }

  const ios: OnnxIo[] = [];
  for (const [name, v] of outputs) {
    if (claimed.get(v.id) !== name) e.op("Identity", [e.name(v)], `output_${name}`, {}, name);
    ios.push({ name, dtype: dtypeOf(v), dims: v.shape });
  }
  const bytes = writeModel({
    irVersion: LOWER_IR_VERSION,
    opsets: { "": LOWER_OPSET, "com.microsoft": 1 },
    graphName: opts.graphName ?? "mimbench_graph",
    nodes: e.nodes,
    initializers: e.inits,
    inputs,
    outputs: ios,
  });
  return { bytes, inputs, outputs: ios, nodeCount: e.nodes.length, describe };
}
