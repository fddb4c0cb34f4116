/**
 * A minimal MATLAB level-5 MAT-file reader: just enough to read the ImageNet devkit's
 * `meta.mat` (a struct array of synsets: ILSVRC2012_ID, WNID, num_children, ...), whose ids
 * label `ILSVRC2012_validation_ground_truth.txt`. Handles compressed elements, numeric, char,
 * cell and struct arrays, little-endian files only (what MATLAB and scipy write on x86).
 *
 * Values: numeric -> number[] (column-major, flattened), char -> string, cell -> MatValue[],
 * struct -> Record<field, MatValue>[] (one record per element).
 *
 * @module
 */

export type MatValue = number[] | string | MatValue[] | Record<string, unknown>[];

const NUMERIC: Record<number, [number, (v: DataView, o: number) => number]> = {
  1: [1, (v, o) => v.getInt8(o)],
  2: [1, (v, o) => v.getUint8(o)],
  3: [2, (v, o) => v.getInt16(o, true)],
  4: [2, (v, o) => v.getUint16(o, true)],
  5: [4, (v, o) => v.getInt32(o, true)],
  6: [4, (v, o) => v.getUint32(o, true)],
  7: [4, (v, o) => v.getFloat32(o, true)],
  9: [8, (v, o) => v.getFloat64(o, true)],
  12: [8, (v, o) => Number(v.getBigInt64(o, true))],
  13: [8, (v, o) => Number(v.getBigUint64(o, true))],
};
const MI_MATRIX = 14, MI_COMPRESSED = 15, MI_UTF8 = 16;
const MX_CELL = 1, MX_STRUCT = 2, MX_CHAR = 4;

interface Element {
  type: number;
  data: Uint8Array;
  next: number;
}

function readElement(buf: Uint8Array, at: number, where: string): Element {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (at + 8 > buf.length) throw new Error(`${where}: truncated MAT element at byte ${at}`);
  const first = view.getUint32(at, true);
  if (first >>> 16 !== 0) { // small data element: type and size packed in 4 bytes
    const nbytes = first >>> 16;
    return { type: first & 0xffff, data: buf.subarray(at + 4, at + 4 + nbytes), next: at + 8 };
  }
  const nbytes = view.getUint32(at + 4, true);
  if (at + 8 + nbytes > buf.length) throw new Error(`${where}: MAT element at byte ${at} runs past the end`);
  const padded = first === MI_COMPRESSED ? nbytes : Math.ceil(nbytes / 8) * 8;
  return { type: first, data: buf.subarray(at + 8, at + 8 + nbytes), next: at + 8 + padded };
}

function numbers(el: Element, where: string): number[] {
  const spec = NUMERIC[el.type];
  if (!spec) throw new Error(`${where}: unsupported MAT numeric type ${el.type}`);
  const view = new DataView(el.data.buffer, el.data.byteOffset, el.data.byteLength);
  return Array.from({ length: el.data.length / spec[0] }, (_, i) => spec[1](view, i * spec[0]));
}

function parseMatrix(data: Uint8Array, where: string): { name: string; value: MatValue } {
  if (data.length === 0) return { name: "", value: [] };
  const flags = readElement(data, 0, where);
  const mxClass = new DataView(flags.data.buffer, flags.data.byteOffset).getUint32(0, true) & 0xff;
  const dimsEl = readElement(data, flags.next, where);
  const count = numbers(dimsEl, where).reduce((a, b) => a * b, 1);
  const nameEl = readElement(data, dimsEl.next, where);
  const name = new TextDecoder().decode(nameEl.data);
  let at = nameEl.next;
  if (mxClass === MX_CELL || mxClass === MX_STRUCT) {
    let fields: string[] = [];
    if (mxClass === MX_STRUCT) {
      const lenEl = readElement(data, at, where);
      const len = numbers(lenEl, where)[0];
      const namesEl = readElement(data, lenEl.next, where);
      fields = Array.from(
        { length: namesEl.data.length / len },
        (_, f) => new TextDecoder().decode(namesEl.data.subarray(f * len, (f + 1) * len)).replace(/\0+$/, ""),
      );
      at = namesEl.next;
    }
    const items: MatValue[] = [];
    const n = mxClass === MX_CELL ? count : count * fields.length; // structs: element-major, fields inside
    for (let i = 0; i < n; i++) {
      const el = readElement(data, at, where);
      if (el.type !== MI_MATRIX) throw new Error(`${where}: expected a matrix inside '${name}', found type ${el.type}`);
      items.push(parseMatrix(el.data, where).value);
      at = el.next;
    }
    if (mxClass === MX_CELL) return { name, value: items };
    const records = Array.from(
      { length: count },
      (_, e) => Object.fromEntries(fields.map((f, k) => [f, items[e * fields.length + k]])),
    );
    return { name, value: records };
  }
  const real = readElement(data, at, where);
  if (mxClass === MX_CHAR) {
    const value = real.type === MI_UTF8 || real.type === 2
      ? new TextDecoder().decode(real.data)
      : String.fromCharCode(...numbers(real, where));
    return { name, value };
  }
  return { name, value: numbers(real, where) };
}

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Read the top-level variables of a level-5 MAT-file. */
export async function readMat(path: string): Promise<Map<string, MatValue>> {
  const buf = await Deno.readFile(path);
  if (buf.length < 128 || String.fromCharCode(buf[126], buf[127]) !== "IM") {
    throw new Error(`${path}: not a little-endian MATLAB level-5 MAT-file (v7.3/HDF5 files are not supported)`);
  }
  const out = new Map<string, MatValue>();
  for (let at = 128; at < buf.length;) {
    let el = readElement(buf, at, path);
    at = el.next;
    if (el.type === MI_COMPRESSED) el = readElement(await inflate(el.data), 0, path);
    if (el.type !== MI_MATRIX) continue;
    const { name, value } = parseMatrix(el.data, path);
    out.set(name, value);
  }
  return out;
}
