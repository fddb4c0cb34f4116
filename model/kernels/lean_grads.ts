/**
 * `leanVariableGrads`: `tf.variableGrads` with a backward pass that frees memory as it goes.
 *
 * tfjs's `Engine.gradients` keeps every tensor saved for the backward pass until the whole backward
 * pass ends, and every intermediate gradient too (they live in its `backward` tidy scope), so the
 * peak is about twice the saved activations: the reference ViT did not fit the 4 GiB wasm heap at
 * batch 128. This is the same algorithm (record the forward on the tape, keep the nodes between the
 * variables and the loss, walk them backward), with two releases after each node's gradient ran:
 * the node's saved tensors (nothing else uses them) and the gradients of its outputs (each tensor is
 * the output of one node, so they are fully consumed). Values are bit-identical to `tf.variableGrads`.
 *
 * It drives tfjs-core 4.22's engine internals (`startTape`, `endTape`, `state.activeTape`, tape nodes'
 * `gradient`/`saved`); `assertEngineShape` checks they are there and errors name what changed.
 * Nested (higher-order) gradients fall back to `tf.variableGrads`.
 *
 * @module
 */
import { tf } from "../engine.ts";

/** The slice of tfjs-core's tape node used here. */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

/** The slice of tfjs-core's `Engine` used here. */
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T>(name: string, f: () => T): T;
}

function engineInternals(): EngineInternals {
  const e = tf.engine() as unknown as Partial<EngineInternals>;
  for (const k of ["startTape", "endTape", "scopedRun", "tidy"] as const) {
    if (typeof e[k] !== "function") {
      throw new Error(
        `leanVariableGrads: tfjs engine has no '${k}' (tfjs-core changed; expected 4.22); use tf.variableGrads`,
      );
    }
  }
  if (!e.state || typeof e.state.gradientDepth !== "number") {
    throw new Error("leanVariableGrads: tfjs engine has no state.gradientDepth (tfjs-core changed; expected 4.22)");
  }
  return e as EngineInternals;
}

/** Nodes on a path from `xs` to `y`, inputs pruned to those depending on `xs` (tfjs's getFilteredNodesXToY). */
export function filterTape(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  return tape.filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id)).map((n) => ({
    ...n,
    inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))),
  }));
}

function backprop(engine: EngineInternals, nodes: TapeNode[], grads: Map<number, tf.Tensor>): void {
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!node.gradient) throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    const inputGrads = node.gradient(node.outputs.map((o) => grads.get(o.id) ?? null));
    const produced = new Set<tf.Tensor>();
    for (const [name, x] of Object.entries(node.inputs)) {
      if (!(name in inputGrads)) {
        throw new Error(
          `Cannot backprop through input ${name} of ${node.kernelName}; gradients: ${Object.keys(inputGrads)}`,
        );
      }
      const dx = engine.tidy(`grad ${node.kernelName}`, () => inputGrads[name]());
      if (dx.dtype !== "float32" || dx.shape.some((d, j) => d !== x.shape[j]) || dx.rank !== x.rank) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}: input '${name}' has shape [${x.shape}], ` +
            `its gradient ${dx.dtype} [${dx.shape}] (expected float32 of the same shape)`,
        );
      }
      const cur = grads.get(x.id);
      const next = cur ? tf.add(cur, dx) : dx;
      if (cur) {
        cur.dispose();
        dx.dispose();
      }
      grads.set(x.id, next);
      produced.add(next);
    }
    for (const o of node.outputs) {
      const g = grads.get(o.id);
      grads.delete(o.id);
      // A gradient function may hand dy through unchanged: then it lives on as an input's gradient.
      if (g && !produced.has(g)) g.dispose();
    }
    for (const t of node.saved ?? []) t.dispose();
  }
}

/** Gradients of scalar `f()` with respect to `xs` (null where unconnected); the caller owns all. */
export function leanGradients(f: () => tf.Scalar, xs: tf.Tensor[]): { value: tf.Scalar; grads: (tf.Tensor | null)[] } {
  const engine = engineInternals();
  if (engine.state.gradientDepth > 0) throw new Error("leanGradients: nested gradients are not supported");
  const y = engine.scopedRun(() => engine.startTape(), () => engine.endTape(), () => engine.tidy("forward", f));
  const tape = engine.state.activeTape;
  if (!Array.isArray(tape)) throw new Error("leanGradients: tfjs recorded no tape (tfjs-core changed; expected 4.22)");
  const nodes = filterTape(tape, xs, y);
  return engine.tidy("backward", () => {
    const acc = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
    try {
      backprop(engine, nodes, acc);
    } finally {
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = null;
    }
    return { value: y, grads: xs.map((x) => acc.get(x.id) ?? null) };
  });
}

/**
 * Drop-in for `tf.variableGrads(f, varList)`: same values and result shape (gradients by variable
 * name, non-trainable variables skipped), with about half the peak memory.
 */
export function leanVariableGrads(
  f: () => tf.Scalar,
  varList: tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (engineInternals().state.gradientDepth > 0) return tf.variableGrads(f, varList);
  const vars = varList.filter((v) => v.trainable);
  if (vars.length === 0) throw new Error(`leanVariableGrads: none of the ${varList.length} variables is trainable`);
  const { value, grads } = leanGradients(f, vars);
  if (value.rank !== 0) throw new Error(`leanVariableGrads: f must return a scalar, got rank ${value.rank}`);
  if (grads.every((g) => g === null)) {
    throw new Error("leanVariableGrads: no variable is connected to the loss; use the variables inside f");
  }
  const named: tf.NamedTensorMap = {};
  vars.forEach((v, i) => {
    const g = grads[i];
    if (g) named[v.name] = g;
  });
  return { value, grads: named };
}
