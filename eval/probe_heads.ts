/**
 * Probe heads of the CAPI classification eval (capi: eval_classification.py:189-234), in a
 * "grid" layout: G classifiers of the same shape stacked into one tensor so that a whole
 * lr x wd grid runs as one batched op per layer (SPEC 1.10: all classifiers are trained
 * jointly on the same batches).
 *
 * - `LinearClassifier(D, C)`: `x W^T + b`, weight trunc_normal(0.02), bias 0.
 * - `AttnPoolClassifier(D, C)`: one learned query (no projection) split into `D/64` heads,
 *   `[k | v] = kv(tokens)` with `kv = Linear(D, 2D)` + bias (first D outputs keys, last D
 *   values, head-major), `o = softmax(q k^T / sqrt(hd)) v`, heads concatenated, then
 *   `Linear(D, C)`. No norm, no output projection.
 *
 * Deviation: the official head asserts `D % 64 == 0`; for the suite's tiny encoders
 * (D = 32, 96, ...) we use `max(1, floor(D/64))` heads of width `D/heads`, which is the
 * official layout whenever the official code runs at all.
 *
 * Grid layouts (torch weights are `[out, in]`; ours are stored pre-transposed so a step
 * needs no transpose, see engine.ts):
 * - linear: `w [Din, G*C]`, `b [G*C]`;
 * - attentive: `query [G, D]`, `kvW [D, G*2D]`, `kvB [G*2D]`, `w [G, D, C]`, `b [G, 1, C]`.
 *
 * @module
 */
import { tf } from "../model/engine.ts";
import type { Rng } from "../model/rng.ts";
import { truncNormal, zeros } from "../model/init.ts";
import type { HostTensor } from "../model/fixture.ts";

/** Number of attention heads of an `AttnPoolClassifier` over width `d` (see the module doc). */
export function attnPoolHeads(d: number): number {
  const h = Math.max(1, Math.floor(d / 64));
  if (d % h !== 0) throw new Error(`AttnPoolClassifier: width ${d} is not divisible by ${h} heads of 64`);
  return h;
}

/** Host parameters of G stacked heads, by grid-layout name. */
export type GridParams = Record<string, HostTensor<Float32Array>>;

/** trunc_normal(0.02) (absolute bounds ±2, torch defaults) for G independent linear heads. */
export function initLinearGrid(rng: Rng, din: number, classes: number, g: number): GridParams {
  const w = new Float32Array(din * g * classes);
  // Draw each classifier's torch-layout [C, Din] weight, then scatter into [Din, G*C].
  for (let k = 0; k < g; k++) {
    const wk = truncNormal(rng.fork("linear", k), [classes, din], 0.02).data;
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < din; i++) w[i * g * classes + k * classes + c] = wk[c * din + i];
    }
  }
  return { w: { shape: [din, g * classes], data: w }, b: zeros([g * classes]) };
}

/** CAPI init of G attentive heads: query, kv weight and classifier weight trunc_normal(0.02), biases 0. */
export function initAttnGrid(rng: Rng, d: number, classes: number, g: number): GridParams {
  const query = new Float32Array(g * d);
  const kvW = new Float32Array(d * g * 2 * d);
  const w = new Float32Array(g * d * classes);
  for (let k = 0; k < g; k++) {
    const r = rng.fork("attn", k);
    query.set(truncNormal(r.fork("query"), [d], 0.02).data, k * d);
    const kv = truncNormal(r.fork("kv"), [2 * d, d], 0.02).data; // torch [2D, D]
    for (let o = 0; o < 2 * d; o++) {
      for (let i = 0; i < d; i++) kvW[i * g * 2 * d + k * 2 * d + o] = kv[o * d + i];
    }
    const lin = truncNormal(r.fork("linear"), [classes, d], 0.02).data; // torch [C, D]
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < d; i++) w[k * d * classes + i * classes + c] = lin[c * d + i];
    }
  }
  return {
    query: { shape: [g, d], data: query },
    kvW: { shape: [d, g * 2 * d], data: kvW },
    kvB: zeros([g * 2 * d]),
    w: { shape: [g, d, classes], data: w },
    b: zeros([g, 1, classes]),
  };
}

/** Logits of G linear heads: x `[B, Din]` -> `[B, G, C]`. */
export function linearGridLogits(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, classes: number): tf.Tensor {
  return tf.tidy(() => {
    const [bsz] = x.shape;
    const g = (w.shape[1] as number) / classes;
    return tf.reshape(tf.add(tf.matMul(x, w), b), [bsz, g, classes]); // [B, G*C] -> [B, G, C]
  });
}

