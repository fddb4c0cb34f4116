/**
 * The disk-backed, sharded feature store that extraction writes and every cached-feature
 * probe streams (`FeatureTable` on files).
 *
 * Layout of a store folder:
 * - `shard-00000.bin`, ...: `shardRows` images each (the last may hold fewer); inside a shard
 *   each kept field is one contiguous little-endian block `[rows, rowLength]`, in the order
 *   global, avgPatch, patches (float32), labelMap (int32);
 * - `labels.bin`: int32 class label per image (classification only);
 * - `manifest.json` (`mim-feature-store-v1`): key, dims, length, shard size; written last, so a
 *   folder without it is an interrupted extraction and is never read.
 *
 * Memory: the writer holds one shard; a reader holds only the rows asked for (reads coalesce
 * consecutive rows of a shard into one `pread`). Storage is float32: float16 would halve the
 * disk but was not measured against the probes' numbers, so it is not offered.
 *
 * @module
 */
import { join } from "node:path";
import { atomicWriteFile } from "../model/atomic_write.ts";
import {
  FEATURE_FIELDS,
  type FeatureDims,
  type FeatureField,
  type FeatureTable,
  type FieldData,
  outputBuffer,
  rowLength,
} from "./feature_table.ts";

const FORMAT = "mim-feature-store-v1";
const MANIFEST = "manifest.json";

interface Manifest {
  format: typeof FORMAT;
  key: unknown;
  length: number;
  shardRows: number;
  dims: FeatureDims;
  hasLabels: boolean;
}

const shardName = (i: number) => `shard-${String(i).padStart(5, "0")}.bin`;
const isInt = (f: FeatureField) => f === "labelMap";

/** One batch of rows to append (arrays hold `rows x rowLength` numbers of each kept field). */
export interface StoreRows {
  rows: number;
  global?: Float32Array | null;
  avgPatch: Float32Array;
  patches?: Float32Array | null;
  labelMap?: Int32Array | null;
  labels?: Int32Array | null;
}

/** Writes a store shard by shard; `finish()` writes the manifest and opens the result. */
export class FeatureStoreWriter {
  readonly #dir: string;
  readonly #dims: FeatureDims;
  readonly #key: unknown;
  readonly #shardRows: number;
  readonly #fields: FeatureField[];
  readonly #buf: Map<FeatureField, Float32Array | Int32Array>;
  readonly #labels: number[] | null;
  #fill = 0;
  #shards = 0;
  #length = 0;

