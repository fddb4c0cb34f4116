/**
 * `FeatureTable`: the per-image features of one split as every cached-feature probe reads
 * them, in rows, never all at once. A row is one image: its global representation, its mean
 * patch token, optionally all its patch tokens and its label map; class labels (4 bytes an
 * image) stay in memory.
 *
 * Two implementations: `MemoryFeatureTable` (arrays; tests and small in-process data) and the
 * disk-backed, sharded store of `feature_store.ts` (what extraction writes), so probe code is
 * the same whatever the data size and peak memory is set by the rows a probe asks for at once
 * (a batch, a block of images), not by the split.
 *
 * @module
 */
import type { HostTensor } from "../model/fixture.ts";

/** Row shapes of a table's fields (`null`: not kept). */
export interface FeatureDims {
  /** `[Dg]`: the method's global representation, or null when the encoder has none. */
  global: number | null;
  /** `[D]`: mean of the patch tokens. */
  avgPatch: number;
  /** `[Gh, Gw, D]`: all patch tokens (attentive and segmentation probes). */
  patches: [number, number, number] | null;
  /** `[H, W]`: pixel labels (segmentation). */
  labelMap: [number, number] | null;
}

export type FeatureField = keyof FeatureDims;
/** The typed array a field's rows come back in. */
export interface FieldData {
  global: Float32Array;
  avgPatch: Float32Array;
  patches: Float32Array;
  labelMap: Int32Array;
}

export const FEATURE_FIELDS: readonly FeatureField[] = ["global", "avgPatch", "patches", "labelMap"];

/** Numbers per row of `field`, or 0 when the table does not keep it. */
export function rowLength(dims: FeatureDims, field: FeatureField): number {
  const d = dims[field];
  if (d === null) return 0;
  return typeof d === "number" ? d : d.reduce((a, b) => a * b, 1);
}

/** Per-image features of one split, read by rows. */
export interface FeatureTable {
  readonly length: number;
  readonly dims: FeatureDims;
  /** Class label per image (classification), or null. */
  readonly labels: Int32Array | null;
  /** Images per natural block (a disk shard): a good size for streaming reads. */
  readonly blockRows: number;
  /**
   * Rows `rows` (any order, repeats allowed) of `field`, concatenated in that order; into `out`
   * (a view of its start is returned) when it is long enough, so that a reader streaming many
   * batches reuses one buffer instead of leaving a garbage buffer per batch for the GC.
   */
  read<F extends FeatureField>(field: F, rows: ArrayLike<number>, out?: FieldData[F]): Promise<FieldData[F]>;
  /** Release files (and delete a temporary store). */
  close(): Promise<void>;
}

/** Throw unless the table keeps `field` (the message says which probe needs it). */
export function requireField(t: FeatureTable, field: FeatureField, who: string): void {
  if (t.dims[field] === null) {
    throw new Error(`${who}: the features carry no '${field}' (extract with keepPatches for patch tokens)`);
  }
}

/** `rows` in consecutive chunks of at most `size` (the order is kept). */
export function* chunks(rows: Int32Array, size: number): Generator<Int32Array> {
  for (let s = 0; s < rows.length; s += size) yield rows.subarray(s, Math.min(rows.length, s + size));
}

/** `0..n-1`. */
export function allRows(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

/** `out`'s first `n` numbers when it has that many, else a new array of `n` like `like`. */
export function outputBuffer<T extends Float32Array | Int32Array>(
  like: T | (new (n: number) => T),
  n: number,
  out?: T,
): T {
  if (out && out.length >= n) return out.subarray(0, n) as T;
  const Ctor = (typeof like === "function" ? like : like.constructor) as new (n: number) => T;
  return new Ctor(n);
}

/** `parts` end to end in one array of their type (the only part itself, uncopied, when there is one). */
export function concatArrays<T extends Float32Array | Int32Array>(like: new (n: number) => T, parts: T[]): T {
  if (parts.length === 1) return parts[0];
  const out = new like(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Copy rows `rows` of a row-major array with `len` numbers per row (into `out` when it is long enough). */
export function gatherRows<T extends Float32Array | Int32Array>(
  src: T,
  len: number,
  rows: ArrayLike<number>,
  out?: T,
): T {
  out = outputBuffer(src, rows.length * len, out);
  for (let i = 0; i < rows.length; i++) out.set(src.subarray(rows[i] * len, (rows[i] + 1) * len), i * len);
  return out;
}

/** A table over arrays held in memory (tests, and data small enough to hold). */
export class MemoryFeatureTable implements FeatureTable {
  readonly length: number;
  readonly dims: FeatureDims;
  readonly labels: Int32Array | null;
  readonly blockRows: number;
  readonly #data: Partial<FieldData>;

  constructor(
    data: {
      global?: HostTensor<Float32Array> | null;
      avgPatch: HostTensor<Float32Array>;
      patches?: HostTensor<Float32Array> | null;
      labelMaps?: HostTensor<Int32Array> | null;
      labels?: Int32Array | null;
    },
    blockRows = 64,
  ) {
    const [n, d] = data.avgPatch.shape;
    const p = data.patches?.shape, m = data.labelMaps?.shape;
    this.length = n;
    this.dims = {
      global: data.global ? data.global.shape[1] : null,
      avgPatch: d,
      patches: p ? [p[1], p[2], p[3]] : null,
      labelMap: m ? [m[1], m[2]] : null,
    };
    for (const [name, t] of [["global", data.global], ["patches", data.patches], ["labelMaps", data.labelMaps]]) {
      const tt = t as HostTensor | null | undefined;
      if (tt && tt.shape[0] !== n) {
        throw new Error(`MemoryFeatureTable: ${name} has ${tt.shape[0]} rows, avgPatch ${n}`);
      }
    }
    if (data.labels && data.labels.length !== n) {
      throw new Error(`MemoryFeatureTable: ${data.labels.length} labels for ${n} rows`);
    }
    this.labels = data.labels ?? null;
    this.blockRows = blockRows;
    this.#data = {
      global: data.global?.data,
      avgPatch: data.avgPatch.data,
      patches: data.patches?.data,
      labelMap: data.labelMaps?.data,
    };
  }

  read<F extends FeatureField>(field: F, rows: ArrayLike<number>, out?: FieldData[F]): Promise<FieldData[F]> {
    const src = this.#data[field];
    if (!src) return Promise.reject(new Error(`MemoryFeatureTable: no field '${field}'`));
    for (let i = 0; i < rows.length; i++) {
      if (!(rows[i] >= 0 && rows[i] < this.length)) {
        return Promise.reject(new RangeError(`MemoryFeatureTable: row ${rows[i]} outside [0, ${this.length})`));
      }
    }
    return Promise.resolve(gatherRows(src, rowLength(this.dims, field), rows, out as typeof src) as FieldData[F]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