/**
 * Logits of G attentive heads: tokens `[B, N, D]` -> `[B, G, C]`.
 *
 * Computed in an equivalent, cheaper order (exact up to float rounding): with
 * `k_n = Wk x_n + bk`, `q . k_n = (Wk^T q) . x_n + q . bk`, so the logits need `x @ (Wk^T q)`
 * (`[D, G*h]`) rather than all keys (`[D, G*D]`); and since the attention weights sum to 1,
 * `sum_n a_n (Wv x_n + bv) = Wv (sum_n a_n x_n) + bv`. The trainable parameters (and so
 * AdamW's per-parameter updates) are exactly the official ones; only the op order differs.
 * This cuts a step's cost by ~2D/h (about 100x at D = 192) against materialising k and v.
 */
export function attnGridLogits(
  tokens: tf.Tensor,
  p: { query: tf.Tensor; kvW: tf.Tensor; kvB: tf.Tensor; w: tf.Tensor; b: tf.Tensor },
): tf.Tensor {
  return tf.tidy(() => {
    const [bsz, n, d] = tokens.shape;
    const g = p.query.shape[0];
    const h = attnPoolHeads(d);
    const hd = d / h, gh = g * h;
    const kvW = tf.reshape(p.kvW, [d, g, 2, h * hd]); // columns ordered (g, k|v, h, hd)
    const kvB = tf.reshape(p.kvB, [g, 2, h * hd]);
    const wk = tf.reshape(tf.slice(kvW, [0, 0, 0, 0], [d, g, 1, d]), [d, g, h, hd]);
    const wv = tf.reshape(tf.slice(kvW, [0, 0, 1, 0], [d, g, 1, d]), [d, gh, hd]);
    const bk = tf.reshape(tf.slice(kvB, [0, 0, 0], [g, 1, d]), [g, h, hd]);
    const bv = tf.reshape(tf.slice(kvB, [0, 1, 0], [g, 1, d]), [gh, 1, hd]);
    const q = tf.reshape(p.query, [g, h, hd]);
    const u = tf.reshape(tf.sum(tf.mul(wk, q), -1), [d, gh]); // Wk^T q per (g, h): [D, G*h]
    const qb = tf.reshape(tf.sum(tf.mul(bk, q), -1), [gh]); // q . bk (cancels in the softmax)
    const x2 = tf.reshape(tokens, [bsz * n, d]);
    const logits = tf.mul(tf.add(tf.matMul(x2, u), qb), 1 / Math.sqrt(hd)); // [B*N, G*h]
    const attn = tf.softmax(tf.transpose(tf.reshape(logits, [bsz, n, gh]), [0, 2, 1]), -1); // [B, G*h, N]
    const pooledX = tf.matMul(attn, tokens); // [B, G*h, D]
    const vals = tf.add(tf.matMul(tf.transpose(pooledX, [1, 0, 2]), tf.transpose(wv, [1, 0, 2])), bv); // [G*h, B, hd]
    const o = tf.reshape(tf.transpose(tf.reshape(vals, [g, h, bsz, hd]), [0, 2, 1, 3]), [g, bsz, d]); // [G, B, D]
    const out = tf.add(tf.matMul(o, p.w), p.b); // [G, B, C]
    return tf.transpose(out, [1, 0, 2]); // [B, G, C]
  });
}

/** Torch-layout weights of one attentive head (official state-dict names without prefix). */
export interface TorchAttnHead {
  query_token: HostTensor<Float32Array>;
  "kv.weight": HostTensor<Float32Array>;
  "kv.bias": HostTensor<Float32Array>;
  "linear.weight": HostTensor<Float32Array>;
  "linear.bias": HostTensor<Float32Array>;
}

/** Transpose a row-major `[r, c]` host matrix. */
export function transposeHost(m: HostTensor<Float32Array>): HostTensor<Float32Array> {
  const [r, c] = m.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = m.data[i * c + j];
  return { shape: [c, r], data: out };
}

/** One torch-layout attentive head as a G = 1 grid. */
export function attnGridFromTorch(t: TorchAttnHead): GridParams {
  const d = t.query_token.shape[0];
  const c = t["linear.weight"].shape[0];
  return {
    query: { shape: [1, d], data: t.query_token.data },
    kvW: transposeHost(t["kv.weight"]),
    kvB: t["kv.bias"],
    w: { shape: [1, d, c], data: transposeHost(t["linear.weight"]).data },
    b: { shape: [1, 1, c], data: t["linear.bias"].data },
  };
}

/** One torch-layout linear head as a G = 1 grid. */
export function linearGridFromTorch(weight: HostTensor<Float32Array>, bias: HostTensor<Float32Array>): GridParams {
  return { w: transposeHost(weight), b: bias };
}

/** Classifier `k` of a grid in torch layout (for saving the selected probe). */
export function pickLinear(w: HostTensor<Float32Array>, b: HostTensor<Float32Array>, classes: number, k: number) {
  const [din, gc] = w.shape;
  const weight = new Float32Array(classes * din);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < din; i++) weight[c * din + i] = w.data[i * gc + k * classes + c];
  }
  return {
    weight: { shape: [classes, din], data: weight },
    bias: { shape: [classes], data: b.data.slice(k * classes, (k + 1) * classes) },
  };
}