  private constructor(dir: string, dims: FeatureDims, key: unknown, shardBytes: number, withLabels: boolean) {
    this.#dir = dir;
    this.#dims = dims;
    this.#key = key;
    this.#fields = FEATURE_FIELDS.filter((f) => rowLength(dims, f) > 0);
    const rowBytes = this.#fields.reduce((a, f) => a + 4 * rowLength(dims, f), 0);
    this.#shardRows = Math.max(1, Math.floor(shardBytes / rowBytes));
    this.#buf = new Map(this.#fields.map((f) => {
      const n = this.#shardRows * rowLength(dims, f);
      return [f, isInt(f) ? new Int32Array(n) : new Float32Array(n)];
    }));
    this.#labels = withLabels ? [] : null;
  }

  /** Start a store in `dir` (emptied first: whatever was there is an unfinished or stale store). */
  static async create(
    dir: string,
    dims: FeatureDims,
    o: { key: unknown; shardBytes: number; withLabels: boolean },
  ): Promise<FeatureStoreWriter> {
    await Deno.remove(dir, { recursive: true }).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    await Deno.mkdir(dir, { recursive: true });
    return new FeatureStoreWriter(dir, dims, o.key, o.shardBytes, o.withLabels);
  }

  async append(r: StoreRows): Promise<void> {
    for (const f of this.#fields) {
      const src = r[f];
      if (!src || src.length !== r.rows * rowLength(this.#dims, f)) {
        throw new Error(`FeatureStoreWriter: field '${f}' has ${src?.length ?? 0} numbers for ${r.rows} rows`);
      }
    }
    if (this.#labels) {
      if (!r.labels || r.labels.length !== r.rows) throw new Error("FeatureStoreWriter: a batch without labels");
      for (const l of r.labels) this.#labels.push(l);
    }
    let done = 0;
    while (done < r.rows) {
      const take = Math.min(r.rows - done, this.#shardRows - this.#fill);
      for (const f of this.#fields) {
        const len = rowLength(this.#dims, f);
        this.#buf.get(f)!.set(r[f]!.subarray(done * len, (done + take) * len), this.#fill * len);
      }
      this.#fill += take;
      done += take;
      if (this.#fill === this.#shardRows) await this.#flush();
    }
    this.#length += r.rows;
  }

  /** Write the buffered rows as the next shard (field blocks straight from the buffers, then rename). */
  async #flush(): Promise<void> {
    if (this.#fill === 0) return;
    const path = join(this.#dir, shardName(this.#shards++));
    const tmp = `${path}.tmp-${crypto.randomUUID()}`;
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      for (const f of this.#fields) {
        const a = this.#buf.get(f)!.subarray(0, this.#fill * rowLength(this.#dims, f));
        const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
        for (let o = 0; o < bytes.length;) o += await file.write(bytes.subarray(o));
      }
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
    this.#fill = 0;
  }

  async finish(): Promise<DiskFeatureTable> {
    await this.#flush();
    if (this.#labels) {
      await atomicWriteFile(join(this.#dir, "labels.bin"), new Uint8Array(Int32Array.from(this.#labels).buffer));
    }
    const manifest: Manifest = {
      format: FORMAT,
      key: this.#key,
      length: this.#length,
      shardRows: this.#shardRows,
      dims: this.#dims,
      hasLabels: this.#labels !== null,
    };
    await atomicWriteFile(join(this.#dir, MANIFEST), JSON.stringify(manifest));
    return (await openFeatureStore(this.#dir, this.#key))!;
  }
}

/** Open the store in `dir`, or null when there is none (or it was written for another `key`). */
export async function openFeatureStore(dir: string, key?: unknown): Promise<DiskFeatureTable | null> {
  let m: Manifest;
  try {
    m = JSON.parse(await Deno.readTextFile(join(dir, MANIFEST)));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${join(dir, MANIFEST)}: unreadable (${(e as Error).message}); delete ${dir} to re-extract`);
  }
  if (m.format !== FORMAT) return null;
  if (key !== undefined && JSON.stringify(m.key) !== JSON.stringify(key)) return null;
  let labels: Int32Array | null = null;
  if (m.hasLabels) {
    const b = await Deno.readFile(join(dir, "labels.bin"));
    labels = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    if (labels.length !== m.length) throw new Error(`${dir}/labels.bin: ${labels.length} labels for ${m.length} rows`);
  }
  return new DiskFeatureTable(dir, m, labels);
}

/** Read exactly `buf.length` bytes at `pos`. */
function readAt(file: Deno.FsFile, pos: number, buf: Uint8Array, path: string): void {
  file.seekSync(pos, Deno.SeekMode.Start);
  let got = 0;
  while (got < buf.length) {
    const n = file.readSync(buf.subarray(got));
    if (n === null || n === 0) {
      throw new Error(`${path}: truncated at byte ${pos + got}; delete the store to re-extract`);
    }
    got += n;
  }
}

/** A store on disk, read by rows. */
export class DiskFeatureTable implements FeatureTable {
  readonly length: number;
  readonly dims: FeatureDims;
  readonly labels: Int32Array | null;
  readonly blockRows: number;
  readonly dir: string;
  readonly #fields: FeatureField[];
  readonly #files = new Map<number, Deno.FsFile>();
  #buf = new Uint8Array(0);
  /** Delete the folder on close (a store nobody will reuse). */
  temporary = false;

  constructor(dir: string, m: Manifest, labels: Int32Array | null) {
    this.dir = dir;
    this.length = m.length;
    this.dims = m.dims;
    this.labels = labels;
    this.blockRows = m.shardRows;
    this.#fields = FEATURE_FIELDS.filter((f) => rowLength(m.dims, f) > 0);
  }

  /** A reusable read buffer of at least `n` bytes (grows, never shrinks: the largest run read). */
  #scratch(n: number): Uint8Array {
    if (this.#buf.length < n) this.#buf = new Uint8Array(n);
    return this.#buf.subarray(0, n);
  }

  #file(shard: number): Deno.FsFile {
    let f = this.#files.get(shard);
    if (!f) {
      f = Deno.openSync(join(this.dir, shardName(shard)), { read: true });
      this.#files.set(shard, f);
    }
    return f;
  }

  /** Byte offset of `field`'s block inside a shard holding `rows` rows. */
  #fieldOffset(field: FeatureField, rows: number): number {
    let o = 0;
    for (const f of this.#fields) {
      if (f === field) return o;
      o += rows * 4 * rowLength(this.dims, f);
    }
    throw new Error(`feature store ${this.dir}: no field '${field}'`);
  }

  read<F extends FeatureField>(field: F, rows: ArrayLike<number>, into?: FieldData[F]): Promise<FieldData[F]> {
    const len = rowLength(this.dims, field);
    if (len === 0) return Promise.reject(new Error(`feature store ${this.dir}: no field '${field}'`));
    const out = outputBuffer<Float32Array | Int32Array>(
      isInt(field) ? Int32Array : Float32Array,
      rows.length * len,
      into,
    );
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    const order = Int32Array.from({ length: rows.length }, (_, i) => i).sort((a, b) => rows[a] - rows[b]);
    const rowBytes = 4 * len;
    for (let s = 0; s < order.length;) {
      const first = rows[order[s]];
      if (!(first >= 0 && first < this.length)) {
        return Promise.reject(new RangeError(`feature store ${this.dir}: row ${first} outside [0, ${this.length})`));
      }
      const shard = Math.floor(first / this.blockRows);
      // A run: consecutive (or repeated) rows of one shard, read with one pread.
      let e = s + 1;
      while (
        e < order.length && rows[order[e]] - rows[order[e - 1]] <= 1 &&
        Math.floor(rows[order[e]] / this.blockRows) === shard
      ) e++;
      const last = rows[order[e - 1]];
      const inShard = Math.min(this.blockRows, this.length - shard * this.blockRows);
      const pos = this.#fieldOffset(field, inShard) + (first - shard * this.blockRows) * rowBytes;
      const run = this.#scratch((last - first + 1) * rowBytes);
      readAt(this.#file(shard), pos, run, join(this.dir, shardName(shard)));
      for (let t = s; t < e; t++) {
        const r = rows[order[t]] - first;
        bytes.set(run.subarray(r * rowBytes, (r + 1) * rowBytes), order[t] * rowBytes);
      }
      s = e;
    }
    return Promise.resolve(out as FieldData[F]);
  }

  async close(): Promise<void> {
    for (const f of this.#files.values()) f.close();
    this.#files.clear();
    if (this.temporary) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
