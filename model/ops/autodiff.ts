/**
 * Reverse-mode automatic differentiation over a recorded graph.
 *
 * `gradients(o, loss, wrt)` appends to `o.graph` the nodes that compute d loss / d w for each
 * `w` in `wrt`, using one vector-Jacobian rule per node kind (vjp_rules.ts), and returns them as
 * values of the same graph: forward, backward (and then the optimizer) are one graph.
 *
 * - Only nodes on a path from some `w` to `loss` are differentiated; gradients stop at
 *   `stopGradient`, inputs, constants and integer values (torch: `.detach()`, `requires_grad`).
 * - A value used several times receives the sum of its consumers' gradients.
 * - A `w` with no path to `loss` gets `null` (torch leaves its `.grad` as `None`, and AdamW
 *   then skips that parameter).
 * - An op without a rule on such a path is reported in one line naming the op and the node,
 *   before a single node is appended.
 *
 * @module
 */
import type { Tensor } from "./ops.ts";
import type { GraphOps } from "./graph_ops.ts";
import type { Node, Value } from "./graph_ir.ts";
import { VJP_RULES, ZERO_GRADIENT } from "./vjp_rules.ts";

/** The nodes to differentiate, in recording order: those between `wrt` and `loss`. */
export function differentiableNodes(nodes: readonly Node[], loss: Value, wrt: readonly Value[]): Node[] {
  const live = new Set<number>(wrt.map((w) => w.id)); // values that depend on some w
  const onPath: Node[] = [];
  for (const n of nodes) {
    if (ZERO_GRADIENT.has(n.op) || !n.inputs.some((i) => live.has(i.id))) continue;
    for (const out of n.outputs) if (out.dtype === "float32") live.add(out.id);
    onPath.push(n);
  }
  const reaches = new Set<number>([loss.id]); // values the loss depends on
  const kept: Node[] = [];
  for (let i = onPath.length - 1; i >= 0; i--) {
    const n = onPath[i];
    if (!n.outputs.some((o) => reaches.has(o.id))) continue;
    kept.push(n);
    for (const inp of n.inputs) if (live.has(inp.id)) reaches.add(inp.id);
  }
  return kept.reverse();
}

/** Append the gradient of the scalar `loss` with respect to each of `wrt`; `null` where no path exists. */
export function gradients(o: GraphOps, loss: Tensor, wrt: Tensor[]): (Tensor | null)[] {
  const lossV = o.value(loss, "gradients");
  const ws = wrt.map((w) => o.value(w, "gradients"));
  if (lossV.size !== 1 || lossV.dtype !== "float32") {
    throw new Error(`gradients: the loss must be a float32 scalar, got ${lossV}`);
  }
  for (const w of ws) {
    if (w.dtype !== "float32") throw new Error(`gradients: cannot differentiate with respect to ${w} (${w.node.name})`);
  }
  const nodes = differentiableNodes(o.graph.nodes.slice(), lossV, ws);
  for (const n of nodes) {
    if (!VJP_RULES[n.op]) {
      const shapes = n.inputs.map((i) => `[${i.shape}]`).join(", ");
      throw new Error(
        `autodiff: op '${n.op}' has no gradient rule, but node '${n.name}' (inputs ${shapes}) lies on a path ` +
          `from the parameters to the loss; wrap its input in stopGradient or add a rule in model/ops/vjp_rules.ts`,
      );
    }
  }
  const needsGrad = new Set<number>(ws.map((w) => w.id));
  for (const n of nodes) for (const out of n.outputs) needsGrad.add(out.id);

  const grads = new Map<number, Tensor>();
  const accumulate = (v: Value, g: Tensor) => {
    if (g.shape.join() !== v.shape.join()) {
      throw new Error(`autodiff: gradient [${g.shape}] for ${v} of '${v.node.name}' (a rule returned the wrong shape)`);
    }
    const prev = grads.get(v.id);
    grads.set(v.id, prev ? o.add(prev, g) : g);
  };
  accumulate(lossV, o.fill([...lossV.shape], 1));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const dys = n.outputs.map((out) => grads.get(out.id) ?? null);
    if (dys.every((d) => d === null)) continue;
    const wants = n.inputs.map((inp) => needsGrad.has(inp.id));
    const dxs = VJP_RULES[n.op]!(o, n, dys, wants);
    n.inputs.forEach((inp, j) => {
      const g = dxs[j];
      if (g && wants[j]) accumulate(inp, g);
    });
  }
  return ws.map((w) => grads.get(w.id) ?? null);
}
