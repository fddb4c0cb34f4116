/**
 * Nearest neighbours over a database streamed in blocks: the k-NN probes never hold the
 * database (train features, or ~5M ADE20K patch tokens) in memory, only one block and, per
 * query, the k best candidates so far with a payload row each (a class label, or a patch's
 * pixel labels, which is what the official segmentation k-NN gathers per chunk too).
 *
 * A block's scores are computed on the tensor backend and cut to its own top k there; the
 * host merges them into the running lists. On equal scores the earlier database row wins, as
 * if the whole database had been searched at once in order.
 *
 * @module
 */
import { tf } from "../model/engine.ts";

/** The k highest-scoring candidates per query, with a fixed-length integer payload each. */
export class RunningTopK {
  readonly queries: number;
  readonly k: number;
  readonly payloadLength: number;
  /** `[queries, k]`, descending per row; -Infinity where fewer than k candidates were seen. */
  scores: Float32Array;
  /** `[queries, k, payloadLength]`. */
  payload: Int32Array;

  constructor(queries: number, k: number, payloadLength: number) {
    this.queries = queries;
    this.k = k;
    this.payloadLength = payloadLength;
    this.scores = new Float32Array(queries * k).fill(-Infinity);
    this.payload = new Int32Array(queries * k * payloadLength);
  }

  /**
   * Merge a block's candidates: `scores`/`idx` `[queries, kb]` (descending per row, `idx` into
   * the block) and the block's payload rows `[blockRows, payloadLength]`.
   */
  merge(scores: Float32Array, idx: Int32Array, kb: number, blockPayload: Int32Array): void {
    const { k, payloadLength: p } = this;
    const nextS = new Float32Array(this.queries * k);
    const nextP = new Int32Array(this.queries * k * p);
    for (let q = 0; q < this.queries; q++) {
      let a = 0, b = 0;
      for (let t = 0; t < k; t++) {
        const sa = this.scores[q * k + a];
        const sb = b < kb ? scores[q * kb + b] : -Infinity;
        const o = (q * k + t) * p;
        if (sa >= sb) {
          nextS[q * k + t] = sa;
          nextP.set(this.payload.subarray((q * k + a) * p, (q * k + a + 1) * p), o);
          a++;
        } else {
          nextS[q * k + t] = sb;
          const r = idx[q * kb + b];
          nextP.set(blockPayload.subarray(r * p, (r + 1) * p), o);
          b++;
        }
      }
    }
    this.scores = nextS;
    this.payload = nextP;
  }
}

/** L2-normalise rows in place (eps 1e-12 as torch `F.normalize`). */
export function normalizeRowsInPlace(x: Float32Array, d: number): Float32Array {
  for (let i = 0; i < x.length / d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[i * d + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) x[i * d + j] *= inv;
  }
  return x;
}

/** Round float32 values to the nearest bfloat16 (ties to even), in place. */
export function roundToBf16InPlace(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) {
    const v = u[i];
    if ((v & 0x7f800000) === 0x7f800000) continue; // inf / nan unchanged
    u[i] = ((v + 0x7fff + ((v >>> 16) & 1)) >>> 0) & 0xffff0000;
  }
  return x;
}

export type Similarity = "dot" | "neg_sq_l2";

/**
 * Score `queries` `[m, d]` against one database block `[b, d]` and keep the block's top `k`
 * per query: `dot` = q.x (cosine on normalised rows), `neg_sq_l2` = -|q - x|^2 up to the
 * per-query constant |q|^2 (the order of a query's candidates is unchanged).
 */
export async function blockTopK(
  queries: tf.Tensor2D,
  block: tf.Tensor2D,
  k: number,
  similarity: Similarity,
): Promise<{ scores: Float32Array; idx: Int32Array; kb: number }> {
  const kb = Math.min(k, block.shape[0]);
  const { values, indices } = tf.tidy(() => {
    const dots = tf.matMul(queries, block, false, true); // [m, b]
    const s = similarity === "dot" ? dots : tf.sub(tf.mul(dots, 2), tf.sum(tf.square(block), 1)); // -|x|^2 per column
    return tf.topk(s, kb, true);
  });
  const scores = (await values.data()) as Float32Array;
  const idx = (await indices.data()) as Int32Array;
  values.dispose();
  indices.dispose();
  return { scores, idx, kb };
}

/** Rows scaled to unit L2 norm on the backend (eps 1e-12 as torch `F.normalize`). */
export function normalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12)));
}
